//! `streamcity produce --scenario`: the shipped scenarios run from the command line, to
//! a file, to standard output and to a real broker (tansu), with the seeds' flags; and
//! CivicSense's transit events come from the twin's own disruptions.

#![allow(clippy::unwrap_used)]

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

use serde_json::Value;
use streamcity_testkit::broker::test_brokers;
use streamcity_testkit::stage::{Binary, stderr, unique};

/// 2025-12-25T10:30:00Z.
const START: &str = "1766658600000";

fn bin() -> Binary {
    Binary::new(env!("CARGO_BIN_EXE_streamcity"))
}

fn lines(text: &str) -> Vec<Value> {
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

fn temp(name: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("streamcity-scenario-{}-{name}", std::process::id()))
}

#[test]
fn a_file_gets_the_records_standard_output_gets_for_the_same_seed() {
    let file = temp("retail.jsonl");
    let args = |out: Option<&str>| {
        let mut a = vec![
            "produce",
            "--scenario",
            "retail",
            "--no-pacing",
            "--max",
            "3000",
            "--seed",
            "5",
            "--start",
            START,
        ];
        if let Some(o) = out {
            a.extend(["--output", o]);
        }
        a.iter().map(|s| s.to_string()).collect::<Vec<_>>()
    };
    let to_file = args(Some(file.to_str().unwrap()));
    let out = bin().run(&to_file.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        out.stdout.is_empty(),
        "nothing on standard output with --output"
    );
    assert!(
        stderr(&out).contains("Done (reached --max)"),
        "{}",
        stderr(&out)
    );
    let written = std::fs::read_to_string(&file).unwrap();
    std::fs::remove_file(&file).unwrap();
    let to_stdout = args(None);
    let printed = bin().run(&to_stdout.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(printed.status.success(), "{}", stderr(&printed));
    assert_eq!(written, String::from_utf8(printed.stdout).unwrap());
    let records = lines(&written);
    assert_eq!(records.len(), 3000);
    assert_eq!(
        records[0]["timestamp"].as_i64().unwrap(),
        START.parse::<i64>().unwrap()
    );
    for r in &records {
        assert!(r["topic"].as_str().unwrap().starts_with("retail-"), "{r}");
        assert!(r["key"].as_str().unwrap().len() > 3, "{r}");
        assert!(r["value"].is_object(), "{r}");
    }
}

#[test]
fn topics_are_renamed_and_prefixed_and_unknown_ones_refused() {
    let out = bin().run(&[
        "produce",
        "--scenario",
        "user-events",
        "--no-pacing",
        "--max",
        "20",
        "--start",
        START,
        "--topic",
        "user-events=churn.user.events",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let records = lines(&String::from_utf8(out.stdout).unwrap());
    assert!(
        records.iter().all(|r| r["topic"] == "churn.user.events"),
        "{records:?}"
    );
    let out = bin().run(&[
        "produce",
        "--scenario",
        "ridematch",
        "--no-pacing",
        "--max",
        "20",
        "--topic-prefix",
        "test-",
    ]);
    let records = lines(&String::from_utf8(out.stdout).unwrap());
    assert!(
        records
            .iter()
            .all(|r| r["topic"] == "test-ridematch-events")
    );
    let out = bin().run(&[
        "produce",
        "--scenario",
        "retail",
        "--topic",
        "user-events=x",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("the retail scenario has no topic user-events"),
        "{}",
        stderr(&out)
    );
    // The twin's producers are renamed the same way.
    let out = bin().run(&[
        "produce",
        "vehicles",
        "--max",
        "30",
        "--speed",
        "100",
        "--start",
        START,
        "--topic",
        "vehicle_locations=fleet.positions",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let records = lines(&String::from_utf8(out.stdout).unwrap());
    assert_eq!(records.len(), 30);
    assert!(
        records.iter().all(|r| r["topic"] == "fleet.positions"),
        "{records:?}"
    );
    let out = bin().run(&["produce", "vehicles", "--topic", "vehicles=x"]);
    assert!(
        stderr(&out).contains("no topic \"vehicles\" to rename"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn the_seeds_flags_work_for_scenarios() {
    // --duration with a unit, paced in real time: about ten driver updates a second.
    let started = Instant::now();
    let out = bin().run_within(
        &[
            "produce",
            "--scenario",
            "ridematch",
            "--duration",
            "3s",
            "--start",
            START,
        ],
        Duration::from_secs(30),
    );
    let took = started.elapsed();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("Done (reached --duration)"),
        "{}",
        stderr(&out)
    );
    assert!(
        took >= Duration::from_secs(3) && took < Duration::from_secs(10),
        "{took:?}"
    );
    let records = lines(&String::from_utf8(out.stdout).unwrap());
    assert!(
        (15..=50).contains(&records.len()),
        "{} records in 3 s",
        records.len()
    );
    let span = records.last().unwrap()["timestamp"].as_i64().unwrap()
        - records[0]["timestamp"].as_i64().unwrap();
    assert!(span <= 3_100, "event time ran {span} ms in 3 s");
    // --interval: the seed's fixed gap, here 0.5 s of event time between user events.
    let out = bin().run(&[
        "produce",
        "--scenario",
        "user-events",
        "--no-pacing",
        "--max",
        "50",
        "--interval",
        "0.5",
        "--start",
        START,
    ]);
    let t: Vec<i64> = lines(&String::from_utf8(out.stdout).unwrap())
        .iter()
        .map(|r| r["timestamp"].as_i64().unwrap())
        .collect();
    assert!(t.windows(2).all(|w| w[1] - w[0] == 500), "{t:?}");
    // --min-delta/--max-delta: retail's gaps, narrowed.
    let out = bin().run(&[
        "produce",
        "--scenario",
        "retail",
        "--no-pacing",
        "--max",
        "400",
        "--min-delta",
        "2",
        "--max-delta",
        "3",
        "--start",
        START,
    ]);
    let mut t: Vec<i64> = lines(&String::from_utf8(out.stdout).unwrap())
        .iter()
        .map(|r| r["timestamp"].as_i64().unwrap())
        .collect();
    t.dedup();
    assert!(
        t.windows(2).all(|w| (2000..=3000).contains(&(w[1] - w[0]))),
        "{t:?}"
    );
    // --burst: several events at one moment.
    let out = bin().run(&[
        "produce",
        "--scenario",
        "user-events",
        "--no-pacing",
        "--max",
        "300",
        "--burst",
        "1",
        "--burst-size",
        "3",
        "--start",
        START,
    ]);
    let mut per_moment: HashMap<i64, usize> = HashMap::new();
    for r in lines(&String::from_utf8(out.stdout).unwrap()) {
        *per_moment
            .entry(r["timestamp"].as_i64().unwrap())
            .or_default() += 1;
    }
    assert!(per_moment.values().all(|n| *n == 3), "{per_moment:?}");
    // --demo: faster, for two minutes at most; --max still stops it.
    let out = bin().run(&[
        "produce",
        "--scenario",
        "user-events",
        "--demo",
        "--no-pacing",
        "--max",
        "10",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    // Mistakes are named.
    for (args, want) in [
        (
            vec!["produce", "--scenario", "retail", "--duration", "5 parsecs"],
            "unknown unit",
        ),
        (
            vec!["produce", "--scenario", "retail", "--tap-rate", "3"],
            "--tap-rate paces the twin's producers",
        ),
        (
            vec!["produce", "--scenario", "nope"],
            "no scenario \"nope\"",
        ),
        (
            vec![
                "produce",
                "--scenario",
                "retail",
                "--continuous",
                "--max",
                "3",
            ],
            "cannot be used with",
        ),
        (
            vec!["produce", "vehicles", "--no-pacing"],
            "--no-pacing is for scenarios",
        ),
        (vec!["produce"], "<PRODUCER>"),
    ] {
        let out = bin().run(&args);
        assert_ne!(out.status.code(), Some(0), "{args:?}");
        assert!(stderr(&out).contains(want), "{args:?}: {}", stderr(&out));
    }
    let out = bin().run(&["produce", "--list-scenarios"]);
    let listed = String::from_utf8(out.stdout).unwrap();
    for name in ["civicsense", "user-events", "retail", "ridematch"] {
        assert!(listed.contains(name), "{listed}");
    }
}

#[test]
fn a_scenario_file_of_ones_own_runs_and_a_broken_one_is_refused_clearly() {
    let file = temp("mine.toml");
    std::fs::write(
        &file,
        r#"
name = "orders"
[pools.customer]
count = 10
id = "C{:02}"
[[streams]]
name = "orders"
rate = 5
[[streams.events]]
pick = { c = "customer" }
[[streams.events.records]]
topic = "orders"
key = { ref = "c.id" }
value = { order_no = { seq = 100 }, customer = { ref = "c.id" }, at = { position = "stop" }, placed = { timestamp = "epoch_ms" } }
"#,
    )
    .unwrap();
    let out = bin().run(&[
        "produce",
        "--scenario",
        file.to_str().unwrap(),
        "--no-pacing",
        "--max",
        "25",
        "--start",
        START,
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let records = lines(&String::from_utf8(out.stdout).unwrap());
    for (k, r) in records.iter().enumerate() {
        assert_eq!(r["value"]["order_no"], 100 + k as i64);
        assert_eq!(r["key"], r["value"]["customer"]);
        assert_eq!(r["value"]["placed"], r["timestamp"]);
        assert!(r["value"]["at"]["lat"].is_f64(), "{r}");
    }
    std::fs::write(&file, "name = \"x\"\n[[streams]]\nname = \"s\"\nevery = 1\n[[streams.events]]\n[[streams.events.records]]\ntopic = \"t\"\nvalue = { n = { normal = [1] } }\n").unwrap();
    let out = bin().run(&["produce", "--scenario", file.to_str().unwrap()]);
    std::fs::remove_file(&file).unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains(
            "streams[0].events[0].records[0].value.n: `normal` is [mean, standard deviation]"
        ),
        "{}",
        stderr(&out)
    );
}

#[test]
fn civicsense_transit_events_are_the_twins_own_disruptions() {
    let out = bin().run_within(
        &[
            "produce",
            "--scenario",
            "civicsense",
            "--no-pacing",
            "--max",
            "1500",
            "--start",
            START,
            "--seed",
            "3",
        ],
        Duration::from_secs(120),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let records = lines(&String::from_utf8(out.stdout).unwrap());
    let network = streamcity_network::synthetic::generate(streamcity_network::SyntheticConfig {
        seed: 3,
        ..Default::default()
    });
    // Lines by name (two lines may share one), with their stops.
    let mut line_stops: HashMap<String, BTreeSet<String>> = HashMap::new();
    for r in &network.routes {
        let name = if r.name.is_empty() {
            r.short_name.clone()
        } else {
            r.name.clone()
        };
        line_stops.entry(name).or_default().extend(
            r.stop_ids
                .iter()
                .map(|s| network.stop(s).unwrap().name.clone()),
        );
    }
    let transit: Vec<&Value> = records
        .iter()
        .filter(|r| r["topic"] == "transit_events")
        .collect();
    assert!(
        transit.len() >= 10,
        "{} transit events in {} records",
        transit.len(),
        records.len()
    );
    let mut types = BTreeSet::new();
    for r in &transit {
        let v = &r["value"];
        types.insert(v["type"].as_str().unwrap().to_owned());
        let line = v["line"].as_str().unwrap();
        let stops = line_stops
            .get(line)
            .unwrap_or_else(|| panic!("{line} is not a line of the city: {v}"));
        for s in v["affected_stations"].as_array().unwrap() {
            assert!(
                stops.contains(s.as_str().unwrap()),
                "{s} is not a stop of {line}: {v}"
            );
        }
        assert!(v["delay_minutes"].as_i64().unwrap() >= 0, "{v}");
        assert!(
            v["estimated_resolution"].as_str().unwrap() > v["timestamp"].as_str().unwrap(),
            "{v}"
        );
        assert!(
            ["bus", "tram", "subway", "train", "ferry", "cable"]
                .contains(&v["mode"].as_str().unwrap()),
            "{v}"
        );
        assert!(
            ["low", "moderate", "high", "critical"].contains(&v["severity"].as_str().unwrap()),
            "{v}"
        );
        assert_eq!(r["key"], v["event_id"]);
        assert!(v["event_id"].as_str().unwrap().starts_with("TRN-"));
    }
    assert!(
        types.contains("delay") && types.contains("route_change"),
        "{types:?}"
    );
    // In event-time order with the other topics.
    let t: Vec<i64> = records
        .iter()
        .map(|r| r["timestamp"].as_i64().unwrap())
        .collect();
    assert!(
        t.windows(2).all(|w| w[0] <= w[1]),
        "records out of event-time order"
    );
}

#[test]
fn the_broker_gets_the_records_the_file_gets() {
    let brokers = test_brokers();
    let prefix = unique("scen");
    let common = [
        "--no-pacing",
        "--max",
        "2000",
        "--seed",
        "9",
        "--start",
        START,
    ];
    let mut args = vec![
        "produce",
        "--scenario",
        "retail",
        "--brokers",
        &brokers,
        "--topic-prefix",
        &prefix,
    ];
    args.extend(common);
    let out = bin().run_within(&args, Duration::from_secs(120));
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("Sent 2000 | Delivered 2000 | Failed 0 | Pending 0"),
        "{}",
        stderr(&out)
    );
    let mut args = vec!["produce", "--scenario", "retail", "--topic-prefix", &prefix];
    args.extend(common);
    let expected = lines(&String::from_utf8(bin().run(&args).stdout).unwrap());
    let mut want: HashMap<String, Vec<Value>> = HashMap::new();
    for r in expected {
        want.entry(r["topic"].as_str().unwrap().to_owned())
            .or_default()
            .push(r);
    }
    for (topic, records) in want {
        let n = records.len().to_string();
        let out = bin().run_within(
            &[
                "tail",
                &topic,
                "--from-beginning",
                "-n",
                &n,
                "--brokers",
                &brokers,
            ],
            Duration::from_secs(60),
        );
        assert!(out.status.success(), "{topic}: {}", stderr(&out));
        let got = lines(&String::from_utf8(out.stdout).unwrap());
        let key = |r: &Value| format!("{} {} {}", r["key"], r["timestamp"], r["value"]);
        let mut got: Vec<String> = got.iter().map(key).collect();
        let mut want: Vec<String> = records.iter().map(key).collect();
        got.sort();
        want.sort();
        assert_eq!(got, want, "{topic}");
    }
}

/// Records a second of event time of the records whose topic is in `topics` (and, for
/// incidents, that start one), over the span of all records' timestamps.
fn rate_of(records: &[Value], topics: &[&str]) -> f64 {
    let t: Vec<i64> = records
        .iter()
        .map(|r| r["timestamp"].as_i64().unwrap())
        .collect();
    let span_s = (t.iter().max().unwrap() - t.iter().min().unwrap()) as f64 / 1000.0;
    let n = records
        .iter()
        .filter(|r| topics.contains(&r["topic"].as_str().unwrap()))
        .filter(|r| r["value"]["status"].as_str().is_none_or(|s| s == "active"))
        .count();
    n as f64 / span_s
}

#[test]
fn the_twins_producers_keep_to_the_rate_asked() {
    // Over 150 s or 15 min of event time, three seconds of real time.
    let measured = |producer: &str, rate: &str, speed: &str, topics: &[&str]| {
        let out = bin().run_within(
            &[
                "produce",
                producer,
                "--rate",
                rate,
                "--start",
                "12:00",
                "--speed",
                speed,
                "--duration",
                "3s",
            ],
            Duration::from_secs(30),
        );
        assert!(out.status.success(), "{}", stderr(&out));
        rate_of(&lines(&String::from_utf8(out.stdout).unwrap()), topics)
    };
    // `all --rate 4`: four new incidents a second, traffic and city together.
    let rate = measured("all", "4", "50", &["traffic_incidents", "city_incidents"]);
    assert!(
        (3.0..=5.0).contains(&rate),
        "{rate} incidents a second for --rate 4"
    );
    // `taps --rate 6`: six taps a second, on and off together (over a quarter of an
    // hour, longer than a ride: the riders aboard at the start get off in its first
    // minutes).
    let rate = measured("taps", "6", "300", &["rider_tapped_on", "rider_tapped_off"]);
    assert!(
        (4.5..=7.5).contains(&rate),
        "{rate} taps a second for --rate 6"
    );
}

/// The Python with fastavro and kafka-python (`benchmarks/python-env.sh`, which
/// `scripts/test.sh` exports as `STREAMCITY_PYTHON`).
fn python() -> String {
    std::env::var("STREAMCITY_PYTHON").expect(
        "STREAMCITY_PYTHON is not set: run the tests with scripts/test.sh, which installs fastavro and kafka-python",
    )
}

fn support(name: &str) -> String {
    concat!(env!("CARGO_MANIFEST_DIR"), "/tests/support/").to_owned() + name
}

/// Runs `check_avro.py` with `args`; fails with what it said unless it passed.
fn check_avro(args: &[&str]) -> String {
    let mut child = std::process::Command::new(python())
        .arg(support("check_avro.py"))
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("python runs");
    let out =
        streamcity_testkit::stage::finish(&mut child, Duration::from_secs(120), "check_avro.py");
    let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), stderr(&out));
    assert!(out.status.success(), "fastavro's check failed: {said}");
    said
}

#[test]
fn avro_files_decode_with_fastavro_to_the_json_records() {
    for scenario in ["civicsense", "user-events", "retail", "ridematch"] {
        let dir = temp(&format!("avro-{scenario}"));
        let json = temp(&format!("avro-{scenario}.jsonl"));
        let common = [
            "--no-pacing",
            "--max",
            "800",
            "--seed",
            "4",
            "--start",
            START,
        ];
        let mut args = vec![
            "produce",
            "--scenario",
            scenario,
            "--format",
            "avro",
            "--output",
            dir.to_str().unwrap(),
        ];
        args.extend(common);
        let out = bin().run_within(&args, Duration::from_secs(120));
        assert!(out.status.success(), "{scenario}: {}", stderr(&out));
        let mut args = vec![
            "produce",
            "--scenario",
            scenario,
            "--output",
            json.to_str().unwrap(),
        ];
        args.extend(common);
        assert!(
            bin()
                .run_within(&args, Duration::from_secs(120))
                .status
                .success()
        );
        let said = check_avro(&["files", dir.to_str().unwrap(), json.to_str().unwrap()]);
        let decoded: usize = said
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .map(|v| v["records"].as_u64().unwrap() as usize)
            .sum();
        assert_eq!(decoded, 800, "{scenario}: {said}");
        std::fs::remove_dir_all(&dir).unwrap();
        std::fs::remove_file(&json).unwrap();
    }
    // Avro is binary: not to a terminal, and to Kafka only with a registry.
    let out = bin().run(&["produce", "--scenario", "retail", "--format", "avro"]);
    assert!(stderr(&out).contains("Avro is binary"), "{}", stderr(&out));
    let out = bin().run(&[
        "produce",
        "--scenario",
        "retail",
        "--format",
        "avro",
        "--brokers",
        "127.0.0.1:1",
    ]);
    assert!(
        stderr(&out).contains("needs --schema-registry"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn avro_to_the_broker_is_in_confluents_wire_format_with_registered_schemas() {
    let brokers = test_brokers();
    let port = streamcity_testkit::stage::free_port().to_string();
    let registry = Registry::start(&port);
    let url = format!("http://127.0.0.1:{port}");
    for scenario in ["user-events", "retail"] {
        let prefix = unique("avro");
        let common = [
            "--no-pacing",
            "--max",
            "600",
            "--seed",
            "6",
            "--start",
            START,
            "--topic-prefix",
            &prefix,
        ];
        let mut args = vec![
            "produce",
            "--scenario",
            scenario,
            "--format",
            "avro",
            "--schema-registry",
            &url,
            "--brokers",
            &brokers,
        ];
        args.extend(common);
        let out = bin().run_within(&args, Duration::from_secs(120));
        assert!(out.status.success(), "{scenario}: {}", stderr(&out));
        assert!(stderr(&out).contains("registered at"), "{}", stderr(&out));
        assert!(
            stderr(&out).contains("Sent 600 | Delivered 600 | Failed 0"),
            "{}",
            stderr(&out)
        );
        let json = temp(&format!("avro-kafka-{scenario}.jsonl"));
        let mut args = vec![
            "produce",
            "--scenario",
            scenario,
            "--output",
            json.to_str().unwrap(),
        ];
        args.extend(common);
        assert!(bin().run(&args).status.success());
        check_avro(&["kafka", &brokers, &url, json.to_str().unwrap()]);
        std::fs::remove_file(&json).unwrap();
    }
    drop(registry);
}

#[test]
fn the_twins_records_in_avro_decode_with_fastavro_from_files_and_the_broker() {
    let common = [
        "--rate", "5", "--max", "1500", "--speed", "100", "--seed", "8", "--start", START,
    ];
    let json = temp("twin-avro.jsonl");
    let mut args = vec!["produce", "all", "--output", json.to_str().unwrap()];
    args.extend(common);
    assert!(bin().run(&args).status.success());
    let dir = temp("twin-avro");
    let mut args = vec![
        "produce",
        "all",
        "--format",
        "avro",
        "--output",
        dir.to_str().unwrap(),
    ];
    args.extend(common);
    let out = bin().run(&args);
    assert!(out.status.success(), "{}", stderr(&out));
    let said = check_avro(&[
        "files",
        dir.to_str().unwrap(),
        json.to_str().unwrap(),
        "--events",
    ]);
    for topic in [
        "vehicle_locations",
        "rider_tapped_on",
        "rider_tapped_off",
        "traffic_incidents",
        "city_incidents",
    ] {
        assert!(
            said.contains(&format!("\"topic\": \"{topic}\"")),
            "{topic} missing: {said}"
        );
    }
    std::fs::remove_dir_all(&dir).unwrap();

    // To the broker, through a registry: the same records in Confluent's wire format.
    let brokers = test_brokers();
    let port = streamcity_testkit::stage::free_port().to_string();
    let registry = Registry::start(&port);
    let url = format!("http://127.0.0.1:{port}");
    let prefix = unique("twinavro");
    let mut args = vec![
        "produce",
        "all",
        "--format",
        "avro",
        "--schema-registry",
        &url,
        "--brokers",
        &brokers,
        "--topic-prefix",
        &prefix,
    ];
    args.extend(common);
    let out = bin().run_within(&args, Duration::from_secs(120));
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("the twin's stages (process, serve) read JSON"),
        "{}",
        stderr(&out)
    );
    let json_prefixed = temp("twin-avro-prefixed.jsonl");
    let mut args = vec![
        "produce",
        "all",
        "--topic-prefix",
        &prefix,
        "--output",
        json_prefixed.to_str().unwrap(),
    ];
    args.extend(common);
    assert!(bin().run(&args).status.success());
    check_avro(&[
        "kafka",
        &brokers,
        &url,
        json_prefixed.to_str().unwrap(),
        "--events",
    ]);
    drop(registry);
    std::fs::remove_file(&json).unwrap();
    std::fs::remove_file(&json_prefixed).unwrap();
}

/// The schema registry endpoint of `tests/support/schema_registry.py`, stopped however
/// the test ends.
struct Registry(std::process::Child);

impl Registry {
    fn start(port: &str) -> Registry {
        let mut child = std::process::Command::new(python())
            .args([&support("schema_registry.py"), port])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("the registry starts");
        let mut first = String::new();
        std::io::BufRead::read_line(
            &mut std::io::BufReader::new(child.stdout.take().unwrap()),
            &mut first,
        )
        .unwrap();
        assert_eq!(first.trim(), "listening");
        Registry(child)
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
