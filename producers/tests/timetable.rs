//! A GTFS network runs its timetable: each trip of the service day leaves its first
//! stop at its time and calls at its stops in order; a block's trips run on one vehicle,
//! one after the other; frequencies start a run every headway (exactly, or about);
//! trips past 24:00 run after midnight as trips of the day before; a day outside the
//! feed's calendar runs the nearest day of the same weekday inside it.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::sync::Arc;

use streamcity_core::{VehiclePosition, VehicleStatus};
use streamcity_network::{Date, Network, gtfs};
use streamcity_producers::arrivals::Gaps;
use streamcity_producers::sim::SimEvent;
use streamcity_producers::{SimConfig, Simulation};
use streamcity_testkit::feeds::{feed_dir, small_feed};

fn small() -> Arc<Network> {
    load(feed_dir("timetable", &small_feed()))
}

/// The network of the feed in `dir`, which is removed.
fn load(dir: std::path::PathBuf) -> Arc<Network> {
    let network = gtfs::load(&dir).unwrap_or_else(|e| panic!("{e}")).network;
    std::fs::remove_dir_all(dir).unwrap();
    Arc::new(network)
}

/// The small feed with `file` replaced by `text`.
fn small_with(name: &str, file: &str, text: &str) -> Arc<Network> {
    let files: Vec<(&str, &str)> = small_feed()
        .into_iter()
        .map(|(f, t)| if f == file { (f, text) } else { (f, t) })
        .collect();
    load(feed_dir(name, &files))
}

/// `hh:mm` local time on `date` in the small feed's Paris (UTC+1 in winter), ms.
fn paris(date: Date, hh: i64, mm: i64) -> i64 {
    date.days() * 86_400_000 - 3_600_000 + (hh * 60 + mm) * 60_000
}

/// Seconds after local midnight of `date` of the moment `ms`.
fn clock_s(date: Date, ms: i64) -> i64 {
    (ms - paris(date, 0, 0)) / 1000
}

/// Every position report from `start_ms` for `minutes`, with nothing random but the
/// timetable: no incidents, breakdowns or GPS dropouts, and few riders (five stops
/// would otherwise share a city's riders, and boarding them would hold every vehicle).
fn run(network: &Arc<Network>, start_ms: i64, minutes: i64) -> Vec<VehiclePosition> {
    run_with(network, start_ms, minutes, None).0
}

/// Reports by vehicle, in time order.
fn by_vehicle(reports: Vec<VehiclePosition>) -> BTreeMap<String, Vec<VehiclePosition>> {
    let mut map: BTreeMap<String, Vec<VehiclePosition>> = BTreeMap::new();
    for p in reports {
        map.entry(p.vehicle_id.to_string()).or_default().push(p);
    }
    map
}

/// When the vehicle left its first stop: its first report bound for its second.
fn departure(reports: &[VehiclePosition], trip: &str, second_stop: &str) -> i64 {
    reports
        .iter()
        .find(|p| p.trip_id == trip && p.next_stop_id == second_stop)
        .unwrap_or_else(|| panic!("{trip} never left for {second_stop}"))
        .timestamp
}

const MONDAY: Date = Date::from_ymd(2025, 3, 3);

