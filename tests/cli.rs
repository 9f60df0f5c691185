//! The `streamcity` binary as a user runs it: options, validation, produced records.

#![allow(clippy::unwrap_used)]

use std::process::Output;
use std::time::Duration;

use serde_json::Value;
use streamcity_testkit::stage::{Binary, finish, stderr};

/// 2025-11-23T08:00:00Z: a fixed start, so runs are comparable.
const START: &str = "1763884800000";

fn bin() -> Binary {
    Binary::new(env!("CARGO_BIN_EXE_streamcity"))
}

fn streamcity(args: &[&str]) -> Output {
    bin().run(args)
}

fn lines(out: &Output) -> Vec<Value> {
    String::from_utf8(out.stdout.clone())
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn bad_options_get_clear_errors() {
    let cases: [(&[&str], &str); 8] = [
        (&["produce", "vehicles", "--rate", "-5"], "must be above 0"),
        (
            &["produce", "taps", "--min-delta", "10", "--max-delta", "5"],
            "--min-delta (10) must not be above --max-delta (5)",
        ),
        (&["produce", "buses"], "invalid value 'buses'"),
        (&["produce", "taps", "--burst", "1.5"], "probability"),
        (&["produce", "taps", "--min-delta", "3"], "--max-delta"),
        (&["--vehicles", "0"], "0 is not in 1..=100000"),
        (&["--crowd", "S1@25:00x10"], "HH:MM"),
        (&["--tick-ms", "2"], "2 is not in 5..=10000"),
    ];
    for (args, message) in cases {
        let out = streamcity(args);
        assert!(!out.status.success(), "{args:?} succeeded");
        assert!(stderr(&out).contains(message), "{args:?}: {}", stderr(&out));
        assert!(!stderr(&out).contains("panicked"), "{args:?} panicked");
    }
}

#[test]
fn produce_writes_exactly_max_records_the_same_way_every_time() {
    let args = [
        "produce", "taps", "--max", "300", "--speed", "1000", "--start", START, "--seed", "11",
    ];
    let (a, b) = (streamcity(&args), streamcity(&args));
    assert!(a.status.success(), "{}", stderr(&a));
    let records = lines(&a);
    assert_eq!(records.len(), 300);
    for r in &records {
        let topic = r["topic"].as_str().unwrap();
        assert!(
            topic == "rider_tapped_on" || topic == "rider_tapped_off",
            "{topic}"
        );
        assert_eq!(r["key"], r["value"]["stop_id"], "taps are keyed by stop");
        assert_eq!(r["timestamp"], r["value"]["timestamp"]);
    }
    assert_eq!(
        a.stdout, b.stdout,
        "the same seed and settings give the same records"
    );
    assert!(
        stderr(&a).contains("Sent 300 | Delivered 300 | Failed 0 | Pending 0"),
        "{}",
        stderr(&a)
    );
    let other = streamcity(&[
        "produce", "taps", "--max", "300", "--speed", "1000", "--start", START, "--seed", "12",
    ]);
    assert_ne!(a.stdout, other.stdout);
}

#[test]
fn min_and_max_delta_bound_the_gaps_between_events() {
    let out = streamcity(&[
        "produce",
        "incidents",
        "--min-delta",
        "10",
        "--max-delta",
        "60",
        "--max",
        "40",
        "--speed",
        "10000",
        "--start",
        START,
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let starts: Vec<i64> = lines(&out)
        .iter()
        .filter(|r| r["value"]["status"] == "active")
        .map(|r| r["timestamp"].as_i64().unwrap())
        .collect();
    assert!(starts.len() >= 20);
    for gap in starts.windows(2).map(|w| w[1] - w[0]) {
        // Timestamps are on 200 ms simulation ticks.
        assert!((10_000 - 200..=60_200).contains(&gap), "gap of {gap} ms");
    }
}

#[test]
fn bursts_bring_several_events_at_once() {
    let out = streamcity(&[
        "produce",
        "traffic",
        "--interval",
        "30",
        "--burst",
        "1",
        "--burst-size",
        "3",
        "--max",
        "30",
        "--speed",
        "10000",
        "--start",
        START,
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let mut per_time = std::collections::BTreeMap::<i64, usize>::new();
    for r in lines(&out)
        .iter()
        .filter(|r| r["value"]["status"] == "active")
    {
        *per_time
            .entry(r["timestamp"].as_i64().unwrap())
            .or_default() += 1;
    }
    assert!(per_time.len() >= 5);
    // Every start is a burst of 3 (the last may be cut short by --max).
    let full = per_time.values().filter(|&&n| n == 3).count();
    assert!(full >= per_time.len() - 1, "{per_time:?}");
}

#[test]
fn produce_all_emits_every_kind_keyed_for_partitioning() {
    let out = streamcity(&[
        "produce", "all", "--demo", "--max", "3000", "--speed", "100", "--start", START,
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let records = lines(&out);
    let topics: std::collections::HashSet<&str> = records
        .iter()
        .map(|r| r["topic"].as_str().unwrap())
        .collect();
    for t in ["vehicle_locations", "rider_tapped_on"] {
        assert!(topics.contains(t), "{t} missing from {topics:?}");
    }
    for r in records.iter().filter(|r| r["topic"] == "vehicle_locations") {
        assert_eq!(r["key"], r["value"]["vehicle_id"]);
    }
}

#[test]
fn the_twin_stops_by_itself_after_its_duration_and_reports() {
    let out = streamcity(&["--port", "0", "--duration", "2"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(
        stdout.contains("StreamCity is running: open http://localhost:"),
        "{stdout}"
    );
    assert!(stdout.contains("Records published"), "{stdout}");
    let published: u64 = stdout
        .lines()
        .filter(|l| l.trim_start().starts_with("vehicle_locations"))
        .filter_map(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        .sum();
    assert!(published >= 240, "{stdout}");
}

#[test]
fn processor_settings_come_from_a_file_with_clear_errors() {
    let dir = std::env::temp_dir().join(format!("streamcity-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bad = dir.join("bad.toml");
    std::fs::write(&bad, "[surge]\ntreshold = 3\n").unwrap();
    let out = streamcity(&[
        "--port",
        "0",
        "--duration",
        "1",
        "--processor-config",
        bad.to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("unknown field `treshold`"),
        "{}",
        stderr(&out)
    );
    let invalid = dir.join("invalid.toml");
    std::fs::write(
        &invalid,
        "[delay]\nthreshold_s = 100\nclear_below_s = 200\n",
    )
    .unwrap();
    let out = streamcity(&[
        "--port",
        "0",
        "--duration",
        "1",
        "--processor-config",
        invalid.to_str().unwrap(),
    ]);
    assert!(
        stderr(&out).contains("clear_below_s must not be above"),
        "{}",
        stderr(&out)
    );
    let example = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/processor/processor.example.toml"
    );
    let out = streamcity(&[
        "--port",
        "0",
        "--duration",
        "1",
        "--processor-config",
        example,
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn produce_stops_quietly_when_its_reader_goes_away() {
    use std::io::{BufRead, BufReader};
    let mut child = bin().spawn(&["produce", "all", "--speed", "100"]);
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    for _ in 0..3 {
        serde_json::from_str::<Value>(&lines.next().unwrap().unwrap()).unwrap();
    }
    drop(lines); // like `| head -3`
    let out = finish(
        &mut child,
        Duration::from_secs(30),
        "produce after its reader went away",
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("Done (stopped)"), "{}", stderr(&out));
    assert!(!stderr(&out).contains("error"), "{}", stderr(&out));
}

#[test]
fn settings_are_read_from_a_dotenv_file() {
    let dir = std::env::temp_dir().join(format!("streamcity-dotenv-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join(".env"),
        "# as the seeds' producers read theirs\nSTREAMCITY_SEED=11\nSTREAMCITY_VEHICLES=30\n",
    )
    .unwrap();
    let run = |cwd: &std::path::Path| {
        let mut child = bin()
            .command(&[
                "produce", "vehicles", "--max", "60", "--start", START, "--speed", "1000",
            ])
            .current_dir(cwd)
            .env_remove("STREAMCITY_SEED")
            .env_remove("STREAMCITY_VEHICLES")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        finish(&mut child, Duration::from_secs(60), "produce with a .env")
    };
    let with = run(&dir);
    assert!(with.status.success(), "{}", stderr(&with));
    assert!(
        stderr(&with).contains("Producing: 30 vehicles"),
        "{}",
        stderr(&with)
    );
    let vehicles: std::collections::HashSet<String> = lines(&with)
        .iter()
        .map(|r| r["key"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(vehicles.len(), 30);
    // A broken .env is an error, not silently ignored.
    std::fs::write(dir.join(".env"), "STREAMCITY_SEED='unterminated\n").unwrap();
    let broken = run(&dir);
    assert!(!broken.status.success());
    assert!(stderr(&broken).contains(".env"), "{}", stderr(&broken));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_producer_that_cannot_keep_its_speed_says_so_with_the_speed_it_achieves() {
    // 100,000 vehicles at 50x: five million reports a second asked of one process.
    let mut child = bin()
        .command(&[
            "produce",
            "vehicles",
            "--vehicles",
            "100000",
            "--speed",
            "50",
            "--start",
            START,
            "--duration",
            "25",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let out = finish(&mut child, Duration::from_secs(120), "the producer");
    let err = stderr(&out);
    let line = err
        .lines()
        .find(|l| l.contains("cannot keep --speed 50"))
        .unwrap_or_else(|| panic!("no warning about the speed:\n{err}"));
    // The speed it achieves, below the one asked.
    let achieved: f64 = line
        .split("runs at ")
        .nth(1)
        .and_then(|rest| rest.split('x').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no achieved speed in: {line}"));
    assert!(achieved < 50.0 * 0.95, "{line}");
}

#[test]
fn secrets_are_never_printed_and_an_unreachable_broker_is_not_a_flood_of_errors() {
    let secret = |b: Binary| {
        b.env("KAFKA_API_KEY", "key-SECRET-1")
            .env("KAFKA_API_SECRET", "SECRET-2")
            .env("STREAMCITY_KAFKA_OPTS", "sasl.password=SECRET-3")
    };
    for args in [
        &["--help"][..],
        &["process", "--help"],
        &["produce", "--help"],
    ] {
        let out = secret(bin()).run(args);
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), stderr(&out));
        assert!(out.status.success(), "{text}");
        assert!(!text.contains("SECRET-"), "a secret in --help:\n{text}");
    }
    // No broker listens on port 1: librdkafka retries, and says so at a bounded rate.
    let mut child = secret(bin())
        .env("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:1")
        .env(
            "STREAMCITY_KAFKA_OPTS",
            "sasl.password=SECRET-3,security.protocol=plaintext",
        )
        .command(&["process", "--port", "0"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(10));
    streamcity_testkit::stage::terminate(&child);
    let out = finish(&mut child, Duration::from_secs(30), "process");
    let err = stderr(&out);
    assert!(!err.contains("SECRET-"), "a secret in the log:\n{err}");
    let complaints = err
        .lines()
        .filter(|l| l.contains("ERROR") || l.contains("WARN"))
        .count();
    assert!(
        (1..=10).contains(&complaints),
        "{complaints} error and warning lines in 10 s (one per kind, then a count, expected):\n{err}"
    );
}
