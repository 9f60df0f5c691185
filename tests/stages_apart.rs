//! The stages running apart on a real broker (tansu, from `scripts/test.sh`) share one
//! world: the producer's network and clock travel on the bus; `process` and `serve`
//! need no flags to agree with it, whatever order they start in; nothing is judged by a
//! stage's own clock, so a backfill of yesterday gives the alerts a live run gives; and
//! a stage given another network stops, naming both.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use serde_json::Value;
use streamcity_core::{Bus, Record, StartFrom, Subscribe, Subscription, Topics};
use streamcity_kafka::{KafkaBus, KafkaConfig};
use streamcity_network::{SyntheticConfig, synthetic};
use streamcity_processor::{Processor, ProcessorConfig};
use streamcity_testkit::broker::test_brokers as brokers;
use streamcity_testkit::stage::{Binary, Running, api_vehicles, http_get, metric, stderr, unique};
use streamcity_testkit::twin::live_vehicles;

const HOUR: i64 = 3_600_000;

/// The binary on the test broker, with topics behind `prefix`.
fn bin(prefix: &str) -> Binary {
    Binary::new(env!("CARGO_BIN_EXE_streamcity"))
        .env("KAFKA_BOOTSTRAP_SERVERS", brokers())
        .env("STREAMCITY_TOPIC_PREFIX", prefix)
}

fn now_ms() -> i64 {
    streamcity_core::clock::wall_clock_ms()
}

