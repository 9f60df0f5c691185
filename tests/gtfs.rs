//! The twin on a real city's GTFS feed (Cairns, fetched by `scripts/test.sh`): `gtfs
//! inspect` says what it holds, and `streamcity --gtfs` runs it live: the dashboard
//! lists the feed's routes and stops by their ids and names, and the vehicles run on
//! its routes, inside its area.

#![allow(clippy::unwrap_used)]

use std::collections::HashSet;
use std::time::{Duration, Instant};

use serde_json::Value;
use streamcity_testkit::stage::{Binary, http_get, stderr};

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
    assert!(text.contains("warnings: 0"), "{text}");
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
    let mut twin = bin().start(&["--gtfs", &cairns(), "--port", "0", "--speed", "5"]);
    let port: u16 = twin.dashboard_port().parse().unwrap();
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
    let deadline = Instant::now() + Duration::from_secs(30);
    let vehicles = loop {
        let (_, body) = http_get(port, "/api/vehicles");
        let vehicles: Vec<Value> = serde_json::from_str(&body).unwrap();
        if vehicles.len() >= 20 {
            break vehicles;
        }
        assert!(
            Instant::now() < deadline,
            "only {} vehicles after 30 s:\n{}",
            vehicles.len(),
            twin.printed()
        );
        std::thread::sleep(Duration::from_millis(250));
    };
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
