//! The archive's and the replay's counters as metrics (`/metrics` of `archive`,
//! `replay` and the twin run with `--archive`).

use std::sync::atomic::{AtomicU64, Ordering};

use streamcity_archive::{ArchiveStats, ReplayStats};
use streamcity_dashboard::metrics::Sample;

fn load(a: &AtomicU64) -> u64 {
    a.load(Ordering::Relaxed)
}

/// The archiver's counters.
pub fn archive_metrics(stats: &ArchiveStats) -> Vec<Sample> {
    vec![
        Sample::counter(
            "streamcity_archive_records",
            "Records written to Parquet files and committed",
            &[],
            load(&stats.records),
        ),
        Sample::counter(
            "streamcity_archive_files",
            "Parquet files written",
            &[],
            load(&stats.files),
        ),
        Sample::counter(
            "streamcity_archive_bytes",
            "Bytes of Parquet files written",
            &[],
            load(&stats.bytes),
        ),
        Sample::counter(
            "streamcity_archive_write_errors",
            "Writes that failed and are tried again",
            &[],
            load(&stats.write_errors),
        ),
        Sample::counter(
            "streamcity_archive_rewritten_files",
            "Files left by a crash before their commit, removed and written again",
            &[],
            load(&stats.rewritten),
        ),
        Sample::gauge(
            "streamcity_archive_pending_records",
            "Records held in memory, not yet in a file",
            &[],
            load(&stats.pending) as f64,
        ),
    ]
}

/// The replay's counters.
pub fn replay_metrics(stats: &ReplayStats) -> Vec<Sample> {
    vec![
        Sample::counter(
            "streamcity_replay_published",
            "Archived records published again",
            &[],
            load(&stats.published),
        ),
        Sample::gauge(
            "streamcity_replay_position_seconds",
            "Event time of the last record replayed, seconds since the epoch",
            &[],
            load(&stats.position) as f64 / 1000.0,
        ),
    ]
}
