//! The stages as separate processes on Kafka, here librdkafka's mock cluster (started
//! in this test process; the binaries connect to it over TCP).

#![allow(clippy::unwrap_used)]

use std::process::{Child, Output};

use rdkafka::mocking::MockCluster;
use serde_json::Value;
use streamcity_testkit::stage::{Binary, sorted_lines, stderr, stop};

const START: &str = "1763884800000";

fn streamcity(args: &[&str]) -> Output {
    Binary::new(env!("CARGO_BIN_EXE_streamcity")).run(args)
}

fn spawn(args: &[&str]) -> Child {
    Binary::new(env!("CARGO_BIN_EXE_streamcity")).spawn(args)
}

/// A mock cluster with every topic of `prefix` created (the mock answers no admin
/// requests, so the stages find them there).
fn cluster(prefix: &str) -> MockCluster<'static, rdkafka::producer::DefaultProducerContext> {
    let cluster = MockCluster::new(1).unwrap();
    let topics = streamcity_core::Topics::with_prefix(prefix);
    for t in topics.all() {
        let partitions = if *t == topics.network { 1 } else { 3 };
        cluster.create_topic(t, partitions, 1).unwrap();
    }
    cluster
}

#[test]
fn produce_to_kafka_then_tail_gives_back_exactly_the_records() {
    let prefix = format!("p{}-", std::process::id());
    let cluster = cluster(&prefix);
    let brokers = cluster.bootstrap_servers();
    let common = [
        "--max", "300", "--speed", "1000", "--start", START, "--seed", "11",
    ];
    let mut args = vec![
        "produce",
        "taps",
        "--brokers",
        &brokers,
        "--topic-prefix",
        &prefix,
    ];
    args.extend(common);
    let produced = streamcity(&args);
    assert!(produced.status.success(), "{}", stderr(&produced));
    assert!(
        stderr(&produced).contains("Sent 300 | Delivered 300 | Failed 0 | Pending 0"),
        "{}",
        stderr(&produced)
    );

    // The same records, as the JSON-lines output would print them.
    let mut args = vec!["produce", "taps"];
    args.extend(common);
    let expected = streamcity(&args);
    let expected: Vec<String> = sorted_lines(&expected)
        .into_iter()
        .map(|l| l.replacen("\"topic\":\"", &format!("\"topic\":\"{prefix}"), 1))
        .collect();

    let on = format!("{prefix}rider_tapped_on");
    let off = format!("{prefix}rider_tapped_off");
    let mut got = Vec::new();
    for topic in [&on, &off] {
        let n = expected
            .iter()
            .filter(|l| l.contains(&format!("\"topic\":\"{topic}\"")))
            .count()
            .to_string();
        let tail = streamcity(&[
            "tail",
            topic,
            "-n",
            &n,
            "--from-beginning",
            "--brokers",
            &brokers,
        ]);
        assert!(tail.status.success(), "{}", stderr(&tail));
        got.extend(sorted_lines(&tail));
    }
    got.sort();
    assert_eq!(got.len(), 300);
    assert_eq!(
        got, expected,
        "what went through Kafka differs from what was produced"
    );

    // --key keeps one stop's records.
    let key = serde_json::from_str::<Value>(&got[0]).unwrap()["key"]
        .as_str()
        .unwrap()
        .to_owned();
    let n = got
        .iter()
        .filter(|l| {
            l.contains(&format!("\"key\":\"{key}\"")) && l.contains(&format!("\"topic\":\"{on}\""))
        })
        .count();
    let tail = streamcity(&[
        "tail",
        &on,
        "-n",
        &n.to_string(),
        "--from-beginning",
        "--key",
        &key,
        "--brokers",
        &brokers,
    ]);
    let lines = sorted_lines(&tail);
    assert_eq!(lines.len(), n);
    assert!(
        lines
            .iter()
            .all(|l| l.contains(&format!("\"key\":\"{key}\"")))
    );
}

#[test]
fn the_processor_runs_as_its_own_process_on_kafka() {
    let prefix = format!("q{}-", std::process::id());
    let cluster = cluster(&prefix);
    let brokers = cluster.bootstrap_servers();
    let produced = streamcity(&[
        "produce",
        "vehicles",
        "--brokers",
        &brokers,
        "--topic-prefix",
        &prefix,
        "--max",
        "480",
        "--speed",
        "100",
    ]);
    assert!(produced.status.success(), "{}", stderr(&produced));
    // A new processor group starts from the oldest records: it processes what is there.
    let process = spawn(&[
        "process",
        "--brokers",
        &brokers,
        "--topic-prefix",
        &prefix,
        "--port",
        "0",
    ]);
    let table = format!("{prefix}live_vehicle_table");
    let tail = streamcity(&[
        "tail",
        &table,
        "-n",
        "480",
        "--from-beginning",
        "--brokers",
        &brokers,
    ]);
    let rows: Vec<Value> = String::from_utf8(tail.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 480);
    assert!(rows.iter().all(|r| r["key"] == r["value"]["vehicle_id"]));
    // SIGTERM: it stops cleanly and reports.
    let err = stop(process);
    assert!(err.contains("Done: processed"), "{err}");
}

#[test]
fn stages_without_brokers_say_how_to_name_them() {
    for stage in [
        &["process"][..],
        &["serve", "--port", "0"],
        &["tail", "alerts"],
    ] {
        let out = streamcity(stage);
        assert!(!out.status.success());
        assert!(
            stderr(&out).contains("KAFKA_BOOTSTRAP_SERVERS"),
            "{stage:?}: {}",
            stderr(&out)
        );
    }
}

#[test]
fn bus_chooses_between_memory_and_kafka() {
    // Kafka needs brokers.
    let out = streamcity(&["--bus", "kafka", "--port", "0"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("KAFKA_BOOTSTRAP_SERVERS"),
        "{}",
        stderr(&out)
    );
    // The stages that only run on Kafka refuse the memory bus.
    let out = streamcity(&["process", "--bus", "memory", "--brokers", "127.0.0.1:1"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("runs against Kafka"),
        "{}",
        stderr(&out)
    );
    // `--bus memory` wins over brokers: produce writes JSON lines, never dialling them.
    let out = streamcity(&[
        "produce",
        "vehicles",
        "--bus",
        "memory",
        "--brokers",
        "127.0.0.1:1",
        "--max",
        "3",
        "--speed",
        "1000",
        "--start",
        START,
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 3);
    // An unknown bus is named.
    let out = streamcity(&["--bus", "redis"]);
    assert!(
        stderr(&out).contains("invalid value 'redis'"),
        "{}",
        stderr(&out)
    );
}