/// Checks what a running dashboard and processor show once the vehicles are in.
async fn check_the_shared_world(
    order: &str,
    serve: &mut Running,
    process: &Running,
    start_ms: i64,
) {
    let port = serve.dashboard_port();
    let vehicles = live_vehicles(&port).await;
    assert!(
        vehicles >= 200,
        "{order}: only {vehicles} vehicles on the map\nserve: {}\nprocess: {}",
        serve.printed(),
        process.printed()
    );
    // The dashboard shows the producer's network and clock.
    let port: u16 = port.parse().unwrap();
    let (status, body) = http_get(port, "/api/status");
    assert_eq!(status, 200, "{body}");
    let status: Value = serde_json::from_str(&body).unwrap();
    let expected = synthetic::generate(SyntheticConfig::default());
    assert_eq!(status["network"]["hash"], expected.hash(), "{status}");
    let clock = &status["clock"];
    assert_eq!(clock["source"], "producer", "{status}");
    assert_eq!(clock["speed"], 10.0, "{status}");
    let time = clock["time"].as_i64().unwrap();
    assert!(
        (start_ms..start_ms + HOUR).contains(&time),
        "{order}: simulated time {time}, started at {start_ms}"
    );
    assert_eq!(
        clock["service_day"],
        streamcity_network::Date::of(time, 0).to_string()
    );
    // The processor, run alone, shows itself: ready, records in, none dead-lettered.
    let metrics_port = process.metrics_port();
    let (ready, why) = http_get(metrics_port, "/readyz");
    assert_eq!(ready, 200, "{why}");
    let (_, page) = http_get(metrics_port, "/metrics");
    assert!(
        metric(&page, "streamcity_processor_records_in_total") > 1_000.0,
        "{page}"
    );
    assert_eq!(
        metric(&page, "streamcity_processor_dead_letters_total"),
        0.0,
        "{order}: records went to dead_letters\n{page}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stages_started_in_either_order_share_the_producers_world() {
    // Three hours ahead of the wall clock at 10x: a processor judging records by its
    // own clock would set them all aside.
    let start_ms = now_ms() + 3 * HOUR;
    let start = start_ms.to_string();
    let produce = [
        "produce", "all", "--speed", "10", "--start", &start, "--port", "0",
    ];
    for order in ["the stages first", "the producer first"] {
        let prefix = unique("apart");
        let bin = bin(&prefix);
        let (producer, process, mut serve) = if order == "the stages first" {
            let process = bin.start(&["process", "--port", "0"]);
            let serve = bin.start(&["serve", "--port", "0"]);
            // Before any producer, they wait for the network and say so.
            for stage in [&process, &serve] {
                stage.wait_for("waiting for the network", Duration::from_secs(60));
            }
            let (not_ready, _) = http_get(process.metrics_port(), "/readyz");
            assert_eq!(not_ready, 503);
            (bin.start(&produce), process, serve)
        } else {
            let producer = bin.start(&produce);
            producer.wait_for("Producing", Duration::from_secs(60));
            (
                producer,
                bin.start(&["process", "--port", "0"]),
                bin.start(&["serve", "--port", "0"]),
            )
        };
        check_the_shared_world(order, &mut serve, &process, start_ms).await;
        serve.stop();
        let done = process.stop();
        producer.stop();
        assert!(done.contains("dead letters 0"), "{order}: {done}");
    }
}

#[test]
fn a_stage_given_another_network_stops_naming_both() {
    let prefix = unique("othercity");
    let bin = bin(&prefix);
    let produced = bin.run(&[
        "produce", "vehicles", "--seed", "42", "--max", "100", "--speed", "100", "--port", "0",
    ]);
    assert!(produced.status.success(), "{}", stderr(&produced));
    for stage in [
        &["process", "--seed", "7", "--port", "0"][..],
        &["serve", "--seed", "7", "--port", "0"],
    ] {
        let out = bin.run(stage);
        let err = stderr(&out);
        assert!(!out.status.success(), "{stage:?} accepted another network");
        assert!(
            err.contains("seed 7") && err.contains("seed 42") && err.contains("network"),
            "{stage:?}: {err}"
        );
    }
    // The same network is fine, given explicitly or not.
    let agreeing = bin.start(&["process", "--seed", "42", "--port", "0"]);
    agreeing.wait_for("Network read from the bus", Duration::from_secs(60));
    agreeing.stop();
    // And a producer of another city refuses to share the topics.
    let out = bin.run(&[
        "produce", "vehicles", "--seed", "7", "--max", "10", "--port", "0",
    ]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("another city") && stderr(&out).contains("seed 42"),
        "{}",
        stderr(&out)
    );
}

/// Every record of `topic` on the test broker, from the beginning, read until none has
/// come for 5 s (at most 2 minutes).
async fn read_topic(topic: &Arc<str>) -> Vec<Record> {
    let bus = KafkaBus::connect(KafkaConfig::new(brokers()))
        .await
        .unwrap();
    let mut sub = bus
        .subscribe(Subscribe::new(unique("reader"), &[topic]).from(StartFrom::Earliest))
        .await
        .unwrap();
    let mut records = Vec::new();
    let mut batch = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    while tokio::time::Instant::now() < deadline {
        match tokio::time::timeout(Duration::from_secs(5), sub.recv_many(&mut batch, 1024)).await {
            Ok(got) => {
                if got.unwrap() == 0 {
                    break;
                }
                records.extend(batch.drain(..).map(|d| d.record));
            }
            Err(_) => break, // quiet for 5 s: all read
        }
    }
    records
}

/// (alert id, state) of alert records, sorted.
fn alert_states<'a>(payloads: impl Iterator<Item = &'a [u8]>) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = payloads
        .map(|p| {
            let a: Value = serde_json::from_slice(p).unwrap();
            (
                a["alert_id"].as_str().unwrap().to_owned(),
                a["state"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    out.sort();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backfill_of_yesterday_gives_the_alerts_of_a_live_run() {
    // Yesterday's evening peak, with a crowd so that a surge is among the alerts.
    let today = now_ms() - now_ms().rem_euclid(24 * HOUR);
    let start = (today - 24 * HOUR + 17 * HOUR).to_string();
    let args = [
        "produce",
        "all",
        "--start",
        &start,
        "--speed",
        "3600",
        "--max",
        "150000",
        "--seed",
        "5",
        "--crowd",
        "S0042@17:03+5x900",
    ];

    // Live: the same records (same seed and settings), each processed as it happens,
    // the processing clock at its own event time.
    let live = Binary::new(env!("CARGO_BIN_EXE_streamcity"))
        .env("KAFKA_BOOTSTRAP_SERVERS", "")
        .run(&args);
    assert!(live.status.success(), "{}", stderr(&live));
    let topics = Topics::default();
    let network = Arc::new(synthetic::generate(SyntheticConfig {
        seed: 5,
        ..SyntheticConfig::default()
    }));
    let config = streamcity::processor_config(ProcessorConfig::default(), &network);
    let mut core = Processor::new(topics.clone(), config).with_network(Arc::clone(&network));
    let (mut out, mut inputs) = (Vec::new(), 0u64);
    for line in String::from_utf8(live.stdout).unwrap().lines() {
        let r: Value = serde_json::from_str(line).unwrap();
        let topic = topics
            .all()
            .into_iter()
            .find(|t| ***t == *r["topic"].as_str().unwrap())
            .unwrap();
        if !streamcity_processor::inputs(&topics).contains(&topic) {
            continue;
        }
        inputs += 1;
        let ts = r["timestamp"].as_i64().unwrap();
        let record = Record::new(
            topic,
            Bytes::copy_from_slice(r["key"].as_str().unwrap().as_bytes()),
            Bytes::from(serde_json::to_vec(&r["value"]).unwrap()),
            ts,
        );
        core.on_record(&record, 0, ts, &mut out);
        core.advance(ts, &mut out);
    }
    let expected = alert_states(
        out.iter()
            .filter(|r| r.topic == topics.alerts)
            .map(|r| &r.payload[..]),
    );
    assert!(
        expected.iter().any(|(id, _)| id.starts_with("surge:")),
        "no surge in the live run: {expected:?}"
    );

    // Backfill: yesterday's records produced at 3600x, then a plain `process` reads them.
    let prefix = unique("backfill");
    let bin = bin(&prefix);
    let produced = bin.run(&[&args[..], &["--port", "0"]].concat());
    assert!(produced.status.success(), "{}", stderr(&produced));
    let process = bin.start(&["process", "--port", "0"]);
    let page = wait_for_records(&process, inputs, Duration::from_secs(180));
    for counter in [
        "streamcity_processor_dead_letters_total",
        "streamcity_processor_late_records_total",
    ] {
        assert_eq!(metric(&page, counter), 0.0, "{page}");
    }
    std::thread::sleep(Duration::from_secs(2));
    process.stop();
    let alerts = read_topic(&Topics::with_prefix(&prefix).alerts).await;
    let got = alert_states(alerts.iter().map(|r| &r.payload[..]));
    let (ids_got, ids_expected): (BTreeSet<_>, BTreeSet<_>) = (
        got.iter().map(|a| &a.0).collect(),
        expected.iter().map(|a| &a.0).collect(),
    );
    assert_eq!(
        ids_got
            .symmetric_difference(&ids_expected)
            .collect::<Vec<_>>(),
        Vec::<&&String>::new(),
        "alerts raised in only one of the runs"
    );
    assert_eq!(got, expected, "{} alert records", expected.len());
}

#[test]
fn a_gtfs_feed_produced_on_kafka_reaches_process_and_serve_with_no_flags() {
    let cairns = std::env::var("STREAMCITY_TEST_CAIRNS").expect(
        "STREAMCITY_TEST_CAIRNS is not set: run the tests with scripts/test.sh, which fetches the Cairns GTFS feed",
    );
    let expected = streamcity_network::gtfs::load(std::path::Path::new(&cairns))
        .unwrap()
        .network;
    let prefix = unique("apart-gtfs");
    let bin = bin(&prefix);
    let producer = bin.start(&[
        "produce",
        "all",
        "--gtfs",
        &cairns,
        "--date",
        "2014-06-02",
        "--start",
        "08:00",
        "--speed",
        "10",
        "--port",
        "0",
    ]);
    producer.wait_for("Producing", Duration::from_secs(60));
    let process = bin.start(&["process", "--port", "0"]);
    let mut serve = bin.start(&["serve", "--port", "0"]);
    let port: u16 = serve.dashboard_port().parse().unwrap();
    // The feed's city, from the bus: its network, its clock in its local time, its trips.
    let vehicles = api_vehicles(port, 20, Duration::from_secs(60), || {
        format!(
            "serve: {}\nprocess: {}\nproduce: {}",
            serve.printed(),
            process.printed(),
            producer.printed()
        )
    });
    for v in &vehicles {
        assert_eq!(v["start_date"], "20140602", "{v}");
        assert!(
            expected.trip(v["trip_id"].as_str().unwrap()).is_some(),
            "{v}"
        );
    }
    let (_, body) = http_get(port, "/api/status");
    let status: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(status["network"]["hash"], expected.hash(), "{status}");
    assert_eq!(status["clock"]["service_day"], "2014-06-02", "{status}");
    assert_eq!(status["clock"]["utc_offset_min"], 600, "{status}");
    let (_, routes) = http_get(port, "/api/routes");
    assert_eq!(
        serde_json::from_str::<Vec<Value>>(&routes).unwrap().len(),
        22
    );
    let (_, trip) = http_get(port, "/api/trips/CNS2014-CNS_MUL-Weekday-00-4165878");
    let trip: Value = serde_json::from_str(&trip).unwrap();
    assert_eq!(trip["headsign"], "The Pier Cairns Terminus", "{trip}");
    serve.stop();
    let done = process.stop();
    producer.stop();
    assert!(done.contains("dead letters 0"), "{done}");
}

/// Waits until `process` has taken in `records` input records (failing after `within`);
/// returns its metrics then.
fn wait_for_records(process: &Running, records: u64, within: Duration) -> String {
    let metrics = process.metrics_port();
    let deadline = std::time::Instant::now() + within;
    loop {
        let (_, page) = http_get(metrics, "/metrics");
        if metric(&page, "streamcity_processor_records_in_total") >= records as f64 {
            return page;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{records} records were not processed within {within:?}:\n{page}\n{}",
            process.printed()
        );
        std::thread::sleep(Duration::from_millis(300));
    }
}

/// The records of `topic` once there are at least `at_least` and no more came for 2 s
/// (within 90 s).
fn settled(topic: &str, at_least: usize) -> Vec<streamcity_testkit::topic::Stored> {
    let deadline = std::time::Instant::now() + Duration::from_secs(90);
    let mut last = usize::MAX;
    loop {
        let records = streamcity_testkit::topic::read_all(&brokers(), topic);
        if records.len() >= at_least.max(1) && records.len() == last {
            return records;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{} records on {topic} after 90 s, {at_least} awaited",
            records.len()
        );
        last = records.len();
        std::thread::sleep(Duration::from_secs(2));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_named_group_resumes_and_from_beginning_reads_everything_again() {
    let prefix = unique("group");
    let bin = bin(&prefix);
    let stream = [
        "produce",
        "taps",
        "--max",
        "40000",
        "--speed",
        "5000",
        "--start",
        "1763884800000",
        "--seed",
        "11",
    ];
    let produced = bin.run(&[&stream[..], &["--port", "0"]].concat());
    assert!(produced.status.success(), "{}", stderr(&produced));
    let topics = Topics::with_prefix(&prefix);

    // A group of one's own name: it reads the backlog and commits it.
    let mine = [
        "process",
        "--group",
        "mine",
        "--emit-window-counts",
        "--port",
        "0",
    ];
    let first = bin.start(&mine);
    wait_for_records(&first, 40000, Duration::from_secs(120));
    let counts = settled(&topics.stop_tap_counts, 1);
    first.stop();
    assert!(!counts.is_empty(), "no window counts published");
    let windows: BTreeSet<(Vec<u8>, Vec<u8>)> = counts
        .iter()
        .map(|r| (r.key.clone(), r.value.clone()))
        .collect();
    for r in &counts {
        let v: Value = serde_json::from_slice(&r.value).unwrap();
        assert_eq!(v["stop_id"].as_str().unwrap().as_bytes(), &r.key[..]);
        assert!(v["taps"].as_u64().unwrap() > 0);
    }

    // The same group again: nothing left to read.
    let again = bin.start(&mine);
    std::thread::sleep(Duration::from_secs(8));
    let (_, page) = http_get(again.metrics_port(), "/metrics");
    assert_eq!(
        metric(&page, "streamcity_processor_records_in_total"),
        0.0,
        "the group did not resume after its commits:\n{page}"
    );
    again.stop();

    // --from-beginning: everything again, in a new group named after it.
    let fresh = bin.start(&[
        "process",
        "--group",
        "mine",
        "--from-beginning",
        "--emit-window-counts",
        "--port",
        "0",
    ]);
    fresh.wait_for("new consumer group mine-", Duration::from_secs(30));
    wait_for_records(&fresh, 40000, Duration::from_secs(120));
    let counts = settled(&topics.stop_tap_counts, 2 * windows.len());
    fresh.stop();
    let twice: BTreeSet<(Vec<u8>, Vec<u8>)> = counts
        .iter()
        .map(|r| (r.key.clone(), r.value.clone()))
        .collect();
    // Two runs over the same backlog publish the same counts: each window twice.
    let mut times: std::collections::BTreeMap<(Vec<u8>, Vec<u8>), usize> = Default::default();
    for r in &counts {
        *times.entry((r.key.clone(), r.value.clone())).or_default() += 1;
    }
    assert_eq!(
        counts.len(),
        2 * windows.len(),
        "{} window counts after reading twice, {} after once",
        counts.len(),
        windows.len()
    );
    assert_eq!(twice, windows, "the second run counted other windows");
    assert!(
        times.values().all(|&n| n == 2),
        "a window counted once or thrice"
    );

    // The same records from a file (`produce` without a broker, `process --input`):
    // the same window counts as from Kafka.
    let file = Binary::new(env!("CARGO_BIN_EXE_streamcity")).env("KAFKA_BOOTSTRAP_SERVERS", "");
    let jsonl = file.run(&stream);
    assert!(jsonl.status.success(), "{}", stderr(&jsonl));
    let input = std::env::temp_dir().join(format!("{prefix}.jsonl"));
    std::fs::write(&input, &jsonl.stdout).unwrap();
    let processed = file.run(&[
        "process",
        "--input",
        input.to_str().unwrap(),
        "--emit-window-counts",
    ]);
    let _ = std::fs::remove_file(&input);
    assert!(processed.status.success(), "{}", stderr(&processed));
    let from_file: BTreeSet<(Vec<u8>, Vec<u8>)> = String::from_utf8(processed.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|r| r["topic"] == "stop_tap_counts")
        .map(|r| {
            (
                r["key"].as_str().unwrap().as_bytes().to_vec(),
                r["value"].to_string().into_bytes(),
            )
        })
        .collect();
    // From the file every window closes at the end; on Kafka the last ones stay open
    // (nothing moves event time past them): the windows Kafka closed, the file has.
    assert!(
        windows.is_subset(&from_file),
        "window counts from Kafka missing from the file's run: {:?}",
        windows.difference(&from_file).take(3).collect::<Vec<_>>()
    );
    assert!(from_file.len() >= windows.len());

    // Reading from the beginning contradicts a checkpoint of an earlier run: refused.
    let checkpoint = std::env::temp_dir().join(format!("{prefix}.checkpoint"));
    std::fs::write(&checkpoint, b"{}").unwrap();
    let refused = bin.run(&[
        "process",
        "--from-beginning",
        "--checkpoint",
        checkpoint.to_str().unwrap(),
        "--port",
        "0",
    ]);
    let _ = std::fs::remove_file(&checkpoint);
    assert!(!refused.status.success());
    assert!(
        stderr(&refused).contains("--from-beginning reads everything afresh"),
        "{}",
        stderr(&refused)
    );
}
