//! Where the benchmarks leave their results: `target/benchmarks/<name>.json`, read by
//! the CI smoke check (`benchmarks/check_results.py`) and by whoever updates
//! `BENCHMARKS.md`.

use std::path::PathBuf;

/// The directory of the results (`CARGO_TARGET_DIR` respected).
pub fn results_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"));
    target.join("benchmarks")
}

/// Writes `value` as `<name>.json` and says where.
pub fn write_results(name: &str, value: &serde_json::Value) {
    let dir = results_dir();
    std::fs::create_dir_all(&dir).expect("creating target/benchmarks");
    let path = dir.join(format!("{name}.json"));
    let text = serde_json::to_string_pretty(value).expect("results serialise");
    std::fs::write(&path, text).expect("writing the results");
    println!("results: {}", path.display());
}
