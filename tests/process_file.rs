//! `streamcity process --input`: the processor over files of records, as a user testing
//! their data runs it. The window counts it publishes are checked against a count made
//! here from the input; the same input gives the same bytes out; bad lines cost nothing
//! else; `--expect` passes and fails with a diff.

#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Output;

use serde_json::Value;
use streamcity_testkit::stage::{Binary, stderr};

/// 2025-11-23T08:00:00Z.
const START: &str = "1763884800000";

fn bin() -> Binary {
    Binary::new(env!("CARGO_BIN_EXE_streamcity"))
}

fn dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!(
        "streamcity-process-file-{name}-{}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn lines(bytes: &[u8]) -> Vec<Value> {
    std::str::from_utf8(bytes)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

/// A stream from the twin's producers: about 20 simulated minutes of the default city
/// (vehicles reporting every 20 s, so that riders are most of it).
fn produced(d: &Path) -> PathBuf {
    let out = bin().run(&[
        "produce",
        "all",
        "--max",
        "60000",
        "--speed",
        "5000",
        "--start",
        START,
        "--seed",
        "11",
        "--vehicle-interval",
        "20",
    ]);
    assert!(out.status.success(), "produce: {}", stderr(&out));
    let path = d.join("input.jsonl");
    std::fs::write(&path, &out.stdout).unwrap();
    path
}

fn process(args: &[&str]) -> Output {
    let mut all = vec!["process"];
    all.extend_from_slice(args);
    bin().run(&all)
}

fn on<'a>(records: &'a [Value], topic: &'a str) -> impl Iterator<Item = &'a Value> + 'a {
    records.iter().filter(move |r| r["topic"] == topic)
}

/// Every 5-minute window (advancing by a minute) that holds a tap, with its count,
/// counted here from the taps themselves: `(stop, window start) -> taps`.
fn hopping_counts<'a>(taps: impl Iterator<Item = &'a Value>) -> BTreeMap<(String, i64), u64> {
    let mut counts = BTreeMap::new();
    for tap in taps {
        let stop = tap["value"]["stop_id"].as_str().unwrap().to_owned();
        let ts = tap["value"]["timestamp"].as_i64().unwrap();
        let last = ts.div_euclid(60_000) * 60_000;
        for start in (0..5).map(|k| last - k * 60_000) {
            *counts.entry((stop.clone(), start)).or_insert(0) += 1;
        }
    }
    counts
}

/// The published window counts, `(stop, window start) -> taps`; each a 5-minute window
/// keyed by its stop.
fn window_counts(out: &[Value]) -> BTreeMap<(String, i64), u64> {
    on(out, "stop_tap_counts")
        .map(|r| {
            let v = &r["value"];
            assert_eq!(
                v["window_end"].as_i64().unwrap() - v["window_start"].as_i64().unwrap(),
                300_000
            );
            assert_eq!(r["key"], v["stop_id"]);
            (
                (
                    v["stop_id"].as_str().unwrap().to_owned(),
                    v["window_start"].as_i64().unwrap(),
                ),
                v["taps"].as_u64().unwrap(),
            )
        })
        .collect()
}

