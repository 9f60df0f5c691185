//! Producer throughput to a Kafka-protocol broker on loopback: StreamCity's producer
//! (simulating, encoding the twin's real events as JSON, publishing through the Kafka
//! bus) next to rdkafka's raw producer sending the same records pre-serialised (the
//! client's limit), on the same broker, in the same run, with the same settings
//! (idempotence, lz4, linger 5 ms, 6 partitions).
//!
//! Then a Python producer written like the seeds' (kafka-python, JSON serialised per
//! send), on the same records, from `benchmarks/kafka_python_producer.py`; its
//! environment comes from `benchmarks/python-env.sh` (or `STREAMCITY_PYTHON`).
//!
//! `cargo bench --bench kafka_produce -- --records 300000 --python-records 30000`
//! (`--quick`: 20,000 and 2,000, the CI smoke run). Results go to stdout and to
//! `target/benchmarks/kafka_produce.json`.
//!
//! The broker: `STREAMCITY_TEST_BROKERS` when set, otherwise a tansu started here
//! (`tansu` on the PATH; `scripts/test.sh` installs it).

#![allow(clippy::unwrap_used)] // a benchmark: any failure should stop it loudly

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::util::Timeout;
use streamcity_core::{Bus, Record, Topics};
use streamcity_kafka::{KafkaBus, KafkaConfig};
use streamcity_network::{SyntheticConfig, synthetic};
use streamcity_producers::runner::to_record;
use streamcity_producers::sim::{SimConfig, Simulation};

use broker::Broker;
use results::write_results;
use streamcity_testkit::broker;
use streamcity_testkit::results;

/// `n` of the twin's records: a 20,000-vehicle city's events, as the producers make them.
fn records(topics: &Topics, n: usize) -> Vec<Record> {
    let city = Arc::new(synthetic::generate(SyntheticConfig {
        vehicles: 20_000,
        ..SyntheticConfig::default()
    }));
    let mut sim = Simulation::new(city, SimConfig::default());
    let mut events = Vec::new();
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        sim.step(&mut events);
        out.extend(events.drain(..).map(|e| to_record(topics, &e)));
    }
    out.truncate(n);
    out
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let quick = args.iter().any(|a| a == "--quick" || a == "--test");
    let n: usize = args
        .iter()
        .position(|a| a == "--records")
        .and_then(|i| args.get(i + 1)?.parse().ok())
        .unwrap_or(if quick { 20_000 } else { 300_000 });
    let python_records: usize = args
        .iter()
        .position(|a| a == "--python-records")
        .and_then(|i| args.get(i + 1)?.parse().ok())
        .unwrap_or(if quick { 2_000 } else { 30_000 });
    let broker = Broker::start();
    let brokers = broker.addr.clone();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();

    // StreamCity: simulate, encode and publish through the Kafka bus.
    let topics = Topics::with_prefix(&format!("bench{}-", std::process::id()));
    let (ours, delivered) = rt.block_on(async {
        let bus = KafkaBus::connect(KafkaConfig::new(brokers.clone()))
            .await
            .expect("the broker");
        bus.ensure_topics(&topics).await.expect("topics");
        let city = Arc::new(synthetic::generate(SyntheticConfig {
            vehicles: 20_000,
            ..SyntheticConfig::default()
        }));
        let mut sim = Simulation::new(city, SimConfig::default());
        let mut events = Vec::new();
        let started = Instant::now();
        let mut sent = 0;
        while sent < n {
            sim.step(&mut events);
            for e in events.drain(..).take(n - sent) {
                bus.publish(to_record(&topics, &e)).await.unwrap();
                sent += 1;
            }
            events.clear();
        }
        bus.flush().await.unwrap();
        let secs = started.elapsed().as_secs_f64();
        (
            sent as f64 / secs,
            bus.stats()
                .delivered
                .load(std::sync::atomic::Ordering::Relaxed),
        )
    });
    assert_eq!(delivered as usize, n, "every record acknowledged");

    // rdkafka's raw producer, the same records pre-serialised.
    let raw_topics = rt.block_on(topics_on(&brokers, "benchraw"));
    let prepared = records(&raw_topics, n);
    let producer: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .set("enable.idempotence", "true")
        .set("compression.type", "lz4")
        .set("linger.ms", "5")
        .create()
        .unwrap();
    let started = Instant::now();
    for r in &prepared {
        loop {
            let rec = BaseRecord::to(&r.topic)
                .key(&r.key[..])
                .payload(&r.payload[..])
                .timestamp(r.timestamp);
            match producer.send(rec) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                    producer.poll(Duration::from_millis(1));
                }
                Err((e, _)) => panic!("{e}"),
            }
        }
    }
    producer
        .flush(Timeout::After(Duration::from_secs(60)))
        .unwrap();
    let raw = n as f64 / started.elapsed().as_secs_f64();

    // A Python producer written like the seeds' (kafka-python), the same records.
    let py_topics = rt.block_on(topics_on(&brokers, "benchpy"));
    let py_n = python_records.min(n);
    let python = python_producer(&brokers, &records(&py_topics, py_n));

    let bytes: usize = prepared.iter().map(|r| r.payload.len()).sum();
    println!(
        "records: {n} (Python: {py_n}), mean payload {} bytes, broker {brokers}",
        bytes / n
    );
    println!("| producer | records/s | StreamCity is |");
    println!("| --- | ---: | ---: |");
    println!("| StreamCity (simulate + encode + publish, all acknowledged) | {ours:.0} | |");
    println!(
        "| rdkafka raw, pre-serialised (the client's limit) | {raw:.0} | {:.2} of it (goal 0.70) |",
        ours / raw
    );
    println!(
        "| Python, kafka-python like the seeds | {python:.0} | {:.0}x it (goal 50x) |",
        ours / python
    );
    let results = serde_json::json!({
        "benchmark": "kafka_produce",
        "records": n,
        "python_records": py_n,
        "mean_payload_bytes": bytes / n,
        "rates": {"streamcity": ours, "rdkafka_raw": raw, "kafka_python": python},
        "ratios": {"streamcity_over_raw": ours / raw, "streamcity_over_python": ours / python},
    });
    write_results("kafka_produce", &results);
    drop(broker);
}

