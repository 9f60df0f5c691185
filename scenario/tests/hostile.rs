//! Hostile scenario files: thousands of mutations of the shipped scenarios and some
//! crafted extremes. Each is refused with an error or runs; none panics, none hangs.

use std::collections::HashMap;

use rand::{Rng as _, SeedableRng as _};
use rand_chacha::ChaCha8Rng;
use streamcity_network::{SyntheticConfig, synthetic};
use streamcity_scenario::{Engine, Pace, Scenario, shipped};

/// Parses `text` and, when it is a scenario, runs a few hundred of its events.
fn try_one(text: &str, network: &streamcity_network::Network) -> Result<usize, String> {
    let scenario = Scenario::parse(text, "hostile.toml").map_err(|e| e.to_string())?;
    let mut engine = Engine::new(
        &scenario,
        network,
        1,
        1_766_658_600_000,
        &Pace::default(),
        &HashMap::new(),
    );
    let mut records = 0;
    // 200 moments or 2,000 records, whichever comes first.
    for _ in 0..200 {
        if engine.next_ms() == i64::MAX || records >= 2_000 {
            break;
        }
        engine.step(&mut |m| {
            assert!(!m.topic.is_empty());
            serde_json::from_slice::<serde_json::Value>(m.value).expect("the value is JSON");
            records += 1;
        });
    }
    Ok(records)
}

fn mutate(text: &str, rng: &mut ChaCha8Rng) -> String {
    const TOKENS: [&str; 16] = [
        "1e308",
        "-1e308",
        "0",
        "-1",
        "9223372036854775807",
        "-9223372036854775808",
        "nan",
        "inf",
        "\"\"",
        "[]",
        "{}",
        "{ ref = \"x\" }",
        "[1, 2, 3]",
        "0.0",
        "{ list = { int = [1, 2] }, len = 10000 }",
        "\"{:020}\"",
    ];
    let mut out = text.to_owned();
    for _ in 0..rng.random_range(1..4) {
        let at = rng.random_range(0..out.len().max(1));
        let at = (0..=at)
            .rev()
            .find(|k| out.is_char_boundary(*k))
            .unwrap_or(0);
        match rng.random_range(0..4) {
            // Replace a number with an extreme.
            0 => {
                if let Some(start) = out[at..].find(|c: char| c.is_ascii_digit()).map(|k| k + at) {
                    let end = out[start..]
                        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
                        .map_or(out.len(), |k| k + start);
                    out.replace_range(start..end, TOKENS[rng.random_range(0..TOKENS.len())]);
                }
            }
            // Cut a piece out.
            1 => {
                let end = (at + rng.random_range(1..40)).min(out.len());
                let end = (end..=out.len())
                    .find(|k| out.is_char_boundary(*k))
                    .unwrap_or(out.len());
                out.replace_range(at..end, "");
            }
            // Insert a token.
            2 => out.insert_str(at, TOKENS[rng.random_range(0..TOKENS.len())]),
            // Duplicate a line.
            _ => {
                let lines: Vec<&str> = out.lines().collect();
                let k = rng.random_range(0..lines.len().max(1));
                let mut copy: Vec<String> = lines.iter().map(|l| (*l).to_owned()).collect();
                if let Some(line) = lines.get(k) {
                    copy.insert(k, (*line).to_owned());
                }
                out = copy.join("\n");
            }
        }
    }
    out
}

#[test]
fn mutated_scenarios_are_refused_or_run_never_panic() {
    let network = synthetic::generate(SyntheticConfig::default());
    let mut rng = ChaCha8Rng::seed_from_u64(19);
    let (mut refused, mut ran) = (0, 0);
    for name in shipped::NAMES {
        let text = shipped::text(name).unwrap();
        for _ in 0..400 {
            let mutated = mutate(text, &mut rng);
            let result = std::panic::catch_unwind(|| try_one(&mutated, &network));
            match result {
                Ok(Ok(_)) => ran += 1,
                Ok(Err(e)) => {
                    assert!(
                        e.starts_with("hostile.toml"),
                        "an error that names no file: {e}"
                    );
                    refused += 1;
                }
                Err(_) => panic!("a mutation of {name} panicked:\n{mutated}"),
            }
        }
    }
    assert!(refused > 100 && ran > 100, "{refused} refused, {ran} ran");
}

#[test]
fn extremes_are_refused_or_bounded() {
    let network = synthetic::generate(SyntheticConfig::default());
    let head = "name = \"x\"\n[[streams]]\nname = \"s\"\n";
    let record = "[[streams.events]]\n[[streams.events.records]]\ntopic = \"t\"\n";
    // Nested a thousand deep: refused (by the TOML parser's own limit), not a stack
    // overflow.
    let mut deep = String::from("1");
    for _ in 0..1000 {
        deep = format!("{{ object = {{ a = {deep} }} }}");
    }
    let text = format!("{head}every = 1\n{record}value = {{ v = {deep} }}\n");
    let err = try_one(&text, &network).unwrap_err();
    assert!(
        err.contains("recursion depth"),
        "{}",
        &err[..err.len().min(300)]
    );
    // Gaps that never end, numbers out of range, huge lists: run, or refused.
    for (timing, value) in [
        ("rate = 1e-300", "{ n = 1 }"),
        ("every = 1e300", "{ n = 1 }"),
        ("gap = [0, 1e-300]", "{ n = { uniform = [-1e308, 1e308] } }"),
        ("every = 1", "{ n = { exponential = 1e308 } }"),
        ("every = 1", "{ n = { normal = [0, 1e308] } }"),
        ("every = 1", "{ n = { mul = [1e308, 1e308] } }"),
        (
            "every = 1",
            "{ n = { int = [-9223372036854775808, 9223372036854775807] } }",
        ),
        (
            "every = 1",
            "{ n = { seq = 9223372036854775807, step = 9223372036854775807 } }",
        ),
        (
            "every = 1",
            "{ t = { timestamp = \"iso\", plus_s = 1e300 } }",
        ),
        (
            "every = 1",
            "{ t = { timestamp = \"iso_us\", plus_s = -1e300 } }",
        ),
        (
            "rate = 1\nprofile = [1e-300,1e-300,1e-300,1e-300,1e-300,1e-300,1e-300,1e-300,1e-300,1e-300,1e-300,1e-300,1e-300,1e-300,1e-300,1e-300,1e-300,1e-300,1e-300,1e-300,1e-300,1e-300,1e-300,1e-300]",
            "{ n = 1 }",
        ),
        (
            "every = 1\nburst = { p = 1, size = 1000 }",
            "{ l = { list = { uuid = 4 }, len = 100 } }",
        ),
        ("every = 1", "{ l = { list = { uuid = 4 }, len = 10000 } }"),
    ] {
        let text = format!("{head}{timing}\n{record}value = {value}\n");
        let outcome = std::panic::catch_unwind(|| try_one(&text, &network));
        assert!(outcome.is_ok(), "panicked on {timing} / {value}");
    }
}
