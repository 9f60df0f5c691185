//! Golden fixtures for operator semantics: `tests/golden/<group>/<case>/input.jsonl`
//! is fed in, and what comes out must equal `expected.jsonl` line for line.
//!
//! - `windows/*`: `spec.json` is a window definition; input lines are `{"key", "ts"}`
//!   records and `{"watermark"}` advances; output lines are window results and
//!   `{"late": {"key", "ts"}}`.
//! - `detectors/*`: optional `config.json` (processor settings over the defaults);
//!   input lines are records `{"topic", "key", "partition", "clock", "value"}` (or
//!   `"raw"` text for malformed payloads) and `{"advance": clock}`; output lines are the
//!   published records, `{"topic", "key", "value"}`, except the live table's rows.
//!
//! To regenerate after an intended change: `UPDATE_GOLDEN=1 cargo test -p
//! streamcity-processor --test golden`, then review the diff.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use serde_json::{Value, json};
use streamcity_core::{Record, Topics};
use streamcity_network::{SyntheticConfig, synthetic};
use streamcity_processor::window::{Admission, WindowSpec, WindowedCount};
use streamcity_processor::{Processor, ProcessorConfig};

fn cases(group: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(group);
    let mut cases: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    cases.sort();
    assert!(!cases.is_empty(), "no cases in {}", dir.display());
    cases
}

fn read_lines(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{}: {e}: {l}", path.display())))
        .collect()
}

fn compare(case: &Path, got: Vec<Value>) {
    let path = case.join("expected.jsonl");
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        let text: String = got
            .iter()
            .map(|v| serde_json::to_string(v).unwrap() + "\n")
            .collect();
        std::fs::write(&path, text).unwrap();
    }
    let expected = read_lines(&path);
    for (i, (g, e)) in got.iter().zip(&expected).enumerate() {
        assert_eq!(g, e, "{}: output line {} differs", case.display(), i + 1);
    }
    assert_eq!(
        got.len(),
        expected.len(),
        "{}: {} lines out, {} expected",
        case.display(),
        got.len(),
        expected.len()
    );
}

#[test]
fn window_fixtures() {
    for case in cases("windows") {
        let spec: WindowSpec =
            serde_json::from_str(&std::fs::read_to_string(case.join("spec.json")).unwrap())
                .unwrap();
        spec.validate().unwrap();
        let mut w: WindowedCount<String> = WindowedCount::new(spec);
        let mut watermark = i64::MIN;
        let mut got = Vec::new();
        for line in read_lines(&case.join("input.jsonl")) {
            let mut results = Vec::new();
            if let Some(wm) = line["watermark"].as_i64() {
                watermark = watermark.max(wm);
                w.close_until(watermark, &mut results);
            } else {
                let key = line["key"].as_str().unwrap().to_owned();
                let ts = line["ts"].as_i64().unwrap();
                if w.add(&key, ts, watermark, &mut results) == Admission::Late {
                    got.push(json!({ "late": { "key": key, "ts": ts } }));
                }
            }
            got.extend(results.iter().map(|r| serde_json::to_value(r).unwrap()));
        }
        compare(&case, got);
    }
}

#[test]
fn detector_fixtures() {
    let topics = Topics::default();
    let network = Arc::new(synthetic::generate(SyntheticConfig::default()));
    for case in cases("detectors") {
        let config: ProcessorConfig = match std::fs::read_to_string(case.join("config.json")) {
            Ok(text) => serde_json::from_str(&text).unwrap(),
            Err(_) => ProcessorConfig::default(),
        };
        config.validate().unwrap();
        // Alerts name and place stops after the default city's network.
        let mut core = Processor::new(topics.clone(), config).with_network(Arc::clone(&network));
        let mut out = Vec::new();
        for line in read_lines(&case.join("input.jsonl")) {
            if let Some(clock) = line["advance"].as_i64() {
                core.advance(clock, &mut out);
                continue;
            }
            let topic = topics
                .all()
                .into_iter()
                .find(|t| ***t == *line["topic"].as_str().unwrap())
                .unwrap();
            let payload = match line["raw"].as_str() {
                Some(raw) => Bytes::copy_from_slice(raw.as_bytes()),
                None => Bytes::from(serde_json::to_vec(&line["value"]).unwrap()),
            };
            let clock = line["clock"].as_i64().unwrap();
            let ts = line["value"]["timestamp"].as_i64().unwrap_or(clock);
            let record = Record::new(topic, line["key"].as_str().unwrap().to_owned(), payload, ts);
            core.on_record(
                &record,
                line["partition"].as_i64().unwrap_or(0) as i32,
                clock,
                &mut out,
            );
            core.advance(clock, &mut out);
        }
        let got: Vec<Value> = out
            .iter()
            .filter(|r| r.topic != topics.live_vehicle_table)
            .map(|r| {
                let value = serde_json::from_slice(&r.payload).unwrap_or(Value::Null);
                json!({ "topic": &*r.topic, "key": r.key_str(), "value": value })
            })
            .collect();
        compare(&case, got);
    }
}
