//! Trip updates under disruption: the runs a suspended line will not run are CANCELED
//! (a vehicle laying over before one does not run it), and the stops on a closed road
//! are SKIPPED, passed by without dwell.

#![allow(clippy::unwrap_used)]

use streamcity_core::geo::LatLon;
use streamcity_core::{OccupancyStatus, VehiclePosition, VehicleStatus};
use streamcity_network::{Date, gtfs};
use streamcity_realtime::learned::Learned;
use streamcity_realtime::proto::trip_descriptor::ScheduleRelationship as Trip;
use streamcity_realtime::proto::trip_update::stop_time_update::ScheduleRelationship as Call;
use streamcity_realtime::{Disruptions, trip_updates};
use streamcity_testkit::feeds::{feed_dir, small_feed};

/// `hh:mm:ss` on Monday 3 March 2025 in Paris (UTC+1), ms.
fn at(h: i64, m: i64, s: i64) -> i64 {
    Date::from_ymd(2025, 3, 3).days() * 86_400_000 - 3_600_000 + ((h * 60 + m) * 60 + s) * 1000
}

/// B1 on R1-a (P1 08:00, S2, S3 08:10), at `next` with `status`.
fn b1(ts: i64, next: &str, status: VehicleStatus) -> VehiclePosition {
    VehiclePosition {
        vehicle_id: "B1".into(),
        route_id: "R1".into(),
        trip_id: "R1-a".into(),
        timestamp: ts,
        lat: 48.8501,
        lon: 2.3501,
        bearing: 0.0,
        speed_mps: 0.0,
        next_stop_id: next.into(),
        passengers: 0,
        capacity: 80,
        occupancy_status: OccupancyStatus::Empty,
        delay_s: 0,
        status,
        start_date: Some("20250303".into()),
        start_time: Some("08:00:00".into()),
        boarded: None,
    }
}

#[test]
fn a_suspended_line_s_runs_are_cancelled_and_a_closed_road_s_stops_skipped() {
    let dir = feed_dir("trip-updates", &small_feed());
    let network = gtfs::load(&dir).unwrap().network;
    std::fs::remove_dir_all(dir).unwrap();
    let learned = Learned::default();

    // R1 suspended at 07:57 until 08:25: R1-a (08:00) and R1-b (08:20) will not run,
    // though B1 lays over for R1-a; the night trip and the other lines are not touched.
    let now = at(7, 57, 0);
    let suspended = Disruptions {
        suspended: vec![("R1".into(), Some(at(8, 25, 0)))],
        closed: Vec::new(),
    };
    let laying_over = b1(now, "P1", VehicleStatus::Layover);
    let feed = trip_updates(&network, &learned, now, [&laying_over], &suspended);
    let runs: Vec<(&str, i32, &str)> = feed
        .entity
        .iter()
        .map(|e| {
            let tu = e.trip_update.as_ref().unwrap();
            (
                e.id.as_str(),
                tu.trip.schedule_relationship.unwrap(),
                tu.trip.start_date.as_deref().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        runs,
        [
            ("R1-a@08:00:00", Trip::Canceled as i32, "20250303"),
            ("R1-b@08:20:00", Trip::Canceled as i32, "20250303"),
        ]
    );
    assert!(feed.entity.iter().all(|e| {
        let tu = e.trip_update.as_ref().unwrap();
        tu.stop_time_update.is_empty() && tu.vehicle.is_none()
    }));
    // Once on its way, a run finishes: it is predicted, not cancelled.
    let running = b1(at(8, 1, 0), "S2", VehicleStatus::InTransitTo);
    let feed = trip_updates(&network, &learned, at(8, 1, 0), [&running], &suspended);
    let ids: Vec<&str> = feed.entity.iter().map(|e| e.id.as_str()).collect();
    assert_eq!(ids, ["R1-a@08:00:00", "R1-b@08:20:00"]);
    let a = feed.entity[0].trip_update.as_ref().unwrap();
    assert_eq!(a.trip.schedule_relationship, Some(Trip::Scheduled as i32));
    assert_eq!(a.stop_time_update.len(), 2);

    // A road closed around S2: B1, standing at P1, will pass S2 by.
    let closed = Disruptions {
        suspended: Vec::new(),
        closed: vec![(LatLon::new(48.8550, 2.3600), 100.0)],
    };
    let standing = b1(at(7, 59, 30), "P1", VehicleStatus::StoppedAt);
    let feed = trip_updates(&network, &learned, at(7, 59, 30), [&standing], &closed);
    let calls = &feed.entity[0]
        .trip_update
        .as_ref()
        .unwrap()
        .stop_time_update;
    let how: Vec<(&str, i32, bool)> = calls
        .iter()
        .map(|u| {
            (
                u.stop_id.as_deref().unwrap(),
                u.schedule_relationship.unwrap(),
                u.arrival.is_some() || u.departure.is_some(),
            )
        })
        .collect();
    assert_eq!(
        how,
        [
            ("P1", Call::Scheduled as i32, true),
            ("S2", Call::Skipped as i32, false),
            ("S3", Call::Scheduled as i32, true),
        ]
    );
}

#[test]
fn the_next_run_of_a_block_inherits_the_delay_of_the_run_before() {
    let dir = feed_dir("next-run", &small_feed());
    let network = gtfs::load(&dir).unwrap().network;
    std::fs::remove_dir_all(dir).unwrap();
    let learned = Learned::default();
    let none = Disruptions::default();
    // B1 (block B1: R1-a at 08:00 to S3 at 08:10, then R1-b at 08:20 from S3), 12
    // minutes late on its way to S3 at 08:20: R1-b cannot leave before B1 has reached
    // S3 and turned round, after 08:20.
    let mut late = b1(at(8, 20, 0), "S3", VehicleStatus::InTransitTo);
    late.delay_s = 720;
    let feed = trip_updates(&network, &learned, at(8, 20, 0), [&late], &none);
    let ids: Vec<&str> = feed.entity.iter().map(|e| e.id.as_str()).collect();
    assert_eq!(ids, ["R1-a@08:00:00", "R1-b@08:20:00"]);
    let a = feed.entity[0].trip_update.as_ref().unwrap();
    let b = feed.entity[1].trip_update.as_ref().unwrap();
    let reaches_s3 = a
        .stop_time_update
        .last()
        .unwrap()
        .arrival
        .unwrap()
        .time
        .unwrap();
    let leaves_s3 = b.stop_time_update[0].departure.unwrap().time.unwrap();
    assert!(leaves_s3 >= reaches_s3 + 60, "{a:?}\n{b:?}");
    assert!(
        b.stop_time_update[0].departure.unwrap().delay.unwrap() > 0,
        "{a:?}\n{b:?}"
    );
    // Not named with the vehicle (it is not on that run yet), stamped as the report.
    assert!(b.vehicle.is_none());
    assert_eq!(b.timestamp, a.timestamp);
    // On time, R1-b leaves at 08:20; and 50 minutes ahead it is not predicted yet.
    let on_time = b1(at(8, 5, 0), "S2", VehicleStatus::InTransitTo);
    let feed = trip_updates(&network, &learned, at(8, 5, 0), [&on_time], &none);
    let b = feed.entity[1].trip_update.as_ref().unwrap();
    assert_eq!(
        b.stop_time_update[0].departure.unwrap().time,
        Some(at(8, 20, 0) / 1000)
    );
    let early = b1(at(7, 30, 0), "P1", VehicleStatus::Layover);
    let feed = trip_updates(&network, &learned, at(7, 30, 0), [&early], &none);
    assert_eq!(feed.entity.len(), 1);
}
