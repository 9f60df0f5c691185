//! Predictions and their errors: a late vehicle is predicted to make up part of its
//! delay, and the ledger settles each sampled prediction when the vehicle arrives,
//! by horizon, beside the naive constant-delay prediction.

#![allow(clippy::unwrap_used)]

use streamcity_core::{OccupancyStatus, VehiclePosition, VehicleStatus};
use streamcity_network::{Date, gtfs};
use streamcity_realtime::learned::Learned;
use streamcity_realtime::predict::{Predictor, predict};
use streamcity_testkit::feeds::{feed_dir, small_feed};

/// `hh:mm:ss` on Monday 3 March 2025 in Paris (UTC+1), ms.
fn at(h: i64, m: i64, s: i64) -> i64 {
    Date::from_ymd(2025, 3, 3).days() * 86_400_000 - 3_600_000 + ((h * 60 + m) * 60 + s) * 1000
}

/// B1 on R1-a (P1 08:00, S2 08:05, S3 08:10), bound for `next`.
fn report(ts: i64, next: &str, status: VehicleStatus, delay_s: i32) -> VehiclePosition {
    VehiclePosition {
        vehicle_id: "B1".into(),
        route_id: "R1".into(),
        trip_id: "R1-a".into(),
        timestamp: ts,
        lat: 48.85,
        lon: 2.35,
        bearing: 0.0,
        speed_mps: 5.0,
        next_stop_id: next.into(),
        passengers: 5,
        capacity: 80,
        occupancy_status: OccupancyStatus::ManySeatsAvailable,
        delay_s,
        status,
        start_date: Some("20250303".into()),
        start_time: Some("08:00:00".into()),
        boarded: None,
    }
}

fn with(p: VehiclePosition, vehicle: &str) -> VehiclePosition {
    VehiclePosition {
        vehicle_id: vehicle.into(),
        ..p
    }
}

#[test]
fn a_late_vehicle_makes_up_time_and_the_ledger_measures_both_predictions() {
    let dir = feed_dir("accuracy", &small_feed());
    let network = gtfs::load(&dir).unwrap().network;
    std::fs::remove_dir_all(dir).unwrap();
    // Two minutes late at 08:02, five minutes of running to S2 in the timetable, no
    // vehicle seen yet: the model expects a quarter of it (75 s) made up, the naive
    // prediction none.
    let late = report(at(8, 2, 0), "S2", VehicleStatus::InTransitTo, 120);
    let calls = predict(&network, &Learned::default(), &late, late.timestamp).unwrap();
    assert_eq!(calls.len(), 2);
    assert_eq!(calls[0].naive_arrival_ms, at(8, 7, 0));
    assert_eq!(calls[0].arrival_ms, at(8, 5, 45));
    // Each call after the one before; none in the past.
    assert!(calls[1].arrival_ms > calls[0].departure_ms);
    assert!(calls[0].arrival_ms > late.timestamp);

    // The ledger samples at 08:02, and settles S2 when B1 stands there at 08:06.
    let mut predictor = Predictor::default();
    predictor.on_report(&network, &late);
    predictor.on_report(
        &network,
        &report(at(8, 6, 0), "S2", VehicleStatus::StoppedAt, 60),
    );
    let rows = predictor.ledger.accuracy();
    // Made 4 minutes ahead: the 0-5 horizon; model 15 s off, naive 60 s.
    assert_eq!(rows[0].horizon, (0, 5));
    assert_eq!(rows[0].samples, 1);
    assert_eq!(rows[0].model, (15.0, 15.0));
    assert_eq!(rows[0].naive, (60.0, 60.0));
    assert_eq!(rows[0].bias, (-15.0, 60.0));
    assert!(rows[1..].iter().all(|r| r.samples == 0));
    // S3 is still to come: nothing settled for it yet; when B1 leaves service its
    // predictions are let go.
    predictor.on_report(
        &network,
        &report(at(8, 9, 0), "S3", VehicleStatus::OutOfService, 0),
    );
    assert_eq!(predictor.ledger.accuracy()[0].samples, 1);
}

#[test]
fn the_model_learns_running_times_dwells_and_repairs_from_the_vehicles_ahead() {
    let dir = feed_dir("learning", &small_feed());
    let network = gtfs::load(&dir).unwrap().network;
    std::fs::remove_dir_all(dir).unwrap();
    let mut learned = Learned::default();
    // B1 leaves P1 half a minute late, is still late at S2 after 6 minutes of running
    // (5 in the timetable: it ran flat out, at 1.2 times the scheduled time), stands
    // there 40 s.
    for (ts, next, status, delay) in [
        (at(8, 0, 0), "P1", VehicleStatus::StoppedAt, 0),
        (at(8, 0, 30), "S2", VehicleStatus::InTransitTo, 30),
        (at(8, 3, 0), "S2", VehicleStatus::InTransitTo, 60),
        (at(8, 6, 30), "S2", VehicleStatus::StoppedAt, 90),
        (at(8, 7, 10), "S3", VehicleStatus::InTransitTo, 130),
    ] {
        learned.observe(&network, &report(ts, next, status, delay));
    }
    assert_eq!(learned.known(), (1, 1, 1));
    let s2 = network.stop_position("S2").unwrap();
    assert_eq!(learned.dwell_ms(s2), Some(40_000));
    // B2, a minute late leaving P1 at 08:01: S2 in 1.2 × 5 minutes (not 5 less a
    // quarter), 40 s there, then S3 as slow as its route has run (1.2 × 5 minutes).
    let b2 = with(
        report(at(8, 1, 0), "S2", VehicleStatus::InTransitTo, 60),
        "B2",
    );
    let calls = predict(&network, &learned, &b2, b2.timestamp).unwrap();
    assert_eq!(calls[0].arrival_ms, at(8, 7, 0));
    assert_eq!(calls[0].departure_ms, at(8, 7, 40));
    assert_eq!(calls[1].arrival_ms, at(8, 13, 40));
    // B2 breaks down at 08:02 and still stands at 08:05: no repair seen yet, so 20
    // minutes from 08:02, then the rest of the stretch.
    learned.observe(
        &network,
        &with(
            report(at(8, 2, 0), "S2", VehicleStatus::BrokenDown, 90),
            "B2",
        ),
    );
    let stuck = with(
        report(at(8, 5, 0), "S2", VehicleStatus::BrokenDown, 270),
        "B2",
    );
    learned.observe(&network, &stuck);
    let calls = predict(&network, &learned, &stuck, stuck.timestamp).unwrap();
    assert!(calls[0].arrival_ms > at(8, 22, 0), "{:?}", calls[0]);
    // Repaired at 08:12 (10 minutes): the next breakdown is expected to last as long.
    learned.observe(
        &network,
        &with(
            report(at(8, 12, 0), "S2", VehicleStatus::InTransitTo, 660),
            "B2",
        ),
    );
    assert_eq!(learned.repair_left_ms("B2", at(8, 12, 0)), 0);
    // A vehicle leaving service is forgotten.
    learned.observe(
        &network,
        &report(at(8, 12, 0), "S3", VehicleStatus::OutOfService, 0),
    );
    assert_eq!(learned.known().2, 1);
}
