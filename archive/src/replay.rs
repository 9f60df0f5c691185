//! Replay: archived records published back onto a bus in event-time order, at any
//! speed, so that a processor and the map live through the past again.
//!
//! The archive is read an hour at a time (its folders are hours of event time, so
//! every record of one hour comes before every record of the next): memory holds one
//! hour of the topics replayed. Records are published in the order of their event
//! time (then topic, partition and offset, so that a replay is the same every time),
//! each to the partition it was archived from, at `speed` times the pace they were
//! made at. The `network` topic's records from before `from` (the transit network and
//! the clock, reference data) are published first, the latest of each key.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use streamcity_core::{Bus, BusError, CancellationToken, Delivery, TimestampMs, Topics};

use crate::layout;
use crate::read::{ReadError, read_file};
use crate::schema;

/// The topics replayed unless told otherwise: the stream's inputs and the network.
pub const INPUT_TOPICS: [&str; 6] = [
    "vehicle_locations",
    "rider_tapped_on",
    "rider_tapped_off",
    "traffic_incidents",
    "city_incidents",
    "network",
];

/// What to replay, and how fast.
#[derive(Debug, Clone)]
pub struct ReplayConfig {
    /// The archive's root folder.
    pub dir: PathBuf,
    /// The first event time replayed (inclusive), ms since the epoch.
    pub from: Option<TimestampMs>,
    /// The last event time replayed (exclusive), ms since the epoch.
    pub to: Option<TimestampMs>,
    /// How many times faster than they were made records are published (0: as fast
    /// as the bus takes them).
    pub speed: f64,
    /// The topics replayed, by their names without prefix (`vehicle_locations`...).
    pub topics: Vec<String>,
    /// The prefix of the archived topics' names (the archived twin's `--topic-prefix`).
    pub source_prefix: String,
}

/// What the replay has done.
#[derive(Debug, Default)]
pub struct ReplayStats {
    /// Records published.
    pub published: AtomicU64,
    /// The event time of the last record published, ms since the epoch.
    pub position: AtomicU64,
}

