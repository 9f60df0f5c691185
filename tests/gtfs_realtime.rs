//! The twin's GTFS-realtime feeds, checked by tools someone else wrote: the official
//! bindings (PyPI `gtfs-realtime-bindings`) decode them, and `gtfs-rt-validator`
//! (MobilityData's rules, PyPI) finds no error in them against the static feed. On
//! Cairns (fetched by `scripts/test.sh`), 2 June 2014 from 08:00.

#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::time::Duration;

use serde_json::Value;
use streamcity_testkit::stage::{Binary, api_vehicles, http_get_bytes};

fn cairns() -> String {
    std::env::var("STREAMCITY_TEST_CAIRNS").expect(
        "STREAMCITY_TEST_CAIRNS is not set: run the tests with scripts/test.sh, which fetches the Cairns GTFS feed",
    )
}

fn python() -> String {
    std::env::var("STREAMCITY_PYTHON").expect(
        "STREAMCITY_PYTHON is not set: scripts/test.sh installs the GTFS-realtime bindings and validator into the tests' Python (benchmarks/python-env.sh)",
    )
}

/// Runs `summary` (Python printing JSON of `m`, the feed in `file` as the official
/// bindings parse it) and returns what it printed.
fn bindings(file: &std::path::Path, summary: &str) -> Value {
    let script = format!(
        "import json, sys\nfrom google.transit import gtfs_realtime_pb2\nm = gtfs_realtime_pb2.FeedMessage()\nm.ParseFromString(open(sys.argv[1], 'rb').read())\n{summary}"
    );
    let out = std::process::Command::new(python())
        .args(["-c", &script, file.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "the bindings could not decode {}: {}",
        file.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The feed in `file` as the official bindings read it, summarised as JSON.
fn decoded(file: &std::path::Path) -> Value {
    let summary = "v = lambda e: e.vehicle\n\
                  print(json.dumps({'version': m.header.gtfs_realtime_version, 'timestamp': m.header.timestamp, 'entities': [\n\
                    {'id': e.id, 'trip_id': v(e).trip.trip_id, 'start_date': v(e).trip.start_date, 'start_time': v(e).trip.start_time,\n\
                     'vehicle': v(e).vehicle.id, 'lat': v(e).position.latitude, 'lon': v(e).position.longitude,\n\
                     'stop_id': v(e).stop_id, 'sequence': v(e).current_stop_sequence, 'timestamp': v(e).timestamp,\n\
                     'occupancy': v(e).occupancy_status, 'percentage': v(e).occupancy_percentage,\n\
                     'has_occupancy': v(e).HasField('occupancy_status')} for e in m.entity]}))";
    bindings(file, summary)
}

/// The trip updates in `file` as the official bindings read them: per entity its
/// trip, the stops to come and their predicted times in order (arrival, then
/// departure), in seconds.
fn trip_updates(file: &std::path::Path) -> Value {
    let summary = "def times(u):\n\
                  \x20   return [t for s in u.stop_time_update for t in ([s.arrival.time] if s.HasField('arrival') else []) + ([s.departure.time] if s.HasField('departure') else [])]\n\
                  print(json.dumps({'entities': [{'id': e.id, 'trip_id': e.trip_update.trip.trip_id,\n\
                    'cancelled': e.trip_update.trip.schedule_relationship == 3,\n\
                    'skipped': len([s for s in e.trip_update.stop_time_update if s.schedule_relationship == 1]),\n\
                    'stops': [s.stop_id for s in e.trip_update.stop_time_update], 'times': times(e.trip_update)}\n\
                    for e in m.entity]}))";
    bindings(file, summary)
}

/// The service alerts in `file` as the official bindings read them: per entity its
/// header and the routes, stops and trips it informs.
fn service_alerts(file: &std::path::Path) -> Value {
    let summary = "print(json.dumps({'entities': [{'id': e.id, 'header': e.alert.header_text.translation[0].text,\n\
                    'routes': [i.route_id for i in e.alert.informed_entity if i.route_id],\n\
                    'stops': [i.stop_id for i in e.alert.informed_entity if i.stop_id],\n\
                    'trips': [i.trip.trip_id for i in e.alert.informed_entity if i.HasField('trip')]}\n\
                    for e in m.entity]}))";
    bindings(file, summary)
}

/// gtfs-rt-validator's notices for `feeds` (role flag, file) against the Cairns feed,
/// its clock pinned at `at` (seconds since the epoch); fails on any error.
fn validate(
    gtfs: &str,
    feeds: &[(&str, &std::path::Path)],
    at: u64,
    out: &std::path::Path,
) -> Vec<Value> {
    let validator = std::path::Path::new(&python()).with_file_name("gtfs-rt-validator");
    let at = streamcity_network::calendar::iso8601(at as i64 * 1000);
    let mut command = std::process::Command::new(&validator);
    command.args([
        "-gtfs",
        gtfs,
        "--at",
        &at,
        "--out",
        out.to_str().unwrap(),
        "--fail-on-error",
    ]);
    for (role, file) in feeds {
        command.args([*role, file.to_str().unwrap()]);
    }
    let run = command
        .output()
        .unwrap_or_else(|e| panic!("running {}: {e}", validator.display()));
    let report: Value =
        serde_json::from_slice(&std::fs::read(out.join("report.json")).unwrap_or_default())
            .unwrap_or(Value::Null);
    // On failure, each notice's code, severity, count and first samples (a report can
    // hold thousands).
    let brief: Vec<String> = report["notices"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|n| {
            let samples: Vec<&Value> = n["sampleNotices"]
                .as_array()
                .into_iter()
                .flatten()
                .take(3)
                .collect();
            format!(
                "{} {} x{}: {samples:?}",
                n["code"], n["severity"], n["totalNotices"]
            )
        })
        .collect();
    assert!(
        run.status.success(),
        "gtfs-rt-validator found errors:\n{}\n{}",
        brief.join("\n"),
        String::from_utf8_lossy(&run.stderr)
    );
    report["notices"].as_array().cloned().unwrap_or_default()
}

#[test]
fn the_three_feeds_decode_with_the_official_bindings_and_pass_the_validator() {
    let dir = std::env::temp_dir().join(format!("streamcity-gtfs-rt-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let network = streamcity_network::gtfs::load(std::path::Path::new(&cairns()))
        .unwrap()
        .network;
    let mut twin = Binary::new(env!("CARGO_BIN_EXE_streamcity")).start(&[
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
        "--demo",
    ]);
    let port: u16 = twin.dashboard_port().parse().unwrap();
    api_vehicles(port, 20, Duration::from_secs(30), || twin.printed());

    let answer = http_get_bytes(port, "/gtfs-rt/vehicle-positions", &[]);
    assert_eq!(answer.status, 200);
    assert_eq!(
        answer.header("content-type"),
        Some("application/x-protobuf")
    );
    let etag = answer.header("etag").unwrap().to_owned();
    let file = dir.join("vehicle-positions.pb");
    std::fs::write(&file, &answer.body).unwrap();

    // What the official bindings read: every vehicle, on a trip of the day, at a call
    // of that trip named by the feed's own stop_sequence, with its occupancy.
    let feed = decoded(&file);
    assert_eq!(feed["version"], "2.0");
    let entities = feed["entities"].as_array().unwrap();
    assert!(entities.len() >= 20, "{feed}");
    let header_s = feed["timestamp"].as_u64().unwrap();
    for e in entities {
        assert_eq!(e["id"], e["vehicle"], "{e}");
        let trip = network
            .trip(e["trip_id"].as_str().unwrap())
            .unwrap_or_else(|| panic!("not a trip of the feed: {e}"));
        assert_eq!(e["start_date"], "20140602", "{e}");
        let call = trip
            .stop_times
            .iter()
            .find(|st| st.stop_id == e["stop_id"].as_str().unwrap())
            .unwrap_or_else(|| panic!("{e}: not a call of {}", trip.trip_id));
        assert_eq!(
            Some(e["sequence"].as_u64().unwrap() as u32),
            call.sequence,
            "{e}"
        );
        assert!(e["has_occupancy"].as_bool().unwrap(), "{e}");
        let ts = e["timestamp"].as_u64().unwrap();
        assert!(
            ts <= header_s && header_s - ts < 60,
            "{e} against the header's {header_s}"
        );
        let (lat, lon) = (e["lat"].as_f64().unwrap(), e["lon"].as_f64().unwrap());
        assert!(
            (-17.3..-16.6).contains(&lat) && (145.5..146.0).contains(&lon),
            "{e}"
        );
    }
    // Each vehicle once; ids stable from one poll to the next.
    let ids: HashMap<&str, usize> = entities
        .iter()
        .map(|e| (e["id"].as_str().unwrap(), 1))
        .collect();
    assert_eq!(ids.len(), entities.len());

    // The same feed as JSON, and a poller that has it is told so.
    let json = http_get_bytes(port, "/gtfs-rt/vehicle-positions?format=json", &[]);
    assert_eq!(json.header("content-type"), Some("application/json"));
    let json: Value = serde_json::from_slice(&json.body).unwrap();
    assert_eq!(json["header"]["gtfs_realtime_version"], "2.0");
    let again = http_get_bytes(
        port,
        "/gtfs-rt/vehicle-positions",
        &[("If-None-Match", &etag)],
    );
    assert!(
        again.status == 304 || again.header("etag") != Some(etag.as_str()),
        "{} with the same ETag {etag}",
        again.status
    );
    let bad = http_get_bytes(port, "/gtfs-rt/vehicle-positions?format=xml", &[]);
    assert_eq!(bad.status, 400);

    // Trip updates: every trip a vehicle runs, each stop to come predicted, in order
    // (gtfs-rt-validator checks that each call comes after the one before).
    let updates = http_get_bytes(port, "/gtfs-rt/trip-updates", &[]);
    assert_eq!(updates.status, 200);
    let trip_file = dir.join("trip-updates.pb");
    std::fs::write(&trip_file, &updates.body).unwrap();

    // Alerts: with --demo, incidents come every 15 to 20 s of the city; wait for some.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let alerts_file = dir.join("alerts.pb");
    let alerts = loop {
        let answer = http_get_bytes(port, "/gtfs-rt/alerts", &[]);
        assert_eq!(answer.status, 200);
        std::fs::write(&alerts_file, &answer.body).unwrap();
        let alerts = service_alerts(&alerts_file);
        if alerts["entities"].as_array().unwrap().len() >= 3 {
            break alerts;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no alerts in 30 s: {alerts}"
        );
        std::thread::sleep(Duration::from_millis(500));
    };
    // The predictions' errors, by horizon, beside the naive prediction's.
    let (_, metrics) = streamcity_testkit::stage::http_get(port, "/metrics");
    for horizon in ["0-5", "5-10", "10-20", "20-30"] {
        for predictor in ["twin", "naive"] {
            let series = format!(
                "streamcity_prediction_error_seconds{{horizon_min=\"{horizon}\",predictor=\"{predictor}\",quantile=\"0.9\"}}"
            );
            assert!(metrics.contains(&series), "{series} missing:\n{metrics}");
        }
    }
    twin.stop();
    for a in alerts["entities"].as_array().unwrap() {
        assert!(!a["header"].as_str().unwrap().is_empty(), "{a}");
        let informs = ["routes", "stops", "trips"]
            .iter()
            .map(|k| a[*k].as_array().unwrap().len())
            .sum::<usize>();
        assert!(informs > 0, "{a}: informs nothing");
        for r in a["routes"].as_array().unwrap() {
            assert!(network.route(r.as_str().unwrap()).is_some(), "{a}");
        }
    }
    let trips = trip_updates(&trip_file);
    let runs = trips["entities"].as_array().unwrap();
    assert!(runs.len() >= 15, "{trips}");
    for run in runs {
        let trip = network
            .trip(run["trip_id"].as_str().unwrap())
            .unwrap_or_else(|| panic!("not a trip of the feed: {run}"));
        let stops: Vec<&str> = run["stops"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s.as_str().unwrap())
            .collect();
        let calls: Vec<&str> = trip
            .stop_times
            .iter()
            .map(|st| st.stop_id.as_str())
            .collect();
        assert!(
            !stops.is_empty() && calls.ends_with(&stops),
            "{run}: the stops to come are the end of the trip's calls {calls:?}"
        );
        let times: Vec<i64> = run["times"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t.as_i64().unwrap())
            .collect();
        assert!(times.windows(2).all(|w| w[0] <= w[1]), "{run}");
    }

    // MobilityData's rules against the static feed: no error.
    let warnings = no_errors(validate(
        &cairns(),
        &[("-vp", &file), ("-tu", &trip_file), ("-sa", &alerts_file)],
        header_s,
        &dir.join("report"),
    ));
    eprintln!("Cairns' feeds: warnings {warnings:?}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Fails on any of the validator's `notices` that is an error; the warnings, each
/// code with its count.
fn no_errors(notices: Vec<Value>) -> Vec<String> {
    let errors: Vec<&Value> = notices
        .iter()
        .filter(|n| n["severity"] == "ERROR")
        .collect();
    assert!(errors.is_empty(), "{errors:?}");
    notices
        .iter()
        .filter(|n| n["severity"] == "WARNING")
        .map(|n| format!("{} x{}", n["code"], n["totalNotices"]))
        .collect()
}

/// The built-in city exported as a GTFS feed into `dir`.
fn exported_city(bin: &Binary, dir: &std::path::Path) -> std::path::PathBuf {
    let city = dir.join("city.zip");
    let export = bin.run_within(
        &["gtfs", "export", city.to_str().unwrap()],
        Duration::from_secs(60),
    );
    assert!(
        export.status.success(),
        "{}",
        String::from_utf8_lossy(&export.stderr)
    );
    city
}

/// The value of the metric line starting `series` on `metrics`, or 0.
fn metric(metrics: &str, series: &str) -> f64 {
    metrics
        .lines()
        .find(|l| l.starts_with(series))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

/// A feed of one vehicle entity on `trip` (not one of the static feed's).
fn feed_on_trip(trip: &str) -> Vec<u8> {
    use prost::Message as _;
    use streamcity_realtime::proto;
    let now_s = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    proto::FeedMessage {
        header: proto::FeedHeader {
            gtfs_realtime_version: "2.0".to_owned(),
            timestamp: Some(now_s),
            ..Default::default()
        },
        entity: vec![proto::FeedEntity {
            id: "ghost".to_owned(),
            vehicle: Some(proto::VehiclePosition {
                trip: Some(proto::TripDescriptor {
                    trip_id: Some(trip.to_owned()),
                    ..Default::default()
                }),
                position: Some(proto::Position {
                    latitude: 51.5,
                    longitude: -0.12,
                    ..Default::default()
                }),
                timestamp: Some(now_s),
                ..Default::default()
            }),
            ..Default::default()
        }],
    }
    .encode_to_vec()
}

#[test]
fn a_twin_mirrors_the_real_vehicles_of_another_twins_feeds_and_shrugs_off_broken_ones() {
    let dir = std::env::temp_dir().join(format!("streamcity-mirror-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bin = Binary::new(env!("CARGO_BIN_EXE_streamcity"));
    // The built-in city as a GTFS feed: it runs all day, so the source twin has
    // vehicles out at whatever time the test runs (on the real clock, as mirroring is).
    let city = exported_city(&bin, &dir);
    let city = city.to_str().unwrap();
    let mut source = bin.start(&["--gtfs", city, "--port", "0"]);
    let source_port: u16 = source.dashboard_port().parse().unwrap();
    api_vehicles(source_port, 20, Duration::from_secs(30), || {
        source.printed()
    });

    // Broken sources beside the real ones: junk in a file, a feed of trips the static
    // feed does not have, a server that is not there.
    let junk = dir.join("junk.pb");
    std::fs::write(&junk, b"<html>502 Bad Gateway</html>").unwrap();
    let ghost = dir.join("ghost.pb");
    std::fs::write(&ghost, feed_on_trip("NOT-A-TRIP")).unwrap();
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let nowhere = format!(
        "http://127.0.0.1:{}/vp",
        closed.local_addr().unwrap().port()
    );
    drop(closed);
    let url = |path: &str| format!("http://127.0.0.1:{source_port}{path}");
    let (vp, tu) = (
        url("/gtfs-rt/vehicle-positions"),
        url("/gtfs-rt/trip-updates"),
    );
    let sources = [
        vp.as_str(),
        tu.as_str(),
        junk.to_str().unwrap(),
        ghost.to_str().unwrap(),
        &nowhere,
    ]
    .join(",");
    let mut mirror = bin.start(&[
        "--gtfs",
        city,
        "--port",
        "0",
        "--gtfs-rt-in",
        &sources,
        "--gtfs-rt-every",
        "1",
    ]);
    let mirror_port: u16 = mirror.dashboard_port().parse().unwrap();
    let mirrored = api_vehicles(mirror_port, 20, Duration::from_secs(30), || {
        mirror.printed()
    });

    // Every vehicle the mirror shows is one of the source's, on the same trip run: it
    // simulates none of its own.
    let (_, body) = streamcity_testkit::stage::http_get(source_port, "/api/vehicles");
    let real: Vec<Value> = serde_json::from_str(&body).unwrap();
    let real: HashMap<&str, &Value> = real
        .iter()
        .map(|v| (v["vehicle_id"].as_str().unwrap(), v))
        .collect();
    for v in &mirrored {
        let id = v["vehicle_id"].as_str().unwrap();
        let twin = real
            .get(id)
            .unwrap_or_else(|| panic!("{v}: not a vehicle of the source"));
        assert_eq!(v["trip_id"], twin["trip_id"], "{v} against {twin}");
        assert_eq!(v["start_time"], twin["start_time"], "{v} against {twin}");
    }
    // Its own GTFS-realtime output carries them on, decodable by the official bindings.
    let answer = http_get_bytes(mirror_port, "/gtfs-rt/vehicle-positions", &[]);
    assert_eq!(answer.status, 200);
    let file = dir.join("mirrored.pb");
    std::fs::write(&file, &answer.body).unwrap();
    let feed = decoded(&file);
    let entities = feed["entities"].as_array().unwrap();
    assert!(entities.len() >= 20, "{feed}");
    for e in entities {
        assert!(real.contains_key(e["vehicle"].as_str().unwrap()), "{e}");
    }

    // The broken sources are counted, not fatal; nor is the source going away. (A
    // file read once is not read again until it changes: "not modified".)
    let wanted = [
        ("streamcity_mirror_reports_published_total ", 20.0),
        (
            "streamcity_mirror_feeds_total{outcome=\"undecodable\"}",
            1.0,
        ),
        (
            "streamcity_mirror_entities_total{outcome=\"unknown_trip\"}",
            1.0,
        ),
        (
            "streamcity_mirror_entities_total{outcome=\"trip_update\"}",
            1.0,
        ),
        ("streamcity_mirror_fetch_errors_total ", 1.0),
        ("streamcity_mirror_not_modified_total ", 1.0),
    ];
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let (_, metrics) = streamcity_testkit::stage::http_get(mirror_port, "/metrics");
        let missing: Vec<_> = wanted
            .iter()
            .filter(|(series, least)| metric(&metrics, series) < *least)
            .collect();
        if missing.is_empty() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "after 30 s, {missing:?} not reached:\n{metrics}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    source.stop();
    std::thread::sleep(Duration::from_secs(3));
    assert!(mirror.is_running(), "{}", mirror.printed());
    let (status, _) = streamcity_testkit::stage::http_get(mirror_port, "/api/vehicles");
    assert_eq!(status, 200);
    let printed = mirror.stop();
    assert!(
        printed.contains("Cannot use the GTFS-realtime feed"),
        "{printed}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn the_built_in_city_exported_passes_the_validator_after_hours_of_incidents() {
    let dir = std::env::temp_dir().join(format!("streamcity-gtfs-rt-city-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bin = Binary::new(env!("CARGO_BIN_EXE_streamcity"));
    let city = exported_city(&bin, &dir);
    let city = city.to_str().unwrap();
    // Two simulated hours of the morning at 120 times real time, with the demo's
    // incidents (every 15 to 20 s of the city) and riders.
    let mut twin = bin.start(&[
        "--gtfs",
        city,
        "--date",
        "2026-12-01",
        "--start",
        "06:30",
        "--speed",
        "120",
        "--port",
        "0",
        "--demo",
        "--duration",
        "600",
    ]);
    let port: u16 = twin.dashboard_port().parse().unwrap();
    api_vehicles(port, 100, Duration::from_secs(30), || twin.printed());
    std::thread::sleep(Duration::from_secs(60));
    // Then the three feeds, taken together once they hold an incident, a cancelled run
    // (a power cut suspends a rail line) and a crowded vehicle.
    let files =
        ["vehicle-positions", "trip-updates", "alerts"].map(|f| dir.join(format!("{f}.pb")));
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    let (header_s, seen) = loop {
        // The three built from the same state of the twin (their ETags name it), as a
        // consumer polling them together would want them.
        let paths = [
            "/gtfs-rt/vehicle-positions",
            "/gtfs-rt/trip-updates",
            "/gtfs-rt/alerts",
        ];
        let answers = paths.map(|path| http_get_bytes(port, path, &[]));
        let state = |a: &streamcity_testkit::stage::HttpAnswer| {
            let etag = a.header("etag").unwrap_or_default();
            etag.rsplit_once('-')
                .map(|x| x.0)
                .unwrap_or_default()
                .to_owned()
        };
        if answers.iter().any(|a| state(a) != state(&answers[0])) {
            assert!(
                std::time::Instant::now() < deadline,
                "the three feeds never came from one state of the twin in 2 minutes"
            );
            continue;
        }
        for (file, answer) in files.iter().zip(&answers) {
            assert_eq!(answer.status, 200);
            std::fs::write(file, &answer.body).unwrap();
        }
        let vehicles = decoded(&files[0]);
        let runs = trip_updates(&files[1]);
        let alerts = service_alerts(&files[2]);
        let crowded = vehicles["entities"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["occupancy"].as_i64().unwrap() >= 3)
            .count();
        let cancelled = runs["entities"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["cancelled"].as_bool().unwrap())
            .count();
        let incidents = alerts["entities"].as_array().unwrap().len();
        let seen =
            format!("{crowded} crowded vehicles, {cancelled} cancelled runs, {incidents} alerts");
        if crowded > 0 && cancelled > 0 && incidents > 0 {
            break (vehicles["timestamp"].as_u64().unwrap(), seen);
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no moment with all three in 2 minutes: last {seen}\n{}",
            twin.printed()
        );
        std::thread::sleep(Duration::from_secs(2));
    };
    twin.stop();
    let warnings = no_errors(validate(
        city,
        &[("-vp", &files[0]), ("-tu", &files[1]), ("-sa", &files[2])],
        header_s,
        &dir.join("report"),
    ));
    eprintln!("The built-in city's feeds ({seen}): warnings {warnings:?}");
    std::fs::remove_dir_all(&dir).unwrap();
}
