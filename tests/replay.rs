//! Replay on a real broker (tansu, from `scripts/test.sh`): a twin runs a simulated
//! hour on Kafka and archives it (`--archive`); the archive is replayed onto fresh
//! topics where a `process` stage of its own reads it; the alerts it raises and clears
//! are the live run's.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use streamcity_core::{Alert, AlertState, Bus, Topics, decode};
use streamcity_kafka::{KafkaBus, KafkaConfig};
use streamcity_testkit::broker::test_brokers as brokers;
use streamcity_testkit::stage::{Binary, unique};

/// Every alert record on `topics.alerts`, oldest first per partition.
async fn alerts(bus: &KafkaBus, topics: &Topics) -> Vec<Alert> {
    let mut out = Vec::new();
    for p in 0..bus.end_offsets(&topics.alerts).await.unwrap().len() as i32 {
        for d in bus.read_range(&topics.alerts, p, 0, None).await.unwrap() {
            out.push(decode::<Alert>(&d.record.payload).unwrap());
        }
    }
    out
}

/// What an operator sees of a run: each alert raised and cleared, by id.
fn transitions(alerts: &[Alert], until: i64) -> BTreeSet<(String, String)> {
    alerts
        .iter()
        .filter(|a| a.state != AlertState::Updated && a.timestamp < until)
        .map(|a| (a.alert_id.to_string(), streamcity_core::wire_name(&a.state)))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replayed_hour_raises_and_clears_the_live_runs_alerts() {
    let live = unique("live");
    let again = unique("again");
    let (live_topics, again_topics) = (Topics::with_prefix(&live), Topics::with_prefix(&again));
    let bus = KafkaBus::connect(KafkaConfig::new(brokers()))
        .await
        .unwrap();
    bus.ensure_topics(&live_topics).await.unwrap();
    bus.ensure_topics(&again_topics).await.unwrap();
    let bin =
        Binary::new(env!("CARGO_BIN_EXE_streamcity")).env("KAFKA_BOOTSTRAP_SERVERS", brokers());
    let dir = std::env::temp_dir().join(format!("{live}archive"));
    let _ = std::fs::remove_dir_all(&dir);
    let dir_arg = dir.to_str().unwrap().to_owned();

    // The live run: a busy simulated hour (the demo's incidents and crowds, at 30x for
    // two minutes), archived as it goes.
    let out = bin.run_within(
        &[
            "--bus",
            "kafka",
            "--topic-prefix",
            &live,
            "--demo",
            "--speed",
            "30",
            "--vehicles",
            "120",
            "--archive",
            &dir_arg,
            "--roll-minutes",
            "0.2",
            "--port",
            "0",
        ],
        Duration::from_secs(400),
    );
    assert!(
        out.status.success(),
        "the live run failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let live_alerts = alerts(&bus, &live_topics).await;
    // How far the live processor got before the twin stopped (each partition of its
    // table's newest row): it may trail the inputs. The comparison ends 5 minutes before, so that both runs
    // saw every record that decides an alert up to then.
    let processed = {
        // The least advanced of its partitions.
        let mut reached = i64::MAX;
        let table = &live_topics.live_vehicle_table;
        for p in 0..bus.end_offsets(table).await.unwrap().len() as i32 {
            let rows = bus.read_range(table, p, 0, None).await.unwrap();
            if let Some(last) = rows.iter().map(|d| d.record.timestamp).max() {
                reached = reached.min(last);
            }
        }
        assert!(
            reached < i64::MAX,
            "the live run's processor wrote no table"
        );
        reached
    };
    let until = processed - 5 * 60_000;
    let expected = transitions(&live_alerts, until);
    assert!(
        expected.len() >= 10,
        "the live run raised too few alerts to compare: {expected:?}"
    );

    // The replay, onto fresh topics, read by a processor of its own.
    let processor = bin.start(&["process", "--topic-prefix", &again, "--port", "0"]);
    let replay = bin.run_within(
        &[
            "replay",
            "--dir",
            &dir_arg,
            "--source-prefix",
            &live,
            "--topic-prefix",
            &again,
            "--speed",
            "30",
            "--port",
            "0",
        ],
        Duration::from_secs(400),
    );
    assert!(
        replay.status.success(),
        "the replay failed: {}",
        String::from_utf8_lossy(&replay.stderr)
    );
    let printed = String::from_utf8_lossy(&replay.stderr).into_owned();
    assert!(printed.contains("Replayed "), "{printed}");

    // Its alerts settle: the same transitions, up to the same moment.
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut got;
    loop {
        got = transitions(&alerts(&bus, &again_topics).await, until);
        if got == expected {
            break;
        }
        if Instant::now() > deadline {
            break;
        }
        std::thread::sleep(Duration::from_secs(2));
    }
    processor.stop();
    let missing: Vec<_> = expected.difference(&got).collect();
    let extra: Vec<_> = got.difference(&expected).collect();
    println!(
        "live: {} transitions up to {until} (the live processor reached {processed}); replay: {}; missing {missing:?}; extra {extra:?}",
        expected.len(),
        got.len()
    );
    assert!(
        missing.is_empty() && extra.is_empty(),
        "the replay's alerts differ from the live run's: missing {missing:?}, extra {extra:?}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