#[test]
fn a_block_runs_its_trips_on_one_vehicle_in_order_and_on_time() {
    let network = small();
    let reports = by_vehicle(run(&network, paris(MONDAY, 7, 55), 40));
    let b1 = &reports["B1"];
    // R1-a then R1-b, never back.
    let trips: Vec<&str> = b1.iter().map(|p| p.trip_id.as_str()).collect();
    let switch = trips.iter().position(|t| *t == "R1-b").expect("R1-b ran");
    assert!(trips[..switch].iter().all(|t| *t == "R1-a"), "{trips:?}");
    assert!(trips[switch..].iter().all(|t| *t == "R1-b"), "{trips:?}");
    // Each calls at its stops in order: P1, S2, S3 then S3, P2.
    let mut calls: Vec<(&str, &str)> = b1
        .iter()
        .map(|p| (p.trip_id.as_str(), p.next_stop_id.as_str()))
        .collect();
    calls.dedup();
    assert_eq!(
        calls,
        [
            ("R1-a", "P1"),
            ("R1-a", "S2"),
            ("R1-a", "S3"),
            ("R1-b", "S3"),
            ("R1-b", "P2")
        ]
    );
    // It leaves at its times (08:00, 08:20), within the dwell, and runs about on time.
    let a = clock_s(MONDAY, departure(b1, "R1-a", "S2"));
    let b = clock_s(MONDAY, departure(b1, "R1-b", "P2"));
    assert!((8 * 3600..8 * 3600 + 30).contains(&a), "R1-a left at {a} s");
    assert!(
        (8 * 3600 + 1200..8 * 3600 + 1230).contains(&b),
        "R1-b left at {b} s"
    );
    for p in b1.iter().filter(|p| p.status == VehicleStatus::InTransitTo) {
        assert!(p.delay_s.abs() <= 120, "{p:?}");
    }
    // Reports name the service day and the trip's start, as GTFS-realtime does.
    assert_eq!(b1[0].start_date.as_deref(), Some("20250303"));
    assert_eq!(b1[0].start_time.as_deref(), Some("08:00:00"));
    // After its last trip the vehicle leaves service, signing off with a last report.
    let last = b1.last().unwrap();
    assert_eq!(last.status, VehicleStatus::OutOfService, "{last:?}");
    assert!(
        clock_s(MONDAY, last.timestamp) < 8 * 3600 + 32 * 60,
        "{last:?}"
    );
}

#[test]
fn frequencies_start_a_run_every_headway_exactly_or_about() {
    let network = small();
    let reports = by_vehicle(run(&network, paris(MONDAY, 9, 25), 80));
    // Runs of T1-freq, each a vehicle of its own, named by its start.
    let grid = |id: &str| {
        let hhmm = &id["T1-freq@".len()..];
        hhmm[..2].parse::<i64>().unwrap() * 3600 + hhmm[2..].parse::<i64>().unwrap() * 60
    };
    let starts: BTreeMap<&str, i64> = reports
        .iter()
        .filter(|(id, _)| {
            id.starts_with("T1-freq@") && (9 * 3600 + 1800..=10 * 3600 + 1800).contains(&grid(id))
        })
        .map(|(id, r)| (id.as_str(), clock_s(MONDAY, departure(r, "T1-freq", "S3"))))
        .collect();
    // 09:30, 09:40, 09:50 exactly (every 600 s); 10:00, 10:15, 10:30 about (every 900 s).
    let exact: Vec<i64> = starts
        .iter()
        .filter(|(id, _)| grid(id) < 10 * 3600)
        .map(|(id, s)| s - grid(id))
        .collect();
    let about: Vec<i64> = starts
        .iter()
        .filter(|(id, _)| (10 * 3600..=10 * 3600 + 1800).contains(&grid(id)))
        .map(|(id, s)| s - grid(id))
        .collect();
    assert_eq!((exact.len(), about.len()), (3, 3), "{starts:?}");
    assert!(exact.iter().all(|d| (0..30).contains(d)), "{starts:?}");
    // Without exact times a start strays up to a tenth of the headway (90 s), and
    // some do.
    assert!(about.iter().all(|d| (-90..120).contains(d)), "{starts:?}");
    assert!(about.iter().any(|d| !(0..30).contains(d)), "{starts:?}");
}

#[test]
fn a_trip_past_midnight_runs_after_midnight_as_a_trip_of_the_day_before() {
    let network = small();
    let tuesday = Date::from_ymd(2025, 3, 4);
    let reports = by_vehicle(run(&network, paris(tuesday, 0, 40), 30));
    let night = &reports["R1-night"];
    assert_eq!(night[0].start_date.as_deref(), Some("20250303"));
    assert_eq!(night[0].start_time.as_deref(), Some("24:50:00"));
    let left = clock_s(tuesday, departure(night, "R1-night", "S3"));
    assert!((50 * 60..50 * 60 + 30).contains(&left), "left at {left} s");
}