/// What can stop a replay.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    /// The bus failed.
    #[error(transparent)]
    Bus(#[from] BusError),
    /// An archive file could not be read.
    #[error(transparent)]
    Read(#[from] ReadError),
    /// The archive holds nothing to replay.
    #[error("{0}")]
    Nothing(String),
    /// The archive's folders could not be listed.
    #[error("cannot read the archive {0}: {1}")]
    Dir(String, std::io::Error),
    /// A topic asked for is not one the twin has.
    #[error("unknown topic {0} (known: {1})")]
    UnknownTopic(String, String),
}

/// One topic to replay: where it was archived, where it goes.
struct Source {
    archived: Arc<str>,
    target: Arc<str>,
    fields: &'static [schema::Field],
    /// Its files, by hour.
    files: BTreeMap<i64, Vec<layout::ArchiveFile>>,
}

/// Publishes the archive's records of `config.topics` between `from` and `to` onto
/// `bus` (named by `target`), in event-time order at `speed`; returns how many.
pub async fn replay<B: Bus>(
    bus: &B,
    target: &Topics,
    config: &ReplayConfig,
    stats: &ReplayStats,
    stop: &CancellationToken,
) -> Result<u64, ReplayError> {
    let source_topics = Topics::with_prefix(&config.source_prefix);
    let mut sources = Vec::new();
    for name in &config.topics {
        let pick = |t: &Topics| -> Option<Arc<str>> {
            let want = format!("{}{name}", t.prefix);
            t.all().into_iter().find(|n| ***n == *want).cloned()
        };
        let (Some(archived), Some(to)) = (pick(&source_topics), pick(target)) else {
            let known: Vec<String> = Topics::default()
                .all()
                .iter()
                .map(|t| t.to_string())
                .collect();
            return Err(ReplayError::UnknownTopic(name.clone(), known.join(", ")));
        };
        let mut files: BTreeMap<i64, Vec<layout::ArchiveFile>> = BTreeMap::new();
        for file in layout::files(&config.dir, &archived)
            .map_err(|e| ReplayError::Dir(config.dir.display().to_string(), e))?
        {
            files.entry(file.hour).or_default().push(file);
        }
        sources.push(Source {
            fields: schema::fields(&source_topics, &archived),
            archived,
            target: to,
            files,
        });
    }
    let from = config.from.unwrap_or(TimestampMs::MIN);
    let to = config.to.unwrap_or(TimestampMs::MAX);
    let hours: std::collections::BTreeSet<i64> = sources
        .iter()
        .flat_map(|s| s.files.keys().copied())
        .filter(|&h| layout::hour_start(h + 1) > from && layout::hour_start(h) < to)
        .collect();
    if hours.is_empty() {
        let names: Vec<&str> = sources.iter().map(|s| &*s.archived).collect();
        return Err(ReplayError::Nothing(format!(
            "{} holds no records of {} in the time asked for",
            config.dir.display(),
            names.join(", ")
        )));
    }

    // Reference data first: the network topic's latest record of each key before `from`.
    let network_index = sources
        .iter()
        .position(|s| *s.archived == *source_topics.network);
    let mut published = 0u64;
    if let (Some(i), Some(_)) = (network_index, config.from) {
        let source = &sources[i];
        let mut latest: BTreeMap<bytes::Bytes, Delivery> = BTreeMap::new();
        for files in source.files.range(..=layout::hour_of(from)).map(|(_, f)| f) {
            for file in files {
                for d in read_file(&file.path, &source.archived, source.fields)? {
                    if d.record.timestamp < from {
                        latest.insert(d.record.key.clone(), d);
                    }
                }
            }
        }
        let mut reference: Vec<Delivery> = latest.into_values().collect();
        reference.sort_by_key(|d| (d.record.timestamp, d.partition, d.offset));
        for d in reference {
            publish(bus, &source.target, d).await?;
            published += 1;
        }
    }

    let mut pace: Option<(tokio::time::Instant, TimestampMs)> = None;
    for hour in hours {
        let mut records: Vec<(usize, Delivery)> = Vec::new();
        for (i, source) in sources.iter().enumerate() {
            for file in source.files.get(&hour).into_iter().flatten() {
                for d in read_file(&file.path, &source.archived, source.fields)? {
                    if d.record.timestamp >= from && d.record.timestamp < to {
                        records.push((i, d));
                    }
                }
            }
        }
        records.sort_by_key(|(i, d)| (d.record.timestamp, *i, d.partition, d.offset));
        for (i, d) in records {
            let ts = d.record.timestamp;
            if config.speed > 0.0 {
                let (start, first) = *pace.get_or_insert((tokio::time::Instant::now(), ts));
                let due = start
                    + Duration::from_secs_f64(((ts - first).max(0) as f64 / 1000.0) / config.speed);
                tokio::select! {
                    _ = tokio::time::sleep_until(due) => {}
                    _ = stop.cancelled() => return Ok(published),
                }
            } else if stop.is_cancelled() {
                return Ok(published);
            }
            publish(bus, &sources[i].target, d).await?;
            published += 1;
            stats.published.fetch_add(1, Ordering::Relaxed);
            stats.position.store(ts.max(0) as u64, Ordering::Relaxed);
        }
    }
    bus.flush().await?;
    Ok(published)
}

/// Publishes an archived record to `topic`, in the partition it was archived from.
async fn publish<B: Bus>(bus: &B, topic: &Arc<str>, d: Delivery) -> Result<(), BusError> {
    let mut record = d.record;
    record.topic = Arc::clone(topic);
    // Partition `p` of `n`: p % n is p itself when the partition counts agree.
    record.partition_hash = Some(u64::try_from(d.partition).unwrap_or(0));
    match bus.publish(record).await {
        Err(BusError::Rejected(why)) => {
            tracing::warn!(error = %why, "A replayed record was refused; going on");
            Ok(())
        }
        other => other,
    }
}