/// A set of topics of its own on the broker, named after `prefix` and this process.
async fn topics_on(brokers: &str, prefix: &str) -> Topics {
    let topics = Topics::with_prefix(&format!("{prefix}{}-", std::process::id()));
    let bus = KafkaBus::connect(KafkaConfig::new(brokers.to_owned()))
        .await
        .unwrap();
    bus.ensure_topics(&topics).await.unwrap();
    topics
}

/// Runs `benchmarks/kafka_python_producer.py` on `records` and returns its rate.
fn python_producer(brokers: &str, records: &[Record]) -> f64 {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let python = match std::env::var("STREAMCITY_PYTHON") {
        Ok(p) => p,
        Err(_) => {
            let out = Command::new(root.join("benchmarks/python-env.sh"))
                .stderr(Stdio::inherit())
                .output()
                .expect("benchmarks/python-env.sh runs");
            assert!(out.status.success(), "benchmarks/python-env.sh failed");
            String::from_utf8(out.stdout).unwrap().trim().to_owned()
        }
    };
    let input = std::env::temp_dir().join(format!("streamcity-bench-{}.jsonl", std::process::id()));
    let mut text = String::new();
    for r in records {
        let value: serde_json::Value = serde_json::from_slice(&r.payload).unwrap();
        text.push_str(
            &serde_json::json!({
                "topic": &*r.topic,
                "key": String::from_utf8_lossy(&r.key),
                "value": value,
            })
            .to_string(),
        );
        text.push('\n');
    }
    std::fs::write(&input, text).unwrap();
    let out = Command::new(&python)
        .arg(root.join("benchmarks/kafka_python_producer.py"))
        .args(["--brokers", brokers, "--input"])
        .arg(&input)
        .stderr(Stdio::inherit())
        .output()
        .unwrap_or_else(|e| panic!("running {python}: {e}"));
    std::fs::remove_file(&input).unwrap();
    assert!(
        out.status.success(),
        "the Python producer failed: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["delivered"].as_u64(), Some(records.len() as u64));
    report["rate"].as_f64().unwrap()
}