#[test]
fn a_day_outside_the_calendar_runs_the_nearest_same_weekday_inside_it() {
    let network = small();
    // The feed runs through 2025; 2 March 2026 is a Monday.
    let monday_2026 = Date::from_ymd(2026, 3, 2);
    assert_eq!(
        network.timetable_day(monday_2026),
        Some(Date::from_ymd(2025, 12, 29))
    );
    assert_eq!(
        network.timetable_day(Date::from_ymd(2024, 6, 5)),
        Some(Date::from_ymd(2025, 1, 1))
    );
    let reports = by_vehicle(run(&network, paris(monday_2026, 7, 55), 10));
    let b1 = &reports["B1"];
    // The timetable of that day, on the simulated day.
    assert_eq!(b1[0].start_date.as_deref(), Some("20260302"));
    let a = clock_s(monday_2026, departure(b1, "R1-a", "S2"));
    assert!((8 * 3600..8 * 3600 + 30).contains(&a), "R1-a left at {a} s");
    // A Saturday has no service: nothing runs (the command line refuses it).
    let saturday = Date::from_ymd(2025, 3, 8);
    assert!(network.trips_on(saturday).is_empty());
    assert!(run(&network, paris(saturday, 7, 55), 10).is_empty());
}

#[test]
fn a_late_arrival_delays_the_blocks_next_trip() {
    // B1's first trip is timetabled faster than a bus can run it (1.8 km in a minute,
    // through S2), with 30 s to turn round: it arrives late, and its next trip leaves late.
    let stop_times = streamcity_testkit::feeds::STOP_TIMES
        .replace("R1-a,08:10:00,08:11:00,S3,3", "R1-a,08:01:00,08:01:00,S3,3")
        .replace("R1-b,08:20:00,08:20:00,S3,1", "R1-b,08:01:30,08:01:30,S3,1");
    assert!(
        stop_times.contains("R1-a,08:01:00") && stop_times.contains("R1-b,08:01:30"),
        "{stop_times}"
    );
    let network = small_with("late-block", "stop_times.txt", &stop_times);
    let reports = by_vehicle(run(&network, paris(MONDAY, 7, 55), 20));
    let b1 = &reports["B1"];
    let arrived = b1
        .iter()
        .find(|p| p.trip_id == "R1-b")
        .map(|p| clock_s(MONDAY, p.timestamp))
        .unwrap();
    let left = clock_s(MONDAY, departure(b1, "R1-b", "P2"));
    let due = 8 * 3600 + 90;
    assert!(
        arrived > due,
        "B1 turned round at {arrived} s, before R1-b was due"
    );
    assert!(left > due + 20, "R1-b left at {left} s, due at {due}");
    // Its reports say so.
    let leaving = b1
        .iter()
        .find(|p| p.trip_id == "R1-b" && p.next_stop_id == "P2")
        .unwrap();
    assert!(leaving.delay_s > 20, "{leaving:?}");
}

/// npm's sample-gtfs-feed 0.13.0 (`scripts/test.sh` fetches it).
fn sample_feed() -> Arc<Network> {
    let path = std::env::var("STREAMCITY_TEST_SAMPLE_GTFS").expect(
        "STREAMCITY_TEST_SAMPLE_GTFS is not set: run the tests with scripts/test.sh, which fetches npm's sample-gtfs-feed",
    );
    Arc::new(
        gtfs::load(std::path::Path::new(&path))
            .unwrap_or_else(|e| panic!("{e}"))
            .network,
    )
}

