//! Where archive files go: `DIR/topic=<topic>/date=<YYYY-MM-DD>/hour=<HH>/` by the
//! records' event time (UTC), Hive-style so that DuckDB, pyarrow or Spark read the
//! folders as columns, and each file named after what wrote it:
//! `<run>-p<partition>-<first offset>.parquet`.
//!
//! `<run>` is `kafka` for an archiver on a bus that keeps records (a file's name is
//! then the same however often it is written again: a restart rewrites, never
//! duplicates), or the start time of a process on the memory bus (whose offsets start
//! again at zero with each process). Files are written as `.<name>.tmp` first, which
//! readers skip.

use std::path::{Path, PathBuf};

use streamcity_core::TimestampMs;
use streamcity_network::Date;

const MS_PER_HOUR: i64 = 3_600_000;

/// The hour of event time `ts`: hours since the epoch.
pub fn hour_of(ts: TimestampMs) -> i64 {
    ts.div_euclid(MS_PER_HOUR)
}

/// The first moment of `hour` (hours since the epoch), ms.
pub fn hour_start(hour: i64) -> TimestampMs {
    hour.saturating_mul(MS_PER_HOUR)
}

/// The folder of `topic`'s files.
pub fn topic_dir(root: &Path, topic: &str) -> PathBuf {
    root.join(format!("topic={}", escape(topic)))
}

/// The folder of `topic`'s records of `hour` (hours since the epoch).
pub fn hour_dir(root: &Path, topic: &str, hour: i64) -> PathBuf {
    let date = Date::from_days(hour.div_euclid(24));
    topic_dir(root, topic)
        .join(format!("date={}", date.iso()))
        .join(format!("hour={:02}", hour.rem_euclid(24)))
}

/// The name of the file `run` writes of `partition` starting at offset `first`.
pub fn file_name(run: &str, partition: i32, first: i64) -> String {
    format!("{run}-p{partition:04}-{first:020}.parquet")
}

/// A file's run, partition and first offset, from its name (`None`: not an archive
/// file, or one being written).
pub fn parse_file_name(name: &str) -> Option<(&str, i32, i64)> {
    let stem = name.strip_suffix(".parquet")?;
    if stem.starts_with('.') {
        return None;
    }
    let (rest, first) = stem.rsplit_once('-')?;
    let (run, partition) = rest.rsplit_once("-p")?;
    Some((run, partition.parse().ok()?, first.parse().ok()?))
}

/// The hour (hours since the epoch) a folder `date=YYYY-MM-DD/hour=HH` holds.
pub fn parse_hour(date_dir: &str, hour_dir: &str) -> Option<i64> {
    let date = date_dir.strip_prefix("date=")?;
    let hour: i64 = hour_dir.strip_prefix("hour=")?.parse().ok()?;
    let mut parts = date.splitn(3, '-');
    let (y, m, d) = (parts.next()?, parts.next()?, parts.next()?);
    let date = Date::from_ymd(y.parse().ok()?, m.parse().ok()?, d.parse().ok()?);
    if !date.is_valid() || !(0..24).contains(&hour) {
        return None;
    }
    Some(date.days() * 24 + hour)
}

/// A topic name as one folder name: `/`, `\` and a leading `.` cannot appear in it.
fn escape(topic: &str) -> String {
    topic
        .chars()
        .enumerate()
        .map(|(i, c)| match c {
            '/' | '\\' => '_',
            '.' if i == 0 => '_',
            c => c,
        })
        .collect()
}

/// Every archive file under `root` for `topic`, by hour, run, partition and offset.
pub fn files(root: &Path, topic: &str) -> std::io::Result<Vec<ArchiveFile>> {
    Ok(scan(root, topic)?.0)
}

/// The files `run` was writing under `root` for `topic` when it was stopped (killed
/// before it renamed them): never read, to be removed.
pub fn partial_files(root: &Path, topic: &str, run: &str) -> std::io::Result<Vec<PathBuf>> {
    let prefix = format!(".{run}-p");
    Ok(scan(root, topic)?
        .1
        .into_iter()
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with(&prefix))
        })
        .collect())
}

/// The archive files and the temporary files under `root` for `topic`.
fn scan(root: &Path, topic: &str) -> std::io::Result<(Vec<ArchiveFile>, Vec<PathBuf>)> {
    let mut out = Vec::new();
    let mut partial = Vec::new();
    let dir = topic_dir(root, topic);
    let Ok(dates) = std::fs::read_dir(&dir) else {
        return Ok((out, partial));
    };
    for date in dates {
        let date = date?;
        let date_name = date.file_name().to_string_lossy().into_owned();
        let Ok(hours) = std::fs::read_dir(date.path()) else {
            continue;
        };
        for hour in hours {
            let hour = hour?;
            let Some(h) = parse_hour(&date_name, &hour.file_name().to_string_lossy()) else {
                continue;
            };
            for file in std::fs::read_dir(hour.path())? {
                let file = file?;
                let name = file.file_name().to_string_lossy().into_owned();
                if name.starts_with('.') && name.ends_with(".parquet.tmp") {
                    partial.push(file.path());
                } else if let Some((run, partition, first)) = parse_file_name(&name) {
                    out.push(ArchiveFile {
                        hour: h,
                        path: file.path(),
                        run: run.to_owned(),
                        partition,
                        first,
                    });
                }
            }
        }
    }
    out.sort_by(|a, b| {
        (a.hour, &a.run, a.partition, a.first).cmp(&(b.hour, &b.run, b.partition, b.first))
    });
    Ok((out, partial))
}

/// One archive file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchiveFile {
    /// The hour of event time it holds records of (hours since the epoch).
    pub hour: i64,
    /// Where it is.
    pub path: PathBuf,
    /// What wrote it (`kafka`, or a process's start time).
    pub run: String,
    /// The partition its records came from.
    pub partition: i32,
    /// The offset of the first record of the roll it was written in.
    pub first: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_folders_read_back() {
        let name = file_name("kafka", 3, 1234);
        assert_eq!(name, "kafka-p0003-00000000000000001234.parquet");
        assert_eq!(parse_file_name(&name), Some(("kafka", 3, 1234)));
        assert_eq!(
            parse_file_name(".kafka-p0003-00000000000000001234.parquet.tmp"),
            None
        );
        assert_eq!(parse_file_name(".x-p1-2.parquet"), None);
        // 2026-12-01 07:30 UTC
        let ts = 1_796_110_200_000;
        let dir = hour_dir(Path::new("/a"), "x.vehicle_locations", hour_of(ts));
        assert_eq!(
            dir,
            Path::new("/a/topic=x.vehicle_locations/date=2026-12-01/hour=07")
        );
        assert_eq!(parse_hour("date=2026-12-01", "hour=07"), Some(hour_of(ts)));
        assert_eq!(parse_hour("date=2026-13-01", "hour=07"), None);
        assert_eq!(parse_hour("date=2026-12-01", "hour=24"), None);
        assert_eq!(
            topic_dir(Path::new("/a"), "../x/y"),
            Path::new("/a/topic=_._x_y")
        );
    }
}
