//! The archive on a real broker (tansu, from `scripts/test.sh`), checked by an
//! independent reader (pyarrow, Apache Arrow's Parquet implementation): an archiver
//! killed with `kill -9` in the middle of its work and started again leaves every
//! record the broker holds in the Parquet files exactly once, typed, zstd-compressed,
//! in the folder of its topic, date and hour, with the values that were produced.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use streamcity_core::{Bus, Topics};
use streamcity_kafka::{KafkaBus, KafkaConfig};
use streamcity_testkit::broker::test_brokers as brokers;
use streamcity_testkit::stage::{Binary, unique};

/// The records on disk under `dir` (read with the archive's own reader): how many,
/// and how many different ones (nothing, if a file vanished while they were read).
fn archived(dir: &Path, topics: &Topics) -> (usize, usize) {
    let mut n = 0;
    let mut distinct = std::collections::HashSet::new();
    for topic in topics.all() {
        for file in streamcity_archive::layout::files(dir, topic).unwrap() {
            let fields = streamcity_archive::schema::fields(topics, topic);
            // A file removed meanwhile (replaced by the running archiver): count again.
            let Ok(records) = streamcity_archive::read::read_file(&file.path, topic, fields) else {
                return (0, 0);
            };
            for d in records {
                n += 1;
                distinct.insert((topic.to_string(), d.partition, d.offset));
            }
        }
    }
    (n, distinct.len())
}

fn parquet_files(dir: &Path) -> usize {
    fn walk(dir: &Path, n: &mut usize) {
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(&path, n);
            } else if path.extension().is_some_and(|e| e == "parquet") {
                *n += 1;
            }
        }
    }
    let mut n = 0;
    walk(dir, &mut n);
    n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_archiver_killed_mid_work_leaves_every_record_once_as_pyarrow_reads_it() {
    let prefix = unique("archive");
    let topics = Topics::with_prefix(&prefix);
    let bus = KafkaBus::connect(KafkaConfig::new(brokers()))
        .await
        .unwrap();
    bus.ensure_topics(&topics).await.unwrap();
    let bin = Binary::new(env!("CARGO_BIN_EXE_streamcity"))
        .env("KAFKA_BOOTSTRAP_SERVERS", brokers())
        .env("STREAMCITY_TOPIC_PREFIX", &prefix);

    // A stream on the broker: every producer, a few simulated minutes.
    let out = bin.run_within(
        &[
            "produce",
            "all",
            "--vehicles",
            "150",
            "--speed",
            "20",
            "--duration",
            "12",
            "--port",
            "0",
        ],
        Duration::from_secs(120),
    );
    assert!(
        out.status.success(),
        "produce failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // What the broker holds: every record of every partition, read back (its reported
    // end offsets can fall short of the records it has).
    let mut offsets: BTreeMap<String, BTreeMap<String, [i64; 2]>> = BTreeMap::new();
    let mut total = 0;
    for topic in topics.all() {
        let partitions = bus.end_offsets(topic).await.unwrap().len();
        let parts = offsets.entry(topic.to_string()).or_default();
        for p in 0..partitions as i32 {
            let records = bus.read_range(topic, p, 0, None).await.unwrap();
            for (i, d) in records.iter().enumerate() {
                assert_eq!(d.offset, i as i64, "{topic}/{p}: offsets with a gap");
            }
            parts.insert(p.to_string(), [0, records.len() as i64]);
            total += records.len();
        }
    }
    assert!(total > 20_000, "a stream of {total} records is too small");

    // A sample of what was produced, as the broker gives it.
    let mut samples = Vec::new();
    for topic in [
        &topics.vehicle_locations,
        &topics.rider_tapped_on,
        &topics.rider_tapped_off,
        &topics.city_incidents,
        &topics.traffic_incidents,
    ] {
        let ends = bus.end_offsets(topic).await.unwrap();
        for (p, &end) in ends.iter().enumerate().take(3) {
            if end == 0 {
                continue;
            }
            for d in bus
                .read_range(topic, p as i32, 0, Some(end.min(25)))
                .await
                .unwrap()
            {
                let value: Value = serde_json::from_slice(&d.record.payload).unwrap();
                samples.push(json!({
                    "topic": topic.to_string(),
                    "partition": d.partition,
                    "offset": d.offset,
                    "key": d.record.key_str(),
                    "timestamp": d.record.timestamp,
                    "value": value,
                }));
            }
        }
    }
    assert!(samples.len() > 50, "{} samples", samples.len());

    // Archived in small rolls; killed with SIGKILL once it has written a few files.
    let dir = std::env::temp_dir().join(format!("{prefix}archive"));
    let _ = std::fs::remove_dir_all(&dir);
    let dir_arg = dir.to_str().unwrap().to_owned();
    let args = [
        "archive",
        "--dir",
        &dir_arg,
        "--roll-records",
        "1500",
        "--roll-minutes",
        "0.05",
        "--port",
        "0",
    ];
    let first = bin.start(&args);
    first.wait_for("Archiving", Duration::from_secs(60));
    let deadline = Instant::now() + Duration::from_secs(60);
    while parquet_files(&dir) < 3 {
        assert!(
            Instant::now() < deadline,
            "no files within a minute: {}",
            first.printed()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    first.kill();
    let (at_kill, _) = archived(&dir, &topics);
    assert!(
        at_kill < total,
        "the archiver had finished ({at_kill} of {total}) before it was killed"
    );

    // Started again: it goes on from what it had committed, writing again what it had
    // written since.
    let second = bin.start(&args);
    second.wait_for("Archiving", Duration::from_secs(60));
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let (n, distinct) = archived(&dir, &topics);
        if n == total && distinct == total {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{n} of {total} records archived after the restart: {}",
            second.printed()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    let metrics = streamcity_testkit::stage::http_get(second.metrics_port(), "/metrics").1;
    second.stop();

    // Read by pyarrow: every record once, typed, compressed, in its hour's folder.
    let expected = dir.join("expected.json");
    std::fs::write(
        &expected,
        serde_json::to_vec(&json!({"topics": offsets, "samples": samples})).unwrap(),
    )
    .unwrap();
    let python = std::env::var("STREAMCITY_PYTHON").unwrap_or_else(|_| "python3".into());
    let out = Command::new(&python)
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/support/check_archive.py"
        ))
        .arg(&dir)
        .arg(&expected)
        .output()
        .unwrap_or_else(|e| panic!("the check needs Python with pyarrow ({python}): {e}"));
    assert!(
        out.status.success(),
        "pyarrow could not read the archive: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    println!(
        "{total} records; {at_kill} on disk at the kill; pyarrow: {report}\n{}",
        metrics
            .lines()
            .filter(|l| l.starts_with("streamcity_archive"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert_eq!(report["problems"], json!([]), "{report}");
    let rows: u64 = report["rows"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_u64().unwrap())
        .sum();
    assert_eq!(rows as usize, total, "{report}");
    assert_eq!(
        report["samples_checked"].as_u64().unwrap() as usize,
        samples.len()
    );
    let _ = std::fs::remove_dir_all(&dir);
}
