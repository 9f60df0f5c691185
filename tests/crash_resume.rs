//! Fault injection on a real broker (tansu, from `scripts/test.sh`): one fixed-seed
//! stream, copied record for record (same partition, key, value and timestamp) into
//! topics of its own for each run; a processor run uninterrupted over it, and others
//! killed with SIGKILL at several points and restarted after a short or a long
//! downtime. Their outputs must be the uninterrupted run's: nothing lost, nothing
//! published twice. Like Kafka Streams' system tests, the verifier prints
//! ALL-RECORDS-DELIVERED when they are.
//!
//! Compared record for record (key and value, as many times each): `alerts`,
//! `surge_alerts`, `late_events`, `dead_letters`. The `live_vehicle_table` is a table:
//! a report published again after a restart is the same latest value for its key
//! (idempotent by key), so it is compared as the latest value per key.

#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use streamcity_core::Topics;
use streamcity_kafka::{KafkaBus, KafkaConfig};
use streamcity_testkit::broker::test_brokers as brokers;
use streamcity_testkit::stage::{Binary, Running, http_get, metric, stderr, unique};
use streamcity_testkit::topic::{Stored, read_all};

const HOUR: i64 = 3_600_000;

fn bin(brokers: &str, prefix: &str) -> Binary {
    Binary::new(env!("CARGO_BIN_EXE_streamcity"))
        .env("KAFKA_BOOTSTRAP_SERVERS", brokers)
        .env("STREAMCITY_TOPIC_PREFIX", prefix)
}

/// Copies the inputs and the network of `from` into `to` on `brokers`, record for
/// record.
async fn copy(brokers: &str, from: &Topics, to: &Topics) -> u64 {
    let bus = KafkaBus::connect(KafkaConfig::new(brokers)).await.unwrap();
    bus.ensure_topics(to).await.unwrap();
    // As StreamCity's producer sends them: tansu 0.6 gives the partition a wrong end
    // offset after a plain multi-record batch (4 records, end offset 1).
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("enable.idempotence", "true")
        .set("compression.type", "lz4")
        .set("linger.ms", "5")
        .create()
        .unwrap();
    let pairs = streamcity_processor::inputs(from)
        .into_iter()
        .zip(streamcity_processor::inputs(to))
        .chain([(&from.network, &to.network)]);
    let mut copied = 0;
    for (source, target) in pairs {
        let records = tokio::task::spawn_blocking({
            let (source, brokers) = (Arc::clone(source), brokers.to_owned());
            move || read_all(&brokers, &source)
        })
        .await
        .unwrap();
        for r in &records {
            let mut record = BaseRecord::to(target)
                .partition(r.partition)
                .key(&r.key[..])
                .payload(&r.value[..])
                .timestamp(r.timestamp);
            loop {
                match producer.send(record) {
                    Ok(()) => break,
                    Err((_, back)) => {
                        record = back;
                        producer.poll(Duration::from_millis(10));
                    }
                }
            }
        }
        eprintln!("copied {} records of {source} to {target}", records.len());
        if **source != *from.network {
            copied += records.len() as u64;
        }
    }
    producer.flush(Duration::from_secs(60)).unwrap();
    copied
}