#[test]
fn the_sample_feed_runs_its_frequencies_on_the_dot_and_its_loop_in_order() {
    let network = sample_feed();
    // Monday 11 March 2019, in Warsaw's winter time (UTC+1), as the feed's first agency.
    let monday = Date::from_ymd(2019, 3, 11);
    assert_eq!(network.utc_offset_min, 60);
    let reports = by_vehicle(run(&network, paris(monday, 7, 55), 70));
    // The tram every 5 minutes from 08:00 to 08:59, on the dot (exact_times=1), calling
    // at the airport station (the feed names the station, not a platform).
    let starts: Vec<(String, i64)> = reports
        .iter()
        .filter(|(id, _)| id.starts_with("b-downtown-on-working-days@"))
        .map(|(id, r)| {
            (
                id.clone(),
                clock_s(monday, departure(r, "b-downtown-on-working-days", "lake")),
            )
        })
        .collect();
    assert_eq!(starts.len(), 12, "{starts:?}");
    for (k, (id, left)) in starts.iter().enumerate() {
        // A frequency's start is the first departure (the template's 13:14).
        let due = 8 * 3600 + 300 * k as i64;
        assert!(
            (due..due + 30).contains(left),
            "{id} left at {left} s, due at {due}"
        );
    }
    // The evening loop calls at the airport twice, in order.
    let evening = by_vehicle(run(&network, paris(monday, 19, 15), 40));
    let mut calls: Vec<&str> = evening["c-outbound-all-day"]
        .iter()
        .map(|p| p.next_stop_id.as_str())
        .collect();
    calls.dedup();
    assert_eq!(calls, ["airport", "museum", "airport", "center"]);
}

#[test]
fn a_network_of_rail_alone_runs_without_street_traffic() {
    // Every route a metro: traffic incidents have no street to happen on.
    let routes = streamcity_testkit::feeds::ROUTES
        .replace(",3,FF8800", ",1,FF8800")
        .replace(",0,\n", ",1,\n")
        .replace(",4,\n", ",1,\n")
        .replace(",202,\n", ",1,\n")
        .replace(",12,\n", ",1,\n");
    assert!(
        routes
            .lines()
            .skip(1)
            .all(|l| l.split(',').nth(4) == Some("1")),
        "{routes}"
    );
    let network = small_with("rail", "routes.txt", &routes);
    let mut config = SimConfig {
        start_ms: paris(MONDAY, 7, 55),
        ..SimConfig::default()
    };
    config.traffic.gaps = Gaps::rate(1.0);
    let mut sim = Simulation::new(network, config);
    let mut out = Vec::new();
    for _ in 0..10 * 60_000 / sim.config().tick_ms {
        sim.step(&mut out);
    }
    assert_eq!(sim.counts().traffic, 0);
    assert!(sim.counts().positions > 0);
}

#[test]
fn summer_time_moves_the_timetable_with_the_citys_clocks() {
    let network = small();
    // Paris changed to summer time (UTC+2) at 02:00 on Sunday 30 March 2025.
    let monday = Date::from_ymd(2025, 3, 31);
    let eight = network.local_time_ms(monday, 8 * 3600);
    assert_eq!(eight, 1_743_400_800_000); // 2025-03-31T06:00:00Z
    assert_eq!(network.utc_offset_at(eight), 120);
    assert_eq!(network.utc_offset_at(paris(MONDAY, 8, 0)), 60);
    // Where the Sunday's timetable counts from: noon (10:00 UTC, summer time) less
    // twelve hours, 22:00 UTC on the Saturday: 23:00 by the clocks, an hour before
    // their midnight (GTFS's rule for such a day).
    assert_eq!(
        network.service_day_start_ms(Date::from_ymd(2025, 3, 30)),
        1_743_285_600_000
    );
    // B1 leaves at 08:00 by the clocks: 06:00 UTC.
    let reports = by_vehicle(run(&network, eight - 5 * 60_000, 10));
    let left = departure(&reports["B1"], "R1-a", "S2");
    assert!(
        (eight..eight + 30_000).contains(&left),
        "left at {left}, due {eight}"
    );
}