#[test]
fn a_file_runs_to_its_end_the_same_way_every_time_with_every_window_counted() {
    let d = dir("counts");
    let input = produced(&d);
    let input = input.to_str().unwrap();
    let args = ["--input", input, "--emit-window-counts"];
    let (a, b) = (process(&args), process(&args));
    assert!(a.status.success(), "process: {}", stderr(&a));
    assert!(b.status.success(), "process: {}", stderr(&b));
    assert!(a.stdout == b.stdout, "two runs over the same input differ");
    assert!(stderr(&a).contains("every window closed"), "{}", stderr(&a));

    let records = lines(&std::fs::read(input).unwrap());
    let out = lines(&a.stdout);
    let taps: Vec<&Value> = on(&records, "rider_tapped_on").collect();
    assert!(taps.len() > 5_000, "{} taps", taps.len());
    // Taps too late for their windows are set aside, and not counted.
    let late: BTreeSet<String> = on(&out, "late_events")
        .map(|r| r["value"].to_string())
        .collect();
    let counted = taps
        .iter()
        .copied()
        .filter(|t| !late.contains(&t["value"].to_string()));
    let want = hopping_counts(counted);
    let got = window_counts(&out);
    assert!(
        late.len() * 100 < taps.len(),
        "{} of {} taps late",
        late.len(),
        taps.len()
    );
    assert_eq!(
        got.len(),
        on(&out, "stop_tap_counts").count(),
        "a window published twice"
    );
    assert_eq!(
        got.len(),
        want.len(),
        "windows published {} against {} holding taps",
        got.len(),
        want.len()
    );
    let wrong: Vec<_> = want
        .iter()
        .filter(|(k, n)| got.get(*k) != Some(n))
        .take(5)
        .collect();
    assert!(wrong.is_empty(), "window counts differ, e.g. {wrong:?}");
    // The live table follows every vehicle, alerts come out as on Kafka.
    assert!(on(&out, "live_vehicle_table").count() > 1_000);
    assert!(
        on(&out, "alerts").count() > 0,
        "no alert in 20 minutes of the city"
    );

    // The same records split over two files, by topic, merged by timestamp: the same
    // windows and the same alerts.
    let (mut vehicles, mut rest) = (String::new(), String::new());
    for line in std::fs::read_to_string(input).unwrap().lines() {
        let to = if line.starts_with("{\"topic\":\"vehicle_locations\"") {
            &mut vehicles
        } else {
            &mut rest
        };
        to.push_str(line);
        to.push('\n');
    }
    let (v, r) = (d.join("vehicles.jsonl"), d.join("rest.jsonl"));
    std::fs::write(&v, vehicles).unwrap();
    std::fs::write(&r, rest).unwrap();
    let split = process(&[
        "--input",
        r.to_str().unwrap(),
        "--input",
        v.to_str().unwrap(),
        "--emit-window-counts",
    ]);
    assert!(split.status.success(), "{}", stderr(&split));
    let split = lines(&split.stdout);
    let set = |records: &[Value], topic: &str| -> BTreeSet<String> {
        on(records, topic).map(|r| r.to_string()).collect()
    };
    assert_eq!(set(&split, "stop_tap_counts"), set(&out, "stop_tap_counts"));
    assert_eq!(set(&split, "alerts"), set(&out, "alerts"));
}

