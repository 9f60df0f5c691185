//! The stages on a real Kafka-protocol broker: tansu, started by `scripts/test.sh`
//! on a free loopback port and named in `STREAMCITY_TEST_BROKERS`. Without it these
//! tests fail, saying how to run them; they never skip.

#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Output};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use serde_json::Value;
use streamcity_core::{Bus, Record, StartFrom, Subscribe, Subscription, Topics};
use streamcity_kafka::{KafkaBus, KafkaConfig};
use streamcity_testkit::broker::test_brokers as brokers;
use streamcity_testkit::stage::{
    Binary, Running, dashboard_port, finish, sorted_lines as rows, stderr, stop, stop_collect,
    unique, without_colours,
};
use streamcity_testkit::twin::live_vehicles;

/// The binary on the test broker, with topics behind `prefix`.
fn bin(prefix: &str) -> Binary {
    Binary::new(env!("CARGO_BIN_EXE_streamcity"))
        .env("KAFKA_BOOTSTRAP_SERVERS", brokers())
        .env("STREAMCITY_TOPIC_PREFIX", prefix)
}

fn streamcity(args: &[&str], prefix: &str) -> Output {
    bin(prefix).run(args)
}

fn spawn(args: &[&str], prefix: &str) -> Child {
    bin(prefix).spawn(args)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_round_trip_through_the_broker_with_keys_and_partitions() {
    let topics = Topics::with_prefix(&unique("rt"));
    let bus = KafkaBus::connect(KafkaConfig::new(brokers()))
        .await
        .unwrap();
    bus.ensure_topics(&topics).await.unwrap();
    let t = Arc::clone(&topics.vehicle_locations);
    for n in 0..600u64 {
        let key = format!("V{}", n % 6);
        bus.publish(Record::new(
            &t,
            key,
            Bytes::from(format!("{{\"n\":{n}}}")),
            1_763_884_800_000 + n as i64,
        ))
        .await
        .unwrap();
    }
    bus.flush().await.unwrap();
    assert_eq!(
        bus.stats()
            .delivered
            .load(std::sync::atomic::Ordering::Relaxed),
        600
    );
    let mut sub = bus
        .subscribe(Subscribe::new(topics.group("reader"), &[&t]).from(StartFrom::Earliest))
        .await
        .unwrap();
    let mut got = Vec::new();
    while got.len() < 600 {
        tokio::time::timeout(Duration::from_secs(30), sub.recv_many(&mut got, 1000))
            .await
            .expect("records within 30 s")
            .unwrap();
    }
    let mut per_key: HashMap<Bytes, (Vec<i64>, std::collections::HashSet<i32>)> = HashMap::new();
    for d in &got {
        let e = per_key.entry(d.record.key.clone()).or_default();
        e.0.push(d.record.timestamp);
        e.1.insert(d.partition);
    }
    assert_eq!(per_key.len(), 6);
    for (key, (times, partitions)) in per_key {
        assert_eq!(times.len(), 100);
        assert!(
            times.windows(2).all(|w| w[0] < w[1]),
            "order broken for {key:?}"
        );
        assert_eq!(partitions.len(), 1);
    }
}

#[test]
fn two_processors_in_one_group_give_what_one_gives() {
    // The same city on two sets of topics: one processor on the first, two on the
    // second, in one consumer group splitting the partitions. The morning peak, so
    // that lines bunch and gap: those alerts need every vehicle of a line in one
    // instance, which partitioning the reports by line gives.
    let (one, two) = (unique("one"), unique("two"));
    let config = std::env::temp_dir().join(format!("{one}processor.toml"));
    // No lost-contact alarms for the fleet going quiet when the producers finish; a
    // line bunched or gapped is alerted at once (in a few simulated minutes, an
    // operator's five minutes of persistence would leave little to compare).
    std::fs::write(
        &config,
        "[breakdown]\nsilent_ms = 86400000\n[headway]\npersist_ms = 0\nclear_after_ms = 0\n",
    )
    .unwrap();
    let config = config.to_str().unwrap().to_owned();
    let monday_peak = "1763969400000";
    let run = [
        "process",
        "--start",
        monday_peak,
        "--speed",
        "20",
        "--processor-config",
        &config,
    ];
    // The processors join first, so the group has settled on a split of the
    // partitions before the stream arrives: they wait for the network, which a
    // one-record run publishes, then join their groups.
    let single = bin(&one).start(&run);
    let a = bin(&two).start(&run);
    let b = bin(&two).start(&run);
    for prefix in [&one, &two] {
        let first = streamcity(
            &[
                "produce",
                "all",
                "--max",
                "1",
                "--speed",
                "20",
                "--start",
                monday_peak,
            ],
            prefix,
        );
        assert!(first.status.success(), "{}", stderr(&first));
    }
    for p in [&single, &a, &b] {
        settled(p);
    }
    let produce = [
        "produce",
        "all",
        "--max",
        "60000",
        "--speed",
        "20",
        "--start",
        monday_peak,
    ];
    let producers = [spawn(&produce, &one), spawn(&produce, &two)];
    for mut p in producers {
        let status = p.wait().unwrap();
        let mut err = String::new();
        std::io::Read::read_to_string(&mut p.stderr.take().unwrap(), &mut err).unwrap();
        assert!(status.success(), "{err}");
    }
    // Every record is in: the windows close as the clock passes them.
    std::thread::sleep(Duration::from_secs(3));
    let (e1, ea, eb) = (single.stop(), a.stop(), b.stop());
    let [r1, r2, a1, a2] = read_all([
        (&one, "live_vehicle_table"),
        (&two, "live_vehicle_table"),
        (&one, "alerts"),
        (&two, "alerts"),
    ]);
    // Most records are vehicle reports, each a row.
    assert!(r1.len() > 30_000, "{} rows\n{e1}", r1.len());
    assert!(r1 == r2, "two instances published other rows than one");
    // The alerts themselves, whole: ids, states, messages (with likely causes), evidence.
    let alerts = |records: &[String]| {
        let mut all: Vec<(String, String, String)> = records
            .iter()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .map(|a| {
                let v = &a["value"];
                let text = |k: &str| v[k].as_str().unwrap_or_default().to_owned();
                (text("alert_id"), text("state"), v.to_string())
            })
            .collect();
        all.sort();
        all
    };
    let (alerts1, alerts2) = (alerts(&a1), alerts(&a2));
    let lines = |alerts: &[(String, String, String)]| {
        alerts
            .iter()
            .filter(|(id, ..)| id.starts_with("bunching:") || id.starts_with("gapping:"))
            .count()
    };
    assert!(
        lines(&alerts1) >= 2,
        "no line alerts to compare: {alerts1:?}\n{e1}"
    );
    if alerts1 != alerts2 {
        let only = |x: &[(String, String, String)], y: &[(String, String, String)]| {
            x.iter()
                .filter(|a| !y.contains(a))
                .map(|a| format!("{} {}", a.0, a.1))
                .collect::<Vec<_>>()
        };
        panic!(
            "two instances raised other alerts than one\nonly by one: {:?}\nonly by two: {:?}\n--- one:\n{e1}\n--- a:\n{ea}\n--- b:\n{eb}",
            only(&alerts1, &alerts2),
            only(&alerts2, &alerts1)
        );
    }
    // Both instances did part of the work.
    let all = processed(&e1);
    for e in [&ea, &eb] {
        let part = processed(e);
        assert!(part > 0 && part < all, "{e}");
    }
    assert_eq!(processed(&ea) + processed(&eb), all);
}

/// Waits (a minute at most) until `process` holds some input partitions, and its
/// group has had 3 s to settle.
fn settled(process: &Running) {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while !process
        .printed()
        .lines()
        .any(|l| l.contains("Partitions assigned") && !l.ends_with("partitions=0"))
    {
        assert!(
            std::time::Instant::now() < deadline,
            "no partitions assigned within a minute:\n{}",
            process.printed()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_secs(3));
}

/// The count in a `process` stage's "Done: processed N ..." line.
fn processed(stderr: &str) -> u64 {
    stderr
        .lines()
        .find_map(|l| {
            l.strip_prefix("Done: processed ")?
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        })
        .unwrap_or_else(|| panic!("no Done line in {stderr}"))
}

/// Every record of each `(prefix, topic)` from the beginning, as `tail` prints them
/// without the prefix, sorted: read until none has come for a few seconds.
fn read_all<const N: usize>(reads: [(&str, &str); N]) -> [Vec<String>; N] {
    use std::sync::atomic::{AtomicU64, Ordering};
    let seen = Arc::new(AtomicU64::new(0));
    let tails = reads.map(|(prefix, topic)| {
        let mut child = bin("").spawn(&["tail", &format!("{prefix}{topic}"), "--from-beginning"]);
        let stdout = child.stdout.take().unwrap();
        let (prefix, seen) = (prefix.to_owned(), Arc::clone(&seen));
        let reader = std::thread::spawn(move || {
            let mut lines = Vec::new();
            for line in BufReader::new(stdout).lines() {
                lines.push(line.unwrap().replacen(&prefix, "", 1));
                seen.fetch_add(1, Ordering::Relaxed);
            }
            lines.sort();
            lines
        });
        (child, reader)
    });
    let mut last = u64::MAX;
    for _ in 0..60 {
        std::thread::sleep(Duration::from_secs(3));
        let now = seen.load(Ordering::Relaxed);
        if now == last {
            break;
        }
        last = now;
    }
    tails.map(|(child, reader)| {
        stop_collect(child);
        reader.join().unwrap()
    })
}

#[test]
fn a_rebalance_hands_vehicles_over_without_false_lost_contact_alerts() {
    let prefix = unique("rebalance");
    let config = std::env::temp_dir().join(format!("{prefix}processor.toml"));
    // Lost contact after 5 s, so that a processor still holding vehicles it no longer
    // reads would raise the alarm for them within the test.
    std::fs::write(&config, "[breakdown]\nsilent_ms = 5000\n").unwrap();
    let config = config.to_str().unwrap().to_owned();
    let producers = spawn(&["produce", "vehicles", "--duration", "25"], &prefix);
    let first = spawn(&["process", "--processor-config", &config], &prefix);
    std::thread::sleep(Duration::from_secs(6));
    // A second instance joins: the group moves about half of the partitions to it.
    let second = spawn(&["process", "--processor-config", &config], &prefix);
    std::thread::sleep(Duration::from_secs(15));
    let (e1, e2) = (stop(first), stop(second));
    stop(producers);
    let tail = bin("").spawn(&["tail", &format!("{prefix}alerts"), "--from-beginning"]);
    std::thread::sleep(Duration::from_secs(5));
    let raised_silent = {
        let text = stop_collect(tail);
        text.lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|a| {
                a["value"]["state"] == "raised" && a["value"]["evidence"]["reason"] == "silent"
            })
            .count()
    };
    // Genuine GPS dropouts are rare (a few per hour across the fleet); false ones would
    // be about half the fleet.
    assert!(
        raised_silent < 5,
        "{raised_silent} lost-contact alerts\n{e1}\n{e2}"
    );
    // The second instance restored the vehicles of the partitions it was given from
    // the live table.
    let restored: u64 = without_colours(&e2)
        .lines()
        .filter(|l| l.contains("Restored the vehicles of an assigned partition"))
        .filter_map(|l| {
            let after = &l[l.rfind("restored")? + "restored".len()..];
            let digits: String = after
                .chars()
                .skip_while(|c| !c.is_ascii_digit())
                .take_while(char::is_ascii_digit)
                .collect();
            digits.parse::<u64>().ok()
        })
        .sum();
    assert!(restored >= 50, "restored {restored} vehicles\n{e2}");
    std::fs::remove_file(&config).unwrap();
}

/// A service of docker-compose.yml: its `command` (a JSON-style array) and its
/// `environment` (`- KEY=VALUE` lines).
fn compose_service(name: &str) -> (Vec<String>, Vec<(String, String)>) {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docker-compose.yml"))
        .unwrap();
    let mut inside = false;
    let mut in_env = false;
    let (mut command, mut env) = (None, Vec::new());
    for line in text.lines() {
        if line.starts_with("  ") && !line.starts_with("   ") && line.trim_end().ends_with(':') {
            inside = line.trim() == format!("{name}:");
            in_env = false;
            continue;
        }
        if !inside {
            continue;
        }
        let t = line.trim();
        if let Some(array) = t.strip_prefix("command:") {
            command = Some(serde_json::from_str::<Vec<String>>(array.trim()).unwrap());
        }
        if t.ends_with(':') {
            in_env = t == "environment:";
        } else if in_env
            && let Some((k, v)) = t.strip_prefix("- ").and_then(|kv| kv.split_once('='))
        {
            env.push((k.to_owned(), v.to_owned()));
        }
    }
    (
        command.unwrap_or_else(|| panic!("no command for {name} in docker-compose.yml")),
        env,
    )
}

/// Starts a compose service as a process: its command and environment, with the test
/// broker for `kafka:9092`, a free port for 8080, and local paths for volumes.
fn start_service(name: &str, prefix: &str, state: &std::path::Path) -> Child {
    let (mut command, env) = compose_service(name);
    for arg in command.iter_mut() {
        match arg.as_str() {
            "8080" => *arg = "0".into(),
            "0.0.0.0" => *arg = "127.0.0.1".into(),
            _ => {}
        }
    }
    let mut c = Binary::new(env!("CARGO_BIN_EXE_streamcity"))
        .env("STREAMCITY_TOPIC_PREFIX", prefix)
        .command(&command.iter().map(String::as_str).collect::<Vec<_>>());
    c.stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    for (k, v) in env {
        let v = match k.as_str() {
            "KAFKA_BOOTSTRAP_SERVERS" => brokers(),
            "STREAMCITY_CHECKPOINT" => state.join("processor.json").display().to_string(),
            "RUST_LOG" => "warn".into(),
            _ => v,
        };
        c.env(k, v);
    }
    c.spawn().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_all_in_one_twin_runs_on_kafka_with_bus_kafka() {
    let prefix = unique("allinone");
    let mut twin = spawn(&["--bus", "kafka", "--port", "0"], &prefix);
    let (port, mut printed) = dashboard_port(&mut twin);
    let vehicles = live_vehicles(&port).await;
    // The records went through Kafka: they are there to read back.
    let out = streamcity(
        &[
            "tail",
            &format!("{prefix}vehicle_locations"),
            "--from-beginning",
            "-n",
            "100",
        ],
        &prefix,
    );
    let err = stop(twin);
    assert!(vehicles >= 200, "only {vehicles} vehicles\n{err}");
    assert_eq!(rows(&out).len(), 100, "{}", stderr(&out));
    // On stopping, it says what it published to which topic.
    let mut summary = String::new();
    std::io::Read::read_to_string(&mut printed, &mut summary).unwrap();
    let published: u64 = summary
        .lines()
        .find_map(|l| l.trim().strip_prefix(&format!("{prefix}vehicle_locations")))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no count for vehicle_locations in {summary}"));
    assert!(published >= 200, "{summary}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_compose_stack_as_processes_reaches_a_live_websocket() {
    // The services of docker-compose.yml, with their commands and environment.
    let prefix = unique("compose");
    let state = std::env::temp_dir().join(&prefix);
    std::fs::create_dir_all(&state).unwrap();
    let producers = start_service("producers", &prefix, &state);
    let processor = start_service("processor", &prefix, &state);
    let mut dashboard = start_service("dashboard", &prefix, &state);
    let (port, _printed) = dashboard_port(&mut dashboard);
    let vehicles = live_vehicles(&port).await;
    assert!(
        vehicles >= 200,
        "only {vehicles} vehicles reached /ws through Kafka"
    );
    for child in [producers, processor, dashboard] {
        stop(child);
    }
    // The processor checkpointed its state where the compose volume would be.
    assert!(state.join("processor.json").exists());
    std::fs::remove_dir_all(&state).unwrap();
}

/// A tansu broker of the test's own, on SQLite storage in `dir` so that its records
/// survive a restart; `tansu` is the binary `scripts/test.sh` installed.
fn start_tansu(dir: &std::path::Path, port: u16) -> Child {
    let tansu = std::env::var("STREAMCITY_TANSU").expect(
        "STREAMCITY_TANSU is not set: the restart test starts a broker of its own; run it with scripts/test.sh, which installs tansu",
    );
    streamcity_testkit::tansu::start(&tansu, dir, port, "sqlite://restart.db")
}

#[test]
fn a_broker_restart_in_the_middle_of_a_stream_loses_nothing() {
    let dir = std::env::temp_dir().join(unique("restart"));
    std::fs::create_dir_all(&dir).unwrap();
    let port = streamcity_testkit::stage::free_port();
    let mut broker = start_tansu(&dir, port);
    let own = Binary::new(env!("CARGO_BIN_EXE_streamcity"))
        .env("KAFKA_BOOTSTRAP_SERVERS", format!("127.0.0.1:{port}"))
        .env("STREAMCITY_TOPIC_PREFIX", "")
        .env("RUST_LOG", "error");
    // 3,600 records at 240 a second: 15 s of stream, with the broker down in the middle.
    let total = 3600;
    let mut producer = own.spawn(&[
        "produce",
        "vehicles",
        "--max",
        &total.to_string(),
        "--port",
        "0",
    ]);
    std::thread::sleep(Duration::from_secs(3));
    // A consumer reading through the restart.
    // Its stderr names any partition re-read or moved, should the assertion fail.
    let mut reader = own
        .clone()
        .env("RUST_LOG", "error,streamcity_kafka=info")
        .spawn(&[
            "tail",
            "vehicle_locations",
            "--from-beginning",
            "-n",
            &total.to_string(),
        ]);
    std::thread::sleep(Duration::from_secs(3));
    // The broker dies without warning and comes back on the same port and storage.
    broker.kill().unwrap();
    broker.wait().unwrap();
    std::thread::sleep(Duration::from_secs(2));
    let mut broker = start_tansu(&dir, port);
    let produced = finish(&mut producer, Duration::from_secs(120), "the producer");
    let report = String::from_utf8_lossy(&produced.stderr).into_owned();
    assert!(produced.status.success(), "{report}");
    let done = report
        .lines()
        .find(|l| l.starts_with("Done"))
        .unwrap_or_else(|| panic!("no final report:\n{report}"));
    assert!(
        done.contains(&format!("Delivered {total} | Failed 0 | Pending 0")),
        "{done}"
    );
    // The reader ends by itself once it has every record; give it a minute.
    let read = finish(&mut reader, Duration::from_secs(60), "the reader");
    let lines: Vec<Value> = String::from_utf8(read.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    // Every delivered record once: as many lines as records, all distinct events.
    let events: std::collections::HashSet<String> =
        lines.iter().map(|l| l["value"].to_string()).collect();
    assert_eq!(
        (lines.len(), events.len()),
        (total, total),
        "the reader across the restart missed or repeated records\n{}",
        String::from_utf8_lossy(&read.stderr)
    );
    broker.kill().unwrap();
    broker.wait().unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Runs the whole twin on `bus` for `events` records of simulated city from a fixed
/// start at 10× speed, and returns every alert record it published as
/// `(alert_id, state)`, sorted.
async fn alerts_of_a_run<B: streamcity::TwinBus>(
    bus: B,
    topics: Topics,
    events: u64,
) -> Vec<(String, String)> {
    let start_ms = 1_763_969_400_000; // a Monday, 07:30 UTC: the morning peak
    let config = streamcity::EmbeddedConfig {
        addr: std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
        sim: streamcity_producers::SimConfig {
            start_ms,
            seed: 7,
            // A crowd, so that surges are among the alerts.
            crowds: vec![streamcity_producers::sim::CrowdEvent {
                stop_id: "S0042".into(),
                start_ms: start_ms + 30_000,
                duration_ms: 120_000,
                riders: 400,
            }],
            ..streamcity_producers::SimConfig::default()
        },
        speed: 10.0,
        topics: topics.clone(),
        limits: streamcity_producers::runner::Limits {
            max_events: Some(events),
            duration: None,
        },
        // Every condition alerted at once, so that a few simulated minutes give
        // enough alerts to compare.
        processor: eager_alerts(),
        ..streamcity::EmbeddedConfig::default()
    };
    // Read the alerts topic from the start, alongside the twin.
    let mut sub = bus
        .subscribe(
            Subscribe::new(topics.group("alert-reader"), &[&topics.alerts])
                .from(StartFrom::Earliest),
        )
        .await
        .unwrap();
    let reader = tokio::spawn(async move {
        let mut seen = Vec::new();
        let mut batch = Vec::new();
        while let Ok(Ok(n)) =
            tokio::time::timeout(Duration::from_secs(20), sub.recv_many(&mut batch, 256)).await
        {
            if n == 0 {
                break;
            }
            for d in batch.drain(..) {
                let a: Value = serde_json::from_slice(&d.record.payload).unwrap();
                if a["alert_id"] == "end" {
                    return seen;
                }
                seen.push((
                    a["alert_id"].as_str().unwrap().to_owned(),
                    a["state"].as_str().unwrap().to_owned(),
                ));
            }
        }
        seen
    });
    let mut twin = streamcity::Embedded::start_on(config, bus.clone())
        .await
        .unwrap();
    twin.wait().await.unwrap();
    // Every record of the processor's inputs in, then a simulated 10 s for the windows
    // to close, then stop.
    let inputs = streamcity_processor::inputs(&topics);
    let published: u64 = twin
        .bus
        .topic_stats()
        .iter()
        .filter(|t| inputs.contains(&&t.topic))
        .map(|t| t.published)
        .sum();
    for _ in 0..300 {
        if twin.processor.counts().records_in >= published {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(twin.processor.counts().records_in, published);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let summary = twin.shutdown().await.unwrap();
    // A last record marks the end for the reader.
    bus.publish(Record::new(
        &topics.alerts,
        Bytes::from_static(b"end"),
        Bytes::from_static(br#"{"alert_id":"end"}"#),
        0,
    ))
    .await
    .unwrap();
    bus.flush().await.unwrap();
    let mut seen = reader.await.unwrap();
    assert_eq!(
        seen.iter().filter(|(_, s)| s == "raised").count() as u64,
        summary.alerts_raised
    );
    seen.sort();
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pipeline_through_kafka_raises_the_alerts_the_embedded_run_raises() {
    let events = 60_000;
    let embedded = alerts_of_a_run(
        streamcity_core::MemoryBus::default(),
        Topics::default(),
        events,
    )
    .await;
    let topics = Topics::with_prefix(&unique("same"));
    let kafka = KafkaBus::connect(KafkaConfig::new(brokers()))
        .await
        .unwrap();
    kafka.ensure_topics(&topics).await.unwrap();
    let through_kafka = alerts_of_a_run(kafka, topics, events).await;
    let surges = embedded
        .iter()
        .filter(|(id, _)| id.starts_with("surge"))
        .count();
    assert!(surges > 0, "no surge in {embedded:?}");
    assert!(
        embedded.len() >= 5,
        "too few alerts to compare: {embedded:?}"
    );
    eprintln!("{} alert records the same both ways", embedded.len());
    assert_eq!(embedded, through_kafka);
}

/// Processor settings raising every condition at once: no persistence, no grouping
/// threshold (what is compared is the same either way).
fn eager_alerts() -> streamcity_processor::ProcessorConfig {
    let mut c = streamcity_processor::ProcessorConfig::default();
    c.headway.persist_ms = 0;
    c.headway.clear_after_ms = 0;
    c.delay.group_min_vehicles = 1;
    c.delay.clear_after_ms = 0;
    c.crowding.group_min_vehicles = 1;
    c.crowding.clear_after_ms = 0;
    c
}