/// B1 on R1-a from 07:30 for 45 minutes with riders at every stop: riders aboard when
/// bound for S2 and when bound for S3, riders who got off at S2, and when it left S2.
fn through_s2(network: Arc<Network>) -> (u32, u32, usize, i64) {
    let mut config = SimConfig {
        start_ms: paris(MONDAY, 7, 30),
        ..SimConfig::default()
    };
    config.traffic.gaps = Gaps::rate(0.0);
    config.incidents.gaps = Gaps::rate(0.0);
    config.taps.gaps = Gaps::rate(0.03);
    config.breakdowns_per_vehicle_hour = 0.0;
    config.dropouts_per_vehicle_hour = 0.0;
    let mut sim = Simulation::new(network, config);
    let mut out = Vec::new();
    for _ in 0..45 * 60_000 / sim.config().tick_ms {
        sim.step(&mut out);
    }
    let off_at_s2 = out
        .iter()
        .filter(|e| {
            matches!(e, SimEvent::TapOff(t) if t.stop_id == "S2" && t.route_id.as_deref() == Some("R1"))
        })
        .count();
    let b1: Vec<VehiclePosition> = out
        .into_iter()
        .filter_map(|e| match e {
            SimEvent::Position(p) if p.vehicle_id == "B1" && p.trip_id == "R1-a" => Some(p),
            _ => None,
        })
        .collect();
    // Riders aboard as it pulls in (the last report on the way), and as it leaves.
    let coming = b1
        .iter()
        .rfind(|p| p.next_stop_id == "S2" && p.status == VehicleStatus::InTransitTo)
        .unwrap();
    let leaving = b1.iter().find(|p| p.next_stop_id == "S3").unwrap();
    (
        coming.passengers,
        leaving.passengers,
        off_at_s2,
        leaving.timestamp,
    )
}

#[test]
fn nobody_boards_or_alights_where_the_timetable_says_so_and_only_timepoints_hold() {
    // As timetabled, riders board B1 at S2 (those at P1 took the tram), and it waits
    // there for 08:05.
    let (before, after, _, left) = through_s2(small());
    assert!(
        after > before,
        "nobody boarded at S2 ({before}, then {after}): the test proves nothing"
    );
    assert!(
        left >= paris(MONDAY, 8, 5),
        "left S2 at {}",
        clock_s(MONDAY, left)
    );
    // Now R1-a passes S2 taking nobody up and setting nobody down; its time there is
    // interpolated (not a timepoint), so an early bus does not wait at it.
    let stop_times: String = streamcity_testkit::feeds::STOP_TIMES
        .lines()
        .enumerate()
        .map(|(i, line)| match (i, line) {
            (0, header) => format!("{header},pickup_type,drop_off_type\n"),
            (_, "R1-a,,,S2,2") => "R1-a,,,S2,2,1,1\n".to_owned(),
            (_, row) => format!("{row},,\n"),
        })
        .collect();
    assert!(stop_times.contains("S2,2,1,1"), "{stop_times}");
    let network = small_with("no-pickup", "stop_times.txt", &stop_times);
    let call = &network.trip("R1-a").unwrap().stop_times[1];
    assert!(
        !call.pickup && !call.drop_off && !call.timepoint,
        "{call:?}"
    );
    let (before, after, off, left) = through_s2(network);
    assert!(before < 80, "B1 is full: nobody could board");
    assert_eq!((off, before), (0, after), "riders got on or off at S2");
    assert!(
        left < paris(MONDAY, 8, 5),
        "left S2 at {}",
        clock_s(MONDAY, left)
    );
}

/// A city incident at `stop` of the small feed from `start_ms` to `end_ms`.
fn incident_at(
    network: &Network,
    stop: &str,
    kind: streamcity_core::CityIncidentKind,
    effect: streamcity_core::TransitEffect,
    routes: &[&str],
    (start_ms, end_ms): (i64, i64),
) -> streamcity_core::CityIncident {
    let s = network.stop(stop).unwrap();
    streamcity_core::CityIncident {
        event_id: "INF-TEST".into(),
        category: kind.category(),
        kind,
        status: streamcity_core::IncidentStatus::Active,
        severity: streamcity_core::Severity::High,
        message: "Test incident".into(),
        area: "Harbour".into(),
        lat: s.lat,
        lon: s.lon,
        radius_m: 150.0,
        affected_groups: Vec::new(),
        instructions: Vec::new(),
        cause: None,
        affected_customers: None,
        utility_company: None,
        transit_effect: effect,
        speed_factor: (effect == streamcity_core::TransitEffect::Slowdown).then_some(0.2),
        affected_routes: routes.iter().map(|r| (*r).into()).collect(),
        started_at: start_ms,
        expires_at: None,
        estimated_restoration: Some(end_ms),
        timestamp: start_ms,
    }
}