/// The processor's counters from its `/metrics`.
fn progress(process: &Running) -> (f64, f64, f64) {
    let (_, page) = http_get(process.metrics_port(), "/metrics");
    let lag: f64 = page
        .lines()
        .filter(|l| l.starts_with("streamcity_processor_consumer_lag{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    (
        metric(&page, "streamcity_processor_records_in_total"),
        metric(&page, "streamcity_processor_assigned_partitions"),
        lag,
    )
}

/// Waits until the processor has read every input record (no lag on any assigned
/// partition, nothing new for 3 s), within 4 minutes.
fn until_caught_up(process: &Running) {
    let deadline = Instant::now() + Duration::from_secs(240);
    let mut last = (-1.0, 0.0, -1.0);
    let mut steady_since = Instant::now();
    loop {
        let now = progress(process);
        if now != last {
            (last, steady_since) = (now, Instant::now());
        }
        let (_, assigned, lag) = now;
        assert!(
            !process.printed().contains("waiting for the network"),
            "the processor did not find the network:\n{}",
            process.printed()
        );
        if assigned > 0.0 && lag == 0.0 && steady_since.elapsed() > Duration::from_secs(6) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the processor did not catch up within 4 minutes ({now:?}):\n{}",
            process.printed()
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// Waits (4 minutes at most) until `process` has read `records` input records.
fn until_read(process: &Running, records: f64) {
    let deadline = Instant::now() + Duration::from_secs(240);
    while progress(process).0 < records {
        assert!(
            Instant::now() < deadline,
            "never read {records} records within 4 minutes:\n{}",
            process.printed()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// What befalls a run once the processor has read a share of its input.
enum Fault<'a> {
    /// Nothing.
    None,
    /// The processor is killed with SIGKILL and started again after the downtime.
    Processor(f64, Duration),
    /// Killed as above, and killed again once the restarted one has read the second
    /// share (while it replays what the first had done after its checkpoint).
    Twice(f64, f64),
    /// Something else fails (the broker): the closure does it, and comes back.
    Other(f64, &'a mut dyn FnMut()),
}

/// One run of the processor over the stream copied into `prefix` on `brokers`, through
/// `fault`. Returns what it published, by output topic.
fn run(
    brokers: &str,
    prefix: &str,
    inputs: u64,
    fault: Fault<'_>,
) -> (BTreeMap<String, Vec<Stored>>, String) {
    let dir = std::env::temp_dir().join(unique("crash-checkpoint"));
    std::fs::create_dir_all(&dir).unwrap();
    let checkpoint = dir.join("processor.json");
    let checkpoint = checkpoint.to_str().unwrap();
    let args = [
        "process",
        "--port",
        "0",
        "--checkpoint",
        checkpoint,
        "--checkpoint-interval",
        "1",
    ];
    let bin = bin(brokers, prefix);
    let mut process = bin.start(&args);
    let mut logs = String::new();
    let share = match fault {
        Fault::None => None,
        Fault::Processor(share, _) | Fault::Other(share, _) | Fault::Twice(share, _) => Some(share),
    };
    if let Some(share) = share {
        until_read(&process, share * inputs as f64);
        match fault {
            Fault::Processor(_, downtime) => {
                logs = process.kill();
                logs.push_str("--- killed; restarted:\n");
                std::thread::sleep(downtime);
                process = bin.start(&args);
            }
            Fault::Twice(_, again) => {
                logs = process.kill();
                logs.push_str("--- killed; restarted:\n");
                std::thread::sleep(Duration::from_secs(1));
                process = bin.start(&args);
                until_read(&process, again * inputs as f64);
                logs.push_str(&process.kill());
                logs.push_str("--- killed again; restarted:\n");
                std::thread::sleep(Duration::from_secs(1));
                process = bin.start(&args);
            }
            Fault::Other(_, fail) => fail(),
            Fault::None => {}
        }
    }
    until_caught_up(&process);
    let printed = process.stop();
    logs.push_str(&printed);
    let _ = std::fs::remove_dir_all(&dir);
    let topics = Topics::with_prefix(prefix);
    let mut outputs = BTreeMap::new();
    for topic in [
        &topics.alerts,
        &topics.surge_alerts,
        &topics.late_events,
        &topics.dead_letters,
        &topics.live_vehicle_table,
    ] {
        let name = topic.strip_prefix(prefix).unwrap_or(topic).to_owned();
        outputs.insert(name, read_all(brokers, topic));
    }
    assert!(!outputs["alerts"].is_empty(), "no alerts at all: {printed}");
    (outputs, logs)
}

/// What in a run's logs tells how its partitions moved, to read when outputs differ.
fn moves(logs: &str) -> String {
    logs.lines()
        .filter(|l| {
            [
                "Partitions",
                "Released",
                "Read back",
                "not published again",
                "read directly",
                "afresh",
                "Restored",
                "WARN",
                "ERROR",
                "---",
            ]
            .iter()
            .any(|k| l.contains(k))
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// How many records of `got` and `expected` are not matched one for one (key, value).
fn differences(got: &[Stored], expected: &[Stored], table: bool) -> usize {
    if table {
        // The latest by event time (a vehicle's reports go to its line's partition, so
        // one that changes lines has them in two).
        let latest = |rs: &[Stored]| -> BTreeMap<Vec<u8>, Vec<u8>> {
            let mut by_key: BTreeMap<Vec<u8>, (i64, Vec<u8>)> = BTreeMap::new();
            for r in rs {
                let e = by_key
                    .entry(r.key.clone())
                    .or_insert((i64::MIN, Vec::new()));
                if (r.timestamp, &r.value) > (e.0, &e.1) {
                    *e = (r.timestamp, r.value.clone());
                }
            }
            by_key.into_iter().map(|(k, (_, v))| (k, v)).collect()
        };
        let (g, e) = (latest(got), latest(expected));
        for (k, v) in g.iter().filter(|(k, v)| e.get(*k) != Some(*v)).take(2) {
            eprintln!(
                "  {}: {} | reference {}",
                String::from_utf8_lossy(k),
                String::from_utf8_lossy(v),
                e.get(k)
                    .map(|v| String::from_utf8_lossy(v).into_owned())
                    .unwrap_or_default()
            );
        }
        return g.iter().filter(|(k, v)| e.get(*k) != Some(*v)).count()
            + e.keys().filter(|k| !g.contains_key(*k)).count();
    }
    let mut count: HashMap<(&[u8], &[u8]), i64> = HashMap::new();
    for r in got {
        *count.entry((&r.key, &r.value)).or_default() += 1;
    }
    for r in expected {
        *count.entry((&r.key, &r.value)).or_default() -= 1;
    }
    for ((key, value), n) in count.iter().filter(|(_, n)| **n != 0).take(4) {
        eprintln!(
            "  {n:+} {}: {}",
            String::from_utf8_lossy(key),
            String::from_utf8_lossy(value)
        );
    }
    count.values().map(|n| n.unsigned_abs() as usize).sum()
}

/// Compares a run's outputs with the reference's: (records compared, differences).
fn compare(
    name: &str,
    outputs: &BTreeMap<String, Vec<Stored>>,
    expected: &BTreeMap<String, Vec<Stored>>,
) -> (usize, usize) {
    let mut compared = 0;
    let mut diff = 0;
    for (topic, records) in outputs {
        compared += records.len();
        let d = differences(records, &expected[topic], topic == "live_vehicle_table");
        if d > 0 {
            eprintln!(
                "{name}: {topic}: {d} records differ ({} records, {} in the reference)",
                records.len(),
                expected[topic].len()
            );
        }
        diff += d;
    }
    (compared, diff)
}

/// Produces the fixed-seed stream of `records` records (yesterday's morning, with a
/// crowd so that a surge is among the alerts) into topics prefixed `prefix`.
fn produce(brokers: &str, prefix: &str, records: u64) -> Topics {
    let now = streamcity_core::clock::wall_clock_ms();
    let today = now - now.rem_euclid(24 * HOUR);
    let start = (today - 24 * HOUR + 8 * HOUR).to_string();
    let produced = bin(brokers, prefix).run(&[
        "produce",
        "all",
        "--start",
        &start,
        "--speed",
        "3600",
        "--max",
        &records.to_string(),
        "--seed",
        "9",
        "--crowd",
        "S0042@08:03+5x900",
        "--port",
        "0",
    ]);
    assert!(produced.status.success(), "{}", stderr(&produced));
    Topics::with_prefix(prefix)
}

fn table_header() -> Vec<String> {
    vec![
        "| run | input records | output records compared | differences |".to_owned(),
        "| --- | ---: | ---: | ---: |".to_owned(),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_processor_killed_at_any_point_gives_the_outputs_of_an_uninterrupted_run() {
    let brokers = brokers();
    let source = produce(&brokers, &unique("crash-source"), 200_000);
    let runs: [(&str, Fault<'_>); 6] = [
        ("uninterrupted", Fault::None),
        ("uninterrupted again", Fault::None),
        (
            "killed at 20 %, back after 1 s",
            Fault::Processor(0.2, Duration::from_secs(1)),
        ),
        (
            "killed at 50 %, back after 15 s",
            Fault::Processor(0.5, Duration::from_secs(15)),
        ),
        (
            "killed at 85 %, back after 1 s",
            Fault::Processor(0.85, Duration::from_secs(1)),
        ),
        (
            "killed at 60 %, and again in the replay",
            Fault::Twice(0.6, 0.02),
        ),
    ];
    let mut reference = None;
    let mut table = table_header();
    let mut all_equal = true;
    for (name, fault) in runs {
        let prefix = unique("crash-run");
        let inputs = copy(&brokers, &source, &Topics::with_prefix(&prefix)).await;
        let (outputs, logs) = tokio::task::block_in_place(|| run(&brokers, &prefix, inputs, fault));
        let Some(expected) = &reference else {
            let compared: usize = outputs.values().map(Vec::len).sum();
            table.push(format!("| {name} | {inputs} | {compared} | (reference) |"));
            reference = Some(outputs);
            continue;
        };
        let (compared, diff) = compare(name, &outputs, expected);
        if diff > 0 {
            eprintln!("{name}: how its partitions moved:\n{}", moves(&logs));
        }
        all_equal &= diff == 0;
        table.push(format!("| {name} | {inputs} | {compared} | {diff} |"));
    }
    eprintln!("{}", table.join("\n"));
    assert!(all_equal, "outputs differ from the uninterrupted run");
    eprintln!("ALL-RECORDS-DELIVERED");
}

/// A tansu broker of the test's own on SQLite storage in `dir` (its records survive
/// a restart); `STREAMCITY_TANSU` is the binary `scripts/test.sh` installed.
fn start_tansu(dir: &std::path::Path, port: u16) -> std::process::Child {
    let tansu = std::env::var("STREAMCITY_TANSU").expect(
        "STREAMCITY_TANSU is not set: this test starts a broker of its own; run it with scripts/test.sh, which installs tansu",
    );
    streamcity_testkit::tansu::start(&tansu, dir, port, "sqlite://crash.db")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_killed_mid_stream_loses_nothing_of_the_processors_outputs() {
    let dir = std::env::temp_dir().join(unique("broker-crash"));
    std::fs::create_dir_all(&dir).unwrap();
    let port = streamcity_testkit::stage::free_port();
    let brokers = format!("127.0.0.1:{port}");
    let mut broker = Some(start_tansu(&dir, port));
    let source = produce(&brokers, "source-", 60_000);
    // The processor reads through the broker's death (SIGKILL) and return on the same
    // port and storage; then an uninterrupted run over a copy of the same stream.
    let crashed = Topics::with_prefix("crashed-");
    let inputs = copy(&brokers, &source, &crashed).await;
    let mut kill_broker = || {
        let mut dead = broker.take().unwrap();
        dead.kill().unwrap();
        dead.wait().unwrap();
        std::thread::sleep(Duration::from_secs(2));
        broker = Some(start_tansu(&dir, port));
    };
    let (outputs, logs) = tokio::task::block_in_place(|| {
        run(
            &brokers,
            "crashed-",
            inputs,
            Fault::Other(0.4, &mut kill_broker),
        )
    });
    let calm = Topics::with_prefix("calm-");
    assert_eq!(copy(&brokers, &source, &calm).await, inputs);
    let (expected, _) = tokio::task::block_in_place(|| run(&brokers, "calm-", inputs, Fault::None));
    let (compared, diff) = compare("broker killed at 40 %", &outputs, &expected);
    if diff > 0 {
        eprintln!("how its partitions moved:\n{}", moves(&logs));
    }
    let mut table = table_header();
    table.push(format!(
        "| broker killed at 40 %, back after 2 s | {inputs} | {compared} | {diff} |"
    ));
    eprintln!("{}", table.join("\n"));
    if let Some(mut b) = broker {
        let _ = b.kill();
        let _ = b.wait();
    }
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(diff, 0, "outputs differ from the uninterrupted run");
    eprintln!("ALL-RECORDS-DELIVERED");
}
