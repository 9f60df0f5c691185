//! Where the benchmarks leave their results: `target/benchmarks/<name>.json`, read by
//! the CI smoke check (`benchmarks/check_results.py`) and by whoever updates
//! `BENCHMARKS.md`.

use std::path::PathBuf;

/// The directory of the results: `benchmarks/` in the workspace's target directory
/// (`CARGO_TARGET_DIR` respected), whichever crate's benchmark asks.
pub fn results_dir() -> PathBuf {
    target_dir().join("benchmarks")
}

/// The workspace's target directory.
pub fn target_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("CARGO_TARGET_DIR") {
        return PathBuf::from(dir);
    }
    let manifest = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest
        .ancestors()
        .find(|d| d.join("Cargo.lock").exists())
        .unwrap_or(manifest)
        .join("target")
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
