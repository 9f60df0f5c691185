//! The twin on a real city's GTFS feed (Cairns, fetched by `scripts/test.sh`): `gtfs
//! inspect` says what it holds, and `streamcity --gtfs` runs it live: the dashboard
//! lists the feed's routes and stops by their ids and names, and the vehicles run on
//! its routes, inside its area. With `--date` and `--start` in the city's local time,
//! the vehicles in service are the trips the timetable has running then (counted by
//! `gtfs_truth.py`, apart from StreamCity), on their shapes, calling at their stops
//! in order. A day without service is refused.

#![allow(clippy::unwrap_used)]

use std::collections::HashSet;
use std::time::{Duration, Instant};

use serde_json::Value;
use streamcity_testkit::stage::{Binary, api_vehicles, http_get, stderr};

fn cairns() -> String {
    std::env::var("STREAMCITY_TEST_CAIRNS").expect(
        "STREAMCITY_TEST_CAIRNS is not set: run the tests with scripts/test.sh, which fetches the Cairns GTFS feed",
    )
}

fn bin() -> Binary {
    Binary::new(env!("CARGO_BIN_EXE_streamcity"))
}

/// `(id, name)` of the rows of `file` in the zipped feed, read by Python's csv module.
fn feed_rows(file: &str, id: &str, name: &str) -> Vec<(String, String, f64, f64)> {
    let script = "import csv, io, json, sys, zipfile\n\
                  rows = csv.DictReader(io.TextIOWrapper(zipfile.ZipFile(sys.argv[1]).open(sys.argv[2]), 'utf-8-sig'))\n\
                  print(json.dumps([[r[sys.argv[3]], r.get(sys.argv[4], ''), float(r.get('stop_lat') or 0), float(r.get('stop_lon') or 0)] for r in rows]))";
    let out = std::process::Command::new("python3")
        .args(["-c", script, &cairns(), file, id, name])
        .output()
        .expect("python3 reads the feed");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn gtfs_inspect_says_what_the_feed_holds() {
    let out = bin().run(&["gtfs", "inspect", &cairns()]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(text.contains("22 routes, 416 stops, 1339 trips"), "{text}");
    assert!(
        text.contains("stop_times.txt") && text.contains("37790"),
        "{text}"
    );
    // Some Cairns trips start at a stop off their shape (a depot, a layover bay).
    assert!(
        text.contains("trips with a stop over 100 m from their shape"),
        "{text}"
    );
    // A file that is not a feed: a clear error, exit status 1, no panic.
    let junk = std::env::temp_dir().join(format!("streamcity-not-gtfs-{}.zip", std::process::id()));
    std::fs::write(&junk, b"PK\x03\x04 broken").unwrap();
    let out = bin().run(&["gtfs", "inspect", junk.to_str().unwrap()]);
    std::fs::remove_file(&junk).unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("not a readable GTFS feed"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn the_twin_runs_the_cairns_feed_live() {
    // Pinned to a morning of a weekday outside the feed's calendar (Tuesday 1 December
    // 2026), so that the vehicles in service do not depend on when the test runs: at
    // night, or on a Sunday, Cairns runs fewer than 20 buses.
    let mut twin = bin().start(&[
        "--gtfs",
        &cairns(),
        "--date",
        "2026-12-01",
        "--start",
        "08:00",
        "--port",
        "0",
        "--speed",
        "5",
    ]);
    let port: u16 = twin.dashboard_port().parse().unwrap();
    assert!(
        twin.printed().contains(
            "Service day 2026-12-01 (Tuesday) is outside the feed's calendar (2014-05-26 to 2014-12-28): running the timetable of 2014-12-23"
        ),
        "{}",
        twin.printed()
    );
    // The feed's routes and stops, by their ids and names.
    let (_, routes) = http_get(port, "/api/routes");
    let routes: Value = serde_json::from_str(&routes).unwrap();
    let served: HashSet<String> = routes
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["route_id"].as_str().unwrap().to_owned())
        .collect();
    let feed_routes: HashSet<String> = feed_rows("routes.txt", "route_id", "route_short_name")
        .into_iter()
        .map(|r| r.0)
        .collect();
    assert_eq!(served, feed_routes);
    let (_, stops) = http_get(port, "/api/stops");
    let stops: Value = serde_json::from_str(&stops).unwrap();
    let served: HashSet<(String, String)> = stops
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["stop_id"].as_str().unwrap().to_owned(),
                s["name"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let feed_stops = feed_rows("stops.txt", "stop_id", "stop_name");
    for (id, name, ..) in &feed_stops {
        assert!(
            served.contains(&(id.clone(), name.clone())),
            "stop {id} {name} not served"
        );
    }
    // Vehicles run on the feed's routes, inside its area (with a kilometre to spare).
    let lat = |f: fn(f64, f64) -> f64| feed_stops.iter().map(|s| s.2).fold(feed_stops[0].2, f);
    let lon = |f: fn(f64, f64) -> f64| feed_stops.iter().map(|s| s.3).fold(feed_stops[0].3, f);
    let (lat0, lat1, lon0, lon1) = (
        lat(f64::min) - 0.01,
        lat(f64::max) + 0.01,
        lon(f64::min) - 0.01,
        lon(f64::max) + 0.01,
    );
    let vehicles = api_vehicles(port, 20, Duration::from_secs(30), || twin.printed());
    for v in &vehicles {
        assert!(feed_routes.contains(v["route_id"].as_str().unwrap()), "{v}");
        let (la, lo) = (v["lat"].as_f64().unwrap(), v["lon"].as_f64().unwrap());
        assert!(
            (lat0..=lat1).contains(&la) && (lon0..=lon1).contains(&lo),
            "outside Cairns: {v}"
        );
    }
    twin.stop();
}

/// What `tests/gtfs_truth.py` says of the Cairns feed on `day` at `at` seconds of the
/// service day, and of `vehicles`.
fn truth(day: &str, at: i64, vehicles: &[Value]) -> Value {
    use std::io::Write as _;
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/gtfs_truth.py");
    let mut child = std::process::Command::new("python3")
        .args([script, &cairns(), day, &at.to_string()])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("python3 runs gtfs_truth.py");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(serde_json::to_string(vehicles).unwrap().as_bytes())
        .unwrap();
    let out =
        streamcity_testkit::stage::finish(&mut child, Duration::from_secs(60), "gtfs_truth.py");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Seconds of a time `HH:MM:SS` (hours may pass 24).
fn hms(t: &str) -> i64 {
    t.split(':')
        .fold(0, |acc, p| acc * 60 + p.parse::<i64>().unwrap())
}

#[test]
fn on_a_date_and_a_local_time_the_vehicles_in_service_are_the_timetables_trips() {
    // 2 June 2014, a Monday; 08:00 in Cairns (UTC+10).
    let mut twin = bin().start(&[
        "--gtfs",
        &cairns(),
        "--date",
        "2014-06-02",
        "--start",
        "08:00",
        "--speed",
        "10",
        "--port",
        "0",
    ]);
    let port: u16 = twin.dashboard_port().parse().unwrap();
    assert!(
        twin.printed()
            .contains("Service day 2014-06-02 (Monday): 622 trips"),
        "{}",
        twin.printed()
    );
    let midnight_ms = 1_401_631_200_000_i64; // 2014-06-02T00:00+10:00
    let snapshot = || -> (Vec<Value>, i64) {
        let (_, body) = http_get(port, "/api/vehicles");
        let vehicles: Vec<Value> = serde_json::from_str(&body).unwrap();
        let now = vehicles
            .iter()
            .map(|v| v["timestamp"].as_i64().unwrap())
            .max()
            .unwrap_or(0);
        (vehicles, (now - midnight_ms) / 1000)
    };
    api_vehicles(port, 20, Duration::from_secs(30), || twin.printed());
    let (vehicles, at) = snapshot();
    assert!(
        (8 * 3600..8 * 3600 + 600).contains(&at),
        "the twin is at {at} s of the day"
    );
    let feed = truth("20140602", at, &vehicles);
    let trips = feed["trips"].as_object().unwrap();
    // Every vehicle runs a trip of the day, around its scheduled time: boarding at its
    // first stop up to three minutes before, or late by at most ten minutes.
    let mut on_the_road = HashSet::new();
    for v in &vehicles {
        let trip = v["trip_id"].as_str().unwrap();
        let t = trips
            .get(trip)
            .unwrap_or_else(|| panic!("{trip} does not run on 2 June 2014: {v}"));
        let (start, end) = (t["start"].as_i64().unwrap(), t["end"].as_i64().unwrap());
        assert!(
            start - 180 <= at && at <= end + 600,
            "{v} at {at} s: trip runs {start}..{end}"
        );
        assert_eq!(hms(v["start_time"].as_str().unwrap()), start, "{v}");
        assert_eq!(v["start_date"], "20140602", "{v}");
        if at >= start {
            on_the_road.insert(trip.to_owned());
        }
    }
    // ...and every trip the timetable has running is on the road (a vehicle late
    // from its last trip may not have started it yet: a tenth of them at most).
    let active: HashSet<String> = feed["active"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap().to_owned())
        .collect();
    assert!(active.len() >= 20, "{active:?}");
    let missing: Vec<&String> = active.difference(&on_the_road).collect();
    assert!(
        missing.len() * 10 <= active.len(),
        "not running: {missing:?} of {}",
        active.len()
    );
    // Every vehicle lies on its trip's shape.
    for (vehicle, away) in feed["away_m"].as_object().unwrap() {
        assert!(
            away.as_f64().unwrap() <= 50.0,
            "{vehicle} is {away} m from its shape"
        );
    }
    // Vehicles call at their trips' stops in order: over 20 s (200 s of the city) the
    // next stop each names only moves forward along its trip.
    let mut seen: std::collections::HashMap<(String, String), Vec<String>> = Default::default();
    let until = Instant::now() + Duration::from_secs(20);
    while Instant::now() < until {
        for v in snapshot().0 {
            let key = (
                v["vehicle_id"].as_str().unwrap().to_owned(),
                v["trip_id"].as_str().unwrap().to_owned(),
            );
            let next = v["next_stop_id"].as_str().unwrap().to_owned();
            let calls = seen.entry(key).or_default();
            if calls.last() != Some(&next) {
                calls.push(next);
            }
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let mut moved = 0;
    for ((vehicle, trip), calls) in &seen {
        let stops: Vec<&str> = trips[trip.as_str()]["stops"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s.as_str().unwrap())
            .collect();
        let mut from = 0;
        for call in calls {
            let at = stops[from..]
                .iter()
                .position(|s| s == call)
                .unwrap_or_else(|| {
                    panic!(
                        "{vehicle} on {trip} went back to or off its stops: {calls:?} of {stops:?}"
                    )
                });
            from += at;
        }
        moved += usize::from(calls.len() > 1);
    }
    assert!(
        moved >= 10,
        "only {moved} vehicles reached a stop in 200 s: {seen:?}"
    );
    twin.stop();
}

#[test]
fn a_day_outside_the_calendar_runs_the_nearest_same_weekday_and_a_day_without_service_is_refused() {
    // Cairns' calendar ends on 28 December 2014; 30 November 2026 is a Monday.
    let mut twin = bin().start(&[
        "--gtfs",
        &cairns(),
        "--date",
        "2026-11-30",
        "--start",
        "08:00",
        "--port",
        "0",
    ]);
    let _ = twin.dashboard_port();
    let printed = twin.printed();
    assert!(
        printed.contains("Service day 2026-11-30 (Monday) is outside the feed's calendar (2014-05-26 to 2014-12-28): running the timetable of 2014-12-22, the nearest Monday inside it"),
        "{printed}"
    );
    twin.stop();
    // The small feed has no service on Saturdays.
    let dir =
        streamcity_testkit::feeds::feed_dir("saturday", &streamcity_testkit::feeds::small_feed());
    let out = bin().run(&[
        "--gtfs",
        dir.to_str().unwrap(),
        "--date",
        "2025-03-08",
        "--start",
        "08:00",
        "--port",
        "0",
    ]);
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("no trip of the feed runs on 2025-03-08 (Saturday): its calendar runs from 2025-01-01 to 2025-12-31; choose another --date"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn the_built_in_city_exports_as_a_feed_a_validator_passes_and_the_twin_runs_again() {
    let dir = std::env::temp_dir().join(format!("streamcity-export-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let zip = dir.join("city.zip");
    let out = bin().run(&["gtfs", "export", zip.to_str().unwrap(), "--seed", "7"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("city.zip"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    // MobilityData's rules, as gtfs-guru (PyPI) checks them: no error.
    let python = std::env::var("STREAMCITY_PYTHON").expect(
        "STREAMCITY_PYTHON is not set: scripts/test.sh installs gtfs-guru into the tests' Python (benchmarks/python-env.sh)",
    );
    let check = "import gtfs_guru, json, sys\n\
                 r = gtfs_guru.validate(sys.argv[1])\n\
                 print(json.dumps({'errors': [[n.code, n.message] for n in r.errors()], 'warnings': sorted({n.code for n in r.warnings()})}))";
    let checked = std::process::Command::new(&python)
        .args(["-c", check, zip.to_str().unwrap()])
        .output()
        .unwrap_or_else(|e| panic!("running {python}: {e}"));
    assert!(
        checked.status.success(),
        "{}",
        String::from_utf8_lossy(&checked.stderr)
    );
    let report: Value = serde_json::from_slice(&checked.stdout).unwrap();
    assert_eq!(report["errors"], serde_json::json!([]), "{report}");
    // Read back, it is the same city: routes, stops, shapes, trips and headways.
    let city = streamcity_network::synthetic::generate(streamcity_network::SyntheticConfig {
        seed: 7,
        ..Default::default()
    });
    let back = streamcity_network::gtfs::load(&zip).unwrap_or_else(|e| panic!("{e}"));
    let n = &back.network;
    assert_eq!(back.report.warning_count(), 0, "{:?}", back.report.warnings);
    let routes = |n: &streamcity_network::Network| -> Vec<String> {
        n.routes
            .iter()
            .map(|r| {
                format!(
                    "{} {} {} {:?} {} {:?} {}",
                    r.route_id,
                    r.short_name,
                    r.name,
                    r.mode,
                    r.color.to_lowercase(),
                    r.stop_ids,
                    r.headway_s
                )
            })
            .collect()
    };
    assert_eq!(routes(n), routes(&city));
    assert_eq!(n.stops.len(), city.stops.len());
    for s in &city.stops {
        let t = n
            .stop(&s.stop_id)
            .unwrap_or_else(|| panic!("stop {} lost", s.stop_id));
        assert_eq!(t.name, s.name);
        assert!(
            (t.lat - s.lat).abs() < 1e-6 && (t.lon - s.lon).abs() < 1e-6,
            "{t:?} {s:?}"
        );
    }
    // Each trip read back as written; one repeated at exact times (the rail lines) as
    // one trip per run, its times shifted to the run's start.
    let mut written = 0;
    for t in &city.trips {
        // (A run's times count from its first departure; none before midnight.)
        let read_back = |st: &[streamcity_network::model::StopTime], shift: i64| {
            let at = |s: u32| (i64::from(s) + shift).max(0) as u32;
            st.iter()
                .zip(1..)
                .map(|(st, k)| streamcity_network::model::StopTime {
                    dist_m: None,
                    sequence: Some(k),
                    arrival_s: at(st.arrival_s),
                    departure_s: at(st.departure_s),
                    ..st.clone()
                })
                .collect::<Vec<_>>()
        };
        let exact = !t.frequencies.is_empty() && t.frequencies.iter().all(|f| f.exact_times);
        if !exact {
            let u = n.trip(&t.trip_id).unwrap();
            assert_eq!(
                (&u.stop_times, &u.frequencies),
                (&read_back(&t.stop_times, 0), &t.frequencies)
            );
            written += 1;
            continue;
        }
        assert!(
            n.trip(&t.trip_id).is_none(),
            "{} written as a template",
            t.trip_id
        );
        let first = t.stop_times[0].departure_s;
        for f in &t.frequencies {
            for start in f.starts() {
                let id = format!(
                    "{}-{:02}{:02}{:02}",
                    t.trip_id,
                    start / 3600,
                    start / 60 % 60,
                    start % 60
                );
                let u = n
                    .trip(&id)
                    .unwrap_or_else(|| panic!("run {id} not written"));
                assert!(u.frequencies.is_empty());
                assert_eq!(
                    u.stop_times,
                    read_back(&t.stop_times, i64::from(start) - i64::from(first)),
                    "{id}"
                );
                written += 1;
            }
        }
    }
    assert_eq!(n.trips.len(), written);
    // Every trip follows its shape: both ways along each route.
    assert!(
        n.patterns.iter().all(|p| p.farthest_stop_m < 30.0),
        "{:?}",
        n.patterns
            .iter()
            .map(|p| p.farthest_stop_m)
            .collect::<Vec<_>>()
    );
    // And the twin runs it.
    let mut twin = bin().start(&[
        "--gtfs",
        zip.to_str().unwrap(),
        "--start",
        "08:00",
        "--port",
        "0",
        "--speed",
        "5",
    ]);
    let port: u16 = twin.dashboard_port().parse().unwrap();
    api_vehicles(port, 100, Duration::from_secs(30), || twin.printed());
    twin.stop();
    std::fs::remove_dir_all(&dir).unwrap();
}