/// Like [`run`], with `incident` (if any) starting at `start_ms`; also the
/// simulation's counts.
fn run_with(
    network: &Arc<Network>,
    start_ms: i64,
    minutes: i64,
    incident: Option<streamcity_core::CityIncident>,
) -> (Vec<VehiclePosition>, streamcity_producers::sim::SimCounts) {
    let mut config = SimConfig {
        start_ms,
        ..SimConfig::default()
    };
    config.traffic.gaps = Gaps::rate(0.0);
    config.incidents.gaps = Gaps::rate(0.0);
    config.taps.gaps = Gaps::rate(0.02);
    config.breakdowns_per_vehicle_hour = 0.0;
    config.dropouts_per_vehicle_hour = 0.0;
    let mut sim = Simulation::new(Arc::clone(network), config);
    let mut out = Vec::new();
    if let Some(incident) = incident {
        sim.start_city_incident(incident, &mut out);
    }
    for _ in 0..minutes * 60_000 / sim.config().tick_ms {
        sim.step(&mut out);
    }
    let reports = out
        .into_iter()
        .filter_map(|e| match e {
            SimEvent::Position(p) => Some(p),
            _ => None,
        })
        .collect();
    (reports, sim.counts())
}

#[test]
fn a_run_due_on_a_suspended_line_is_cancelled_and_a_closed_road_s_stop_is_passed_by() {
    use streamcity_core::{CityIncidentKind, TransitEffect};
    let network = small();
    let monday = Date::from_ymd(2025, 3, 3);
    // R1 suspended from 07:55 to 08:15: block B1's R1-a (08:00) does not run; its
    // vehicle goes on to R1-b (08:20), due after the line is back.
    let outage = incident_at(
        &network,
        "S2",
        CityIncidentKind::PowerOutage,
        TransitEffect::Suspension,
        &["R1"],
        (paris(monday, 7, 55), paris(monday, 8, 15)),
    );
    let (reports, counts) = run_with(&network, paris(monday, 7, 55), 40, Some(outage));
    assert_eq!(counts.cancelled, 1);
    let b1 = by_vehicle(reports).remove("B1").unwrap();
    assert!(
        b1.iter()
            .filter(|p| p.trip_id == "R1-a")
            .all(|p| p.status == VehicleStatus::Layover),
        "R1-a ran: {:?}",
        b1.iter()
            .find(|p| p.trip_id == "R1-a" && p.status != VehicleStatus::Layover)
    );
    assert!(
        b1.iter()
            .any(|p| p.trip_id == "R1-b" && p.status == VehicleStatus::InTransitTo),
        "R1-b did not run"
    );

    // A road closed around S2 from 07:55 to 09:00: R1-a runs but does not stop there.
    let closure = incident_at(
        &network,
        "S2",
        CityIncidentKind::RoadClosure,
        TransitEffect::Slowdown,
        &["R1"],
        (paris(monday, 7, 55), paris(monday, 9, 0)),
    );
    let (reports, counts) = run_with(&network, paris(monday, 7, 55), 25, Some(closure));
    assert_eq!(counts.skipped_calls, 1);
    let b1 = by_vehicle(reports).remove("B1").unwrap();
    assert!(
        b1.iter()
            .any(|p| p.trip_id == "R1-a" && p.next_stop_id == "S3")
    );
    assert!(
        !b1.iter()
            .any(|p| p.next_stop_id == "S2" && p.status == VehicleStatus::StoppedAt),
        "B1 stopped at S2"
    );
}
