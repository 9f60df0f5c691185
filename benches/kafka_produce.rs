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
//! Then the same three on a scenario's records (the retail scenario, `produce --scenario
//! retail --no-pacing`): generated and published through the Kafka bus, rdkafka raw,
//! kafka-python; and the scenario alone written as JSON lines to nowhere (`--output
//! /dev/null`), one core.
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
    let raw = raw_rate(&brokers, &prepared);

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
    // A scenario's records: the retail scenario, generated and published.
    let prefix = format!("benchscen{}-", std::process::id());
    let scenario_topics: Vec<String> = streamcity_scenario::shipped::load("retail")
        .unwrap()
        .topics()
        .iter()
        .map(|t| format!("{prefix}{t}"))
        .collect();
    let (scen_kafka, scen_delivered) = rt.block_on(async {
        let bus = KafkaBus::connect(KafkaConfig::new(brokers.clone()))
            .await
            .expect("the broker");
        bus.ensure_named_topics(&scenario_topics).await.unwrap();
        let stats = Arc::clone(bus.stats());
        let rate = scenario_rate(
            n,
            &prefix,
            streamcity::scenario_run::Sink::Bus(bus, Some(Arc::clone(&stats))),
        )
        .await;
        (
            rate,
            stats.delivered.load(std::sync::atomic::Ordering::Relaxed),
        )
    });
    assert_eq!(
        scen_delivered as usize, n,
        "every scenario record acknowledged"
    );
    let raw_prefix = format!("benchscenraw{}-", std::process::id());
    let prepared_scenario = scenario_records(&raw_prefix, n);
    rt.block_on(async {
        let bus = KafkaBus::connect(KafkaConfig::new(brokers.clone()))
            .await
            .unwrap();
        let names: Vec<String> = scenario_topics
            .iter()
            .map(|t| t.replacen(&prefix, &raw_prefix, 1))
            .collect();
        bus.ensure_named_topics(&names).await.unwrap();
    });
    let scen_raw = raw_rate(&brokers, &prepared_scenario);
    let scen_python = python_producer(&brokers, &prepared_scenario[..py_n]);
    // The scenario alone, to nowhere, one core: the generator's own speed.
    let scen_null = rt.block_on(scenario_rate::<KafkaBus>(
        n.max(1_000_000)
            .min(if quick { 200_000 } else { 5_000_000 }),
        "",
        streamcity::scenario_run::Sink::Lines(Box::new(std::io::sink())),
    ));
    let scen_bytes: usize = prepared_scenario.iter().map(|r| r.payload.len()).sum();
    println!();
    println!(
        "retail scenario: {n} records (Python: {py_n}), mean payload {} bytes",
        scen_bytes / n
    );
    println!("| producer | records/s | the scenario is |");
    println!("| --- | ---: | ---: |");
    println!("| scenario to nowhere (JSON lines, one core) | {scen_null:.0} | (goal 1,000,000) |");
    println!("| scenario (generate + publish, all acknowledged) | {scen_kafka:.0} | |");
    println!(
        "| rdkafka raw, pre-serialised | {scen_raw:.0} | {:.2} of it (goal 0.70) |",
        scen_kafka / scen_raw
    );
    println!(
        "| Python, kafka-python like the seeds | {scen_python:.0} | {:.0}x it |",
        scen_kafka / scen_python
    );
    let results = serde_json::json!({
        "benchmark": "kafka_produce",
        "records": n,
        "python_records": py_n,
        "mean_payload_bytes": bytes / n,
        "rates": {"streamcity": ours, "rdkafka_raw": raw, "kafka_python": python},
        "ratios": {"streamcity_over_raw": ours / raw, "streamcity_over_python": ours / python},
        "scenario": {
            "name": "retail",
            "mean_payload_bytes": scen_bytes / n,
            "rates": {"to_nowhere_one_core": scen_null, "streamcity": scen_kafka, "rdkafka_raw": scen_raw, "kafka_python": scen_python},
            "ratios": {"streamcity_over_raw": scen_kafka / scen_raw, "streamcity_over_python": scen_kafka / scen_python},
        },
    });
    write_results("kafka_produce", &results);
    drop(broker);
}

/// rdkafka's raw producer sending `records` as they are (idempotent, lz4, linger 5
/// ms): records a second until the last is acknowledged.
fn raw_rate(brokers: &str, records: &[Record]) -> f64 {
    let producer: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("enable.idempotence", "true")
        .set("compression.type", "lz4")
        .set("linger.ms", "5")
        .create()
        .unwrap();
    // Its topics' metadata first, as the bus has it before it starts: not timed.
    let mut topics: Vec<&str> = records.iter().map(|r| &*r.topic).collect();
    topics.sort_unstable();
    topics.dedup();
    for t in topics {
        producer
            .client()
            .fetch_metadata(Some(t), Timeout::After(Duration::from_secs(10)))
            .unwrap();
    }
    let started = Instant::now();
    for r in records {
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
    records.len() as f64 / started.elapsed().as_secs_f64()
}

/// The retail scenario's first `n` records, topics behind `prefix`, as `produce
/// --scenario retail --no-pacing --seed 42` makes them.
fn scenario_records(prefix: &str, n: usize) -> Vec<Record> {
    let scenario = streamcity_scenario::shipped::load("retail").unwrap();
    let city = synthetic::generate(SyntheticConfig::default());
    let rename = scenario
        .topics()
        .into_iter()
        .map(|t| (t.clone(), format!("{prefix}{t}")))
        .collect();
    let mut engine = streamcity_scenario::Engine::new(
        &scenario,
        &city,
        42,
        START_MS,
        &streamcity_scenario::Pace::default(),
        &rename,
    );
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        engine.step(&mut |m| {
            out.push(Record::new(
                m.topic,
                bytes::Bytes::copy_from_slice(m.key),
                bytes::Bytes::copy_from_slice(m.value),
                m.timestamp,
            ));
        });
    }
    out.truncate(n);
    out
}

/// The scenario run as `produce --scenario retail --no-pacing --max n` runs it, to
/// `sink`: records a second, and the topics it wrote.
async fn scenario_rate<B: Bus>(
    n: usize,
    prefix: &str,
    sink: streamcity::scenario_run::Sink<B>,
) -> f64 {
    let scenario = streamcity_scenario::shipped::load("retail").unwrap();
    let city = Arc::new(synthetic::generate(SyntheticConfig::default()));
    let settings = streamcity::scenario_run::Settings {
        seed: 42,
        start_ms: START_MS,
        speed: 1.0,
        paced: false,
        max_records: Some(n as u64),
        duration: None,
        pace: streamcity_scenario::Pace::default(),
        rename: scenario
            .topics()
            .into_iter()
            .map(|t| (t.clone(), format!("{prefix}{t}")))
            .collect(),
        report_every: Duration::from_secs(3600),
        avro: None,
    };
    let started = Instant::now();
    let summary = streamcity::scenario_run::run(
        &scenario,
        city,
        settings,
        sink,
        streamcity_core::CancellationToken::new(),
    )
    .await
    .unwrap();
    assert_eq!(summary.records, n as u64);
    n as f64 / started.elapsed().as_secs_f64()
}

/// 2025-12-25T10:30:00Z.
const START_MS: i64 = 1_766_658_600_000;

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
