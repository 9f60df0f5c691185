//! Loading GTFS feeds: a real one (Cairns, fetched by `scripts/test.sh`), small
//! hand-written ones for the edge cases, broken ones for the errors, and corrupted
//! zips that must never panic.

#![allow(clippy::unwrap_used)]

use std::collections::HashSet;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use proptest::prelude::*;
use streamcity_core::TransportMode;
use streamcity_network::Date;
use streamcity_network::gtfs::{GtfsError, load};
use streamcity_testkit::feeds::{feed_dir, small_feed};

/// The Cairns feed `scripts/test.sh` downloads; its absence is an error, not a skip.
fn cairns() -> PathBuf {
    let path = std::env::var("STREAMCITY_TEST_CAIRNS").expect(
        "STREAMCITY_TEST_CAIRNS is not set: run the tests with scripts/test.sh, which fetches the Cairns GTFS feed",
    );
    PathBuf::from(path)
}

/// Rows of each file of a zipped feed, counted by Python's csv module (another reader
/// than the loader's).
fn rows_by_python(zip: &Path) -> std::collections::HashMap<String, usize> {
    let script = "import csv, io, json, sys, zipfile\n\
                  z = zipfile.ZipFile(sys.argv[1])\n\
                  print(json.dumps({n: sum(1 for _ in csv.reader(io.TextIOWrapper(z.open(n), 'utf-8-sig'))) - 1 for n in z.namelist()}))";
    let out = std::process::Command::new("python3")
        .args(["-c", script])
        .arg(zip)
        .output()
        .expect("python3 is needed to count the feed's rows");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn the_cairns_feed_loads_whole() {
    let feed = cairns();
    let rows = rows_by_python(&feed);
    let loaded = load(&feed).unwrap_or_else(|e| panic!("{e}"));
    let n = &loaded.network;
    assert_eq!(n.stops.len(), rows["stops.txt"]);
    assert_eq!(n.routes.len(), rows["routes.txt"]);
    assert_eq!(n.trips.len(), rows["trips.txt"]);
    let stop_times: usize = n.trips.iter().map(|t| t.stop_times.len()).sum();
    assert_eq!(stop_times, rows["stop_times.txt"]);
    assert_eq!(loaded.report.rows["shapes.txt"], rows["shapes.txt"]);
    // Australia/Brisbane: UTC+10, no daylight saving.
    assert_eq!(n.utc_offset_min, 600);
    assert!(n.name.contains("cairns_gtfs.zip"), "{}", n.name);
    for r in &n.routes {
        assert_eq!(r.mode, TransportMode::Bus, "{}", r.route_id);
        assert!(r.stop_ids.len() >= 2 && r.vehicles >= 1, "{r:?}");
        assert!((60.0..=7_200.0).contains(&r.headway_s), "{}", r.headway_s);
        assert!(r.shape_id.is_some(), "route {} has no shape", r.route_id);
        assert!(
            r.color.starts_with('#') && r.color.len() == 7,
            "{}",
            r.color
        );
    }
    // Every call's times run forwards.
    for t in &n.trips {
        for w in t.stop_times.windows(2) {
            assert!(w[0].departure_s <= w[1].arrival_s, "trip {}", t.trip_id);
        }
    }
    assert!(!n.districts.is_empty());
    // The one thing to warn about in Cairns: some trips start at a stop off their
    // shape (a depot or a layover bay), and the vehicles still follow the shape.
    let kinds: Vec<&&str> = loaded.report.warnings.keys().collect();
    assert_eq!(
        kinds,
        [&"trips with a stop over 100 m from their shape"],
        "{:?}",
        loaded.report.warnings
    );
    assert!(loaded.report.warning_count() * 10 < n.trips.len());
    assert!(n.patterns.iter().all(|p| !p.straightened));
}

#[test]
fn a_small_feed_keeps_its_stations_blocks_frequencies_and_late_night_times() {
    let dir = feed_dir("small", &small_feed());
    let loaded = load(&dir).unwrap_or_else(|e| panic!("{e}"));
    let n = &loaded.network;
    // Platforms keep their station; the entrance is left out and counted.
    assert_eq!(
        n.stop("P1").unwrap().parent_station.as_deref(),
        Some("CENTRAL")
    );
    assert!(n.stop("E1").is_none());
    assert!(
        loaded
            .report
            .warnings
            .keys()
            .any(|k| k.contains("entrances"))
    );
    // The trip without stop times is not run, and said so.
    assert!(!n.trips.iter().any(|t| t.trip_id == "R1-empty"));
    assert!(
        loaded
            .report
            .warnings
            .keys()
            .any(|k| k.contains("without stop times"))
    );
    let trip = |id: &str| n.trips.iter().find(|t| t.trip_id == id).unwrap();
    // A call between timepoints gets a time between theirs.
    let a = trip("R1-a");
    assert_eq!(a.stop_times[1].arrival_s, 8 * 3600 + 5 * 60);
    assert_eq!(a.block_id.as_deref(), Some("B1"));
    assert_eq!(trip("R1-b").direction_id, 1);
    // Times past midnight stay on the service day.
    assert_eq!(trip("R1-night").stop_times[1].arrival_s, 25 * 3600 + 5 * 60);
    // Both kinds of frequency.
    let f = &trip("T1-freq").frequencies;
    assert_eq!(f.len(), 2);
    assert!(f[0].exact_times && !f[1].exact_times);
    assert_eq!(n.route("T1").unwrap().headway_s, 600.0);
    // Modes: tram, ferry; a coach (extended type 202) is a bus; a monorail (12) runs
    // as the nearest mode, and said so.
    assert_eq!(n.route("T1").unwrap().mode, TransportMode::Tram);
    assert_eq!(n.route("F1").unwrap().mode, TransportMode::Ferry);
    assert_eq!(n.route("X1").unwrap().mode, TransportMode::Bus);
    assert_eq!(n.route("M1").unwrap().mode, TransportMode::Bus);
    let (count, example) = &loaded.report.warnings["route types simulated as the nearest mode"];
    assert_eq!(*count, 1);
    assert!(example.contains("M1"), "{example}");
    assert_eq!(n.route("R1").unwrap().color, "#ff8800");
    // A service only in calendar_dates runs on its dates; a removed date is removed.
    let july14 = Date::from_ymd(2025, 7, 14);
    assert!(n.runs_on("HOL", july14));
    assert!(!n.runs_on("WK", july14));
    assert!(n.runs_on("WK", Date::from_ymd(2025, 7, 15)));
    // Paris in winter (the feed's first day): UTC+1.
    assert_eq!(n.utc_offset_min, 60);
    std::fs::remove_dir_all(dir).unwrap();
}

/// The feed with `file` replaced by `text` (or left out when `None`).
fn broken(file: &str, text: Option<&'static str>) -> PathBuf {
    let files: Vec<(&str, &str)> = small_feed()
        .into_iter()
        .filter_map(|(f, t)| {
            if f == file {
                text.map(|t| (f, t))
            } else {
                Some((f, t))
            }
        })
        .collect();
    feed_dir("broken", &files)
}

fn error_of(dir: &Path) -> String {
    let e = load(dir).expect_err("a broken feed must not load");
    let _ = std::fs::remove_dir_all(dir);
    e.to_string()
}

#[test]
fn broken_feeds_are_refused_naming_the_file_the_line_and_the_field() {
    // Not a feed at all.
    let junk = std::env::temp_dir().join(format!("streamcity-junk-{}.zip", std::process::id()));
    std::fs::write(&junk, b"this is not a zip").unwrap();
    let e = load(&junk).unwrap_err();
    assert!(matches!(e, GtfsError::Unreadable { .. }), "{e}");
    std::fs::remove_file(&junk).unwrap();
    // A required file missing.
    let e = error_of(&broken("stops.txt", None));
    assert!(e.contains("stops.txt"), "{e}");
    // No calendar of either kind.
    let dir = feed_dir(
        "nocal",
        &small_feed()
            .into_iter()
            .filter(|(f, _)| !f.starts_with("calendar"))
            .collect::<Vec<_>>(),
    );
    let e = error_of(&dir);
    assert!(e.contains("calendar.txt or calendar_dates.txt"), "{e}");
    // A stop time at a stop that does not exist: file, line, field.
    let e = error_of(&broken(
        "stop_times.txt",
        Some(
            "trip_id,arrival_time,departure_time,stop_id,stop_sequence\nR1-a,08:00:00,08:00:00,P1,1\nR1-a,08:05:00,08:05:00,NOWHERE,2\n",
        ),
    ));
    assert!(
        e.contains("stop_times.txt, line 3, field stop_id") && e.contains("NOWHERE"),
        "{e}"
    );
    // An unreadable time.
    let e = error_of(&broken(
        "stop_times.txt",
        Some(
            "trip_id,arrival_time,departure_time,stop_id,stop_sequence\nR1-a,8h00,08:00:00,P1,1\nR1-a,08:05:00,08:05:00,S3,2\n",
        ),
    ));
    assert!(e.contains("stop_times.txt") && e.contains("8h00"), "{e}");
    // A trip calling at a station rather than a platform (as npm's sample-gtfs-feed
    // does): run at the station, and said so.
    let dir = broken(
        "stop_times.txt",
        Some(
            "trip_id,arrival_time,departure_time,stop_id,stop_sequence\nR1-a,08:00:00,08:00:00,CENTRAL,1\nR1-a,08:05:00,08:05:00,S3,2\n",
        ),
    );
    let loaded = load(&dir).unwrap_or_else(|e| panic!("{e}"));
    std::fs::remove_dir_all(&dir).unwrap();
    let (count, example) =
        &loaded.report.warnings["calls at a station rather than a platform (run at the station)"];
    assert_eq!(*count, 1);
    assert!(
        example.contains("line 2") && example.contains("CENTRAL"),
        "{example}"
    );
    let trip = loaded.network.trip("R1-a").unwrap();
    assert_eq!(trip.stop_times[0].stop_id, "CENTRAL");
    // A stop without a position.
    let e = error_of(&broken(
        "stops.txt",
        Some("stop_id,stop_name,stop_lat,stop_lon\nP1,One,,\n"),
    ));
    assert!(e.contains("stops.txt, line 2, field stop_lat"), "{e}");
    // Nothing that can run.
    let e = error_of(&broken(
        "stop_times.txt",
        Some("trip_id,arrival_time,departure_time,stop_id,stop_sequence\n"),
    ));
    assert!(e.contains("no trip"), "{e}");
}

/// The small feed as a zip, in memory.
fn small_zip() -> Vec<u8> {
    let dir = feed_dir("zip", &small_feed());
    let zip = dir.with_extension("zip");
    let status = std::process::Command::new("python3")
        .args([
            "-c",
            "import os, sys, zipfile\nwith zipfile.ZipFile(sys.argv[2], 'w', zipfile.ZIP_DEFLATED) as z:\n    [z.write(os.path.join(sys.argv[1], f), f) for f in sorted(os.listdir(sys.argv[1]))]",
        ])
        .arg(&dir)
        .arg(&zip)
        .status()
        .expect("python3 writes the zip");
    assert!(status.success());
    let bytes = std::fs::read(&zip).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    std::fs::remove_file(&zip).unwrap();
    bytes
}

#[test]
fn the_small_feed_loads_from_a_zip_too() {
    let path = std::env::temp_dir().join(format!("streamcity-small-{}.zip", std::process::id()));
    std::fs::write(&path, small_zip()).unwrap();
    let loaded = load(&path).unwrap_or_else(|e| panic!("{e}"));
    std::fs::remove_file(&path).unwrap();
    let ids: HashSet<&str> = loaded
        .network
        .routes
        .iter()
        .map(|r| r.route_id.as_str())
        .collect();
    assert_eq!(ids, HashSet::from(["R1", "T1", "F1", "X1", "M1"]));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Bytes of a zipped feed overwritten anywhere: an error or a network, never a panic.
    #[test]
    fn a_corrupted_zip_never_panics(
        at in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..16)
    ) {
        let mut bytes = small_zip();
        for (i, b) in at {
            let i = i.index(bytes.len());
            bytes[i] = b;
        }
        let path = std::env::temp_dir().join(format!(
            "streamcity-fuzz-{}-{:x}.zip",
            std::process::id(),
            streamcity_core::bus::key_hash(&bytes)
        ));
        std::fs::File::create(&path).unwrap().write_all(&bytes).unwrap();
        let result = std::panic::catch_unwind(|| load(&path).map(|l| l.network.routes.len()));
        std::fs::remove_file(&path).unwrap();
        prop_assert!(result.is_ok(), "loading panicked");
    }
}

#[test]
fn a_feed_survives_its_wire_form_unchanged() {
    // What `process` and `serve` read from the bus is what the producer loaded: the
    // same hash, so a stage given the feed too agrees with the bus.
    for dir in [cairns(), feed_dir("wire", &small_feed())] {
        let loaded = load(&dir).unwrap_or_else(|e| panic!("{e}")).network;
        let back = streamcity_network::Network::from_json(&loaded.to_json()).unwrap();
        if back.hash() != loaded.hash() {
            let (a, b) = (
                String::from_utf8(loaded.to_json()).unwrap(),
                String::from_utf8(back.to_json()).unwrap(),
            );
            let at = a
                .bytes()
                .zip(b.bytes())
                .position(|(x, y)| x != y)
                .unwrap_or(a.len().min(b.len()));
            panic!(
                "{}: hash {} became {}; first difference at byte {at}:\n{}\n{}",
                dir.display(),
                loaded.hash(),
                back.hash(),
                &a[at.saturating_sub(200)..(at + 200).min(a.len())],
                &b[at.saturating_sub(200)..(at + 200).min(b.len())]
            );
        }
    }
}