#[test]
fn lines_that_are_not_records_become_dead_letters_and_nothing_else_is_lost() {
    let d = dir("hostile");
    let tap = |stop: &str, ts: i64| {
        format!(
            "{{\"topic\":\"rider_tapped_on\",\"key\":\"{stop}\",\"timestamp\":{ts},\"value\":{{\"rider_id\":\"R{ts}\",\"stop_id\":\"{stop}\",\"timestamp\":{ts}}}}}\n"
        )
    };
    let t0: i64 = START.parse().unwrap();
    let mut text = String::new();
    let bad = [
        "not json at all\n".to_owned(),
        "[1, 2, 3]\n".to_owned(),
        "{\"topic\": \"rider_tapped_on\", \"key\": \"S0001\"}\n".to_owned(),
        "{\"topic\": 7, \"value\": {}}\n".to_owned(),
        format!(
            "{{\"topic\":\"rider_tapped_on\",\"value\":\"{}\"}}\n",
            "x".repeat(17 << 20)
        ),
        "\u{0}\u{1}\u{2}\n".to_owned(),
    ];
    for (i, b) in bad.iter().enumerate() {
        text += &tap("S0001", t0 + i as i64 * 1_000);
        text += b;
    }
    // Taps up to ten minutes on, and a record of a topic the processor does not read.
    for s in 0..600 {
        text += &tap("S0002", t0 + s * 1_000);
    }
    text += "{\"topic\":\"network\",\"key\":\"clock\",\"timestamp\":0,\"value\":{}}\n";
    text += "{\"topic\":\"rider_tapped_on\",\"key\":\"S0003\",\"timestamp\":1,\"value\":{\"stop_id\":\"S0003\"}}\n";
    let input = d.join("hostile.jsonl");
    std::fs::write(&input, text).unwrap();
    let out = process(&["--input", input.to_str().unwrap(), "--emit-window-counts"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!stderr(&out).contains("panicked"));
    let out = lines(&out.stdout);
    let letters: Vec<&Value> = on(&out, "dead_letters").collect();
    // Each bad line, by its line number; the record that is not a tap, by its reason.
    for (i, _) in bad.iter().enumerate() {
        let line = 2 * i as i64 + 2;
        assert!(
            letters.iter().any(|l| l["value"]["offset"] == line
                && l["value"]["error"]
                    .as_str()
                    .unwrap()
                    .contains("is not a record")),
            "no dead letter for line {line}: {letters:?}"
        );
    }
    assert_eq!(letters.len(), bad.len() + 1, "{letters:?}");
    assert!(
        letters
            .iter()
            .all(|l| l["value"]["payload"].as_str().unwrap().len() <= 1100)
    );
    // The good taps are all counted: the six of S0001 and the 600 of S0002.
    let counts = window_counts(&out);
    assert_eq!(
        counts.get(&("S0001".to_owned(), t0)),
        Some(&6),
        "{counts:?}"
    );
    let s2: u64 = counts
        .iter()
        .filter(|((s, start), _)| s == "S0002" && start % 300_000 == t0 % 300_000)
        .map(|(_, n)| n)
        .sum();
    assert_eq!(s2, 600, "{counts:?}");
    // A file that is not there is a clear error.
    let missing = process(&["--input", d.join("nothing.jsonl").to_str().unwrap()]);
    assert!(!missing.status.success());
    assert!(
        stderr(&missing).contains("opening --input"),
        "{}",
        stderr(&missing)
    );
}

#[test]
fn expect_passes_on_the_same_records_and_fails_with_a_diff_otherwise() {
    let d = dir("expect");
    let input = produced(&d);
    let input = input.to_str().unwrap();
    let run = process(&["--input", input, "--emit-window-counts"]);
    assert!(run.status.success(), "{}", stderr(&run));
    // The alerts and window counts, as a user would keep them for their test.
    let kept: Vec<String> = std::str::from_utf8(&run.stdout)
        .unwrap()
        .lines()
        .filter(|l| {
            l.starts_with("{\"topic\":\"alerts\"")
                || l.starts_with("{\"topic\":\"stop_tap_counts\"")
        })
        .map(str::to_owned)
        .collect();
    assert!(kept.len() > 100, "{} records kept", kept.len());
    let expected = d.join("expected.jsonl");
    std::fs::write(&expected, kept.join("\n") + "\n").unwrap();
    let compare = [
        "--input",
        input,
        "--emit-window-counts",
        "--expect",
        expected.to_str().unwrap(),
    ];
    let ok = process(&compare);
    assert!(ok.status.success(), "{}", stderr(&ok));
    assert!(ok.stdout.is_empty(), "nothing written when comparing");
    assert!(stderr(&ok).contains("matches"), "{}", stderr(&ok));

    // One count changed and one record left out: both show in the diff.
    let mut wrong = kept.clone();
    let i = wrong
        .iter()
        .position(|l| l.contains("stop_tap_counts"))
        .unwrap();
    let mut changed: Value = serde_json::from_str(&wrong[i]).unwrap();
    changed["value"]["taps"] = Value::from(changed["value"]["taps"].as_u64().unwrap() + 1000);
    wrong[i] = changed.to_string();
    let dropped = wrong.remove(i + 3);
    std::fs::write(&expected, wrong.join("\n") + "\n").unwrap();
    let bad = process(&compare);
    assert!(!bad.status.success(), "a wrong expectation passed");
    let text = stderr(&bad);
    assert!(text.contains("the output differs from"), "{text}");
    assert!(
        text.contains(&format!("First difference at output record {}", i + 1)),
        "{text}"
    );
    let shown = |sign: &str, line: &str| {
        let v: Value = serde_json::from_str(line).unwrap();
        text.lines().any(|l| {
            l.strip_prefix(sign)
                .is_some_and(|rest| serde_json::from_str::<Value>(rest).ok() == Some(v.clone()))
        })
    };
    assert!(
        shown("- ", &wrong[i]),
        "the changed count is not shown expected: {text}"
    );
    assert!(shown("+ ", &kept[i]), "the count got is not shown: {text}");
    assert!(
        shown("+ ", &dropped),
        "the record left out is not shown: {text}"
    );
    // Only the topics expected are compared: another topic alone expects nothing else.
    let late_only = d.join("late.jsonl");
    std::fs::write(&late_only, "").unwrap();
    let empty = process(&["--input", input, "--expect", late_only.to_str().unwrap()]);
    assert!(empty.status.success(), "{}", stderr(&empty));
}
