//! The archiver: every record of the topics it reads goes into a Parquet file, exactly
//! once, however often it is killed and started again.
//!
//! Records are gathered per source partition into a *roll*, split by the hour of their
//! event time. A roll is written when it is `roll_every` old or holds `roll_records`
//! records (and when the archiver stops): one file per hour it touches, each written
//! under a temporary name, synced to disk, renamed, and its folder synced; only then
//! is the partition's offset committed. Each file is named after the roll's first
//! offset, so an archiver killed before the commit reads the roll's records again and
//! writes them under the same names; before a roll is written, the files its partition
//! has from that offset on (written and not committed before a crash) are removed,
//! since the records in them are being written again. Nothing is lost and nothing is
//! written twice.
//!
//! A write that fails (a full disk) is tried again every second, and no more records
//! are read meanwhile: memory stays bounded by `roll_records` per partition.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use streamcity_core::membership::Membership;
use streamcity_core::{
    Bus, BusError, CancellationToken, Delivery, Subscribe, Subscription, Topics,
};

use crate::layout::{self, ArchiveFile};
use crate::schema;
use crate::table::Table;

/// The consumer group of archivers (behind the topic prefix): its committed offsets
/// say what is safely on disk.
pub const GROUP: &str = "streamcity-archive";

/// Where and how to archive.
#[derive(Debug, Clone)]
pub struct ArchiveConfig {
    /// The archive's root folder.
    pub dir: PathBuf,
    /// A roll is written once it is this old.
    pub roll_every: Duration,
    /// A roll is written once it holds this many records.
    pub roll_records: usize,
    /// What names this archiver's files (see [`crate::layout`]): `kafka` on a bus that
    /// keeps records, a start time otherwise.
    pub run: String,
}

impl ArchiveConfig {
    /// Archiving into `dir`, rolling every 5 minutes or 100,000 records.
    pub fn new(dir: PathBuf, keeps_records: bool) -> Self {
        ArchiveConfig {
            dir,
            roll_every: Duration::from_secs(300),
            roll_records: 100_000,
            run: if keeps_records {
                "kafka".to_owned()
            } else {
                format!("run{}", streamcity_core::clock::wall_clock_ms())
            },
        }
    }
}

/// What the archiver has done.
#[derive(Debug, Default)]
pub struct ArchiveStats {
    /// Records written to files and committed.
    pub records: AtomicU64,
    /// Files written.
    pub files: AtomicU64,
    /// Bytes written.
    pub bytes: AtomicU64,
    /// Rolls written (each commits a partition's offset).
    pub rolls: AtomicU64,
    /// Writes that failed (and are tried again).
    pub write_errors: AtomicU64,
    /// Files removed before being written again (left by a crash before a commit).
    pub rewritten: AtomicU64,
    /// Records held in memory, not yet written.
    pub pending: AtomicU64,
}

/// What can stop the archiver.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    /// The bus failed.
    #[error(transparent)]
    Bus(#[from] BusError),
    /// The archive's folder cannot be used at all.
    #[error("cannot use the archive folder {0}: {1}")]
    Dir(String, std::io::Error),
}

/// A partition's records not yet written.
struct Roll {
    opened: Instant,
    first: i64,
    last: i64,
    records: usize,
    hours: BTreeMap<i64, Table>,
}

type Key = (Arc<str>, i32);

/// Archives what `sub` (subscribed on `bus` as `spec`) brings until `stop`; writes
/// what it holds before returning. A member left with no partitions joins its group
/// again as `spec` (see [`Membership`]).
#[allow(clippy::too_many_arguments)]
pub async fn run<B: Bus>(
    bus: &B,
    spec: Subscribe,
    mut sub: B::Subscription,
    topics: Topics,
    config: ArchiveConfig,
    stats: Arc<ArchiveStats>,
    stop: CancellationToken,
) -> Result<(), ArchiveError> {
    std::fs::create_dir_all(&config.dir)
        .map_err(|e| ArchiveError::Dir(config.dir.display().to_string(), e))?;
    let mut rolls: HashMap<Key, Roll> = HashMap::new();
    // The files this run has on disk, by topic then partition: scanned once per topic.
    let mut on_disk: HashMap<Arc<str>, HashMap<i32, Vec<ArchiveFile>>> = HashMap::new();
    let mut batch: Vec<Delivery> = Vec::new();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut failing = false;
    let mut membership = Membership::new(bus.keeps_records());
    loop {
        if failing {
            // Writing failed: try again before reading more.
            tokio::select! {
                _ = tick.tick() => {}
                _ = stop.cancelled() => return Ok(()),
            }
            failing = !write_due(&mut sub, &mut rolls, &mut on_disk, &config, &stats, true).await?;
            continue;
        }
        tokio::select! {
            got = sub.recv_many(&mut batch, 1024) => {
                if got? == 0 {
                    write_due(&mut sub, &mut rolls, &mut on_disk, &config, &stats, true).await?;
                    return Ok(());
                }
                let revoked = membership.note(&mut sub);
                membership.delivered();
                for (topic, partition) in revoked {
                    // Another archiver reads it now, from the last commit.
                    if let Some(roll) = rolls.remove(&(topic, partition)) {
                        stats.pending.fetch_sub(roll.records as u64, Ordering::Relaxed);
                    }
                }
                for delivery in batch.drain(..) {
                    let key = (Arc::clone(&delivery.record.topic), delivery.partition);
                    let roll = rolls.entry(key).or_insert_with(|| Roll {
                        opened: Instant::now(),
                        first: delivery.offset,
                        last: delivery.offset,
                        records: 0,
                        hours: BTreeMap::new(),
                    });
                    roll.last = delivery.offset;
                    roll.records += 1;
                    stats.pending.fetch_add(1, Ordering::Relaxed);
                    let topic = &delivery.record.topic;
                    roll.hours
                        .entry(layout::hour_of(delivery.record.timestamp))
                        .or_insert_with(|| Table::new(topic, schema::fields(&topics, topic)))
                        .push(&delivery);
                }
                if rolls.values().any(|r| r.records >= config.roll_records) {
                    failing = !write_due(&mut sub, &mut rolls, &mut on_disk, &config, &stats, false).await?;
                }
            }
            _ = tick.tick() => {
                for (topic, partition) in membership.note(&mut sub) {
                    if let Some(roll) = rolls.remove(&(topic, partition)) {
                        stats.pending.fetch_sub(roll.records as u64, Ordering::Relaxed);
                    }
                }
                failing = !write_due(&mut sub, &mut rolls, &mut on_disk, &config, &stats, false).await?;
                if !failing && membership.should_rejoin() {
                    tracing::warn!("No partitions to archive: leaving the consumer group and joining it afresh");
                    write_due(&mut sub, &mut rolls, &mut on_disk, &config, &stats, true).await?;
                    drop(sub);
                    sub = bus.subscribe(spec.clone()).await?;
                }
            }
            _ = stop.cancelled() => {
                write_due(&mut sub, &mut rolls, &mut on_disk, &config, &stats, true).await?;
                return Ok(());
            }
        }
    }
}

/// Writes the rolls that are due (every roll if `all`) and commits their offsets;
/// false if a write failed (that roll is kept, to be tried again).
async fn write_due<S: Subscription>(
    sub: &mut S,
    rolls: &mut HashMap<Key, Roll>,
    on_disk: &mut HashMap<Arc<str>, HashMap<i32, Vec<ArchiveFile>>>,
    config: &ArchiveConfig,
    stats: &Arc<ArchiveStats>,
    all: bool,
) -> Result<bool, ArchiveError> {
    let due: Vec<Key> = rolls
        .iter()
        .filter(|(_, r)| {
            all || r.records >= config.roll_records || r.opened.elapsed() >= config.roll_every
        })
        .map(|(k, _)| k.clone())
        .collect();
    for key in due {
        let Some(roll) = rolls.remove(&key) else {
            continue;
        };
        let (topic, partition) = key.clone();
        if !on_disk.contains_key(&topic) {
            let found = layout::files(&config.dir, &topic)
                .map_err(|e| ArchiveError::Dir(config.dir.display().to_string(), e))?;
            // Files a crash left half-written: never renamed, never read; removed.
            for partial in layout::partial_files(&config.dir, &topic, &config.run)
                .map_err(|e| ArchiveError::Dir(config.dir.display().to_string(), e))?
            {
                let _ = std::fs::remove_file(partial);
            }
            let mut by_partition: HashMap<i32, Vec<ArchiveFile>> = HashMap::new();
            for file in found.into_iter().filter(|f| f.run == config.run) {
                by_partition.entry(file.partition).or_default().push(file);
            }
            on_disk.insert(Arc::clone(&topic), by_partition);
        }
        let files = on_disk
            .get_mut(&topic)
            .map(|t| t.entry(partition).or_default())
            .map(std::mem::take)
            .unwrap_or_default();
        let (stale, kept): (Vec<_>, Vec<_>) =
            files.into_iter().partition(|f| f.first >= roll.first);
        let job = {
            let (dir, run, topic) = (config.dir.clone(), config.run.clone(), Arc::clone(&topic));
            let stale: Vec<PathBuf> = stale.iter().map(|f| f.path.clone()).collect();
            tokio::task::spawn_blocking(move || {
                write_roll(&dir, &run, &topic, partition, roll, &stale)
            })
        };
        let outcome = job
            .await
            .map_err(|e| BusError::Backend(format!("the archive writer failed: {e}")))?;
        let entry = on_disk
            .get_mut(&topic)
            .map(|t| t.entry(partition).or_default());
        match outcome {
            Ok(written) => {
                if let Some(entry) = entry {
                    *entry = kept;
                    entry.extend(written.files);
                }
                stats
                    .rewritten
                    .fetch_add(stale.len() as u64, Ordering::Relaxed);
                stats
                    .files
                    .fetch_add(written.count as u64, Ordering::Relaxed);
                stats.bytes.fetch_add(written.bytes, Ordering::Relaxed);
                stats
                    .records
                    .fetch_add(written.records as u64, Ordering::Relaxed);
                stats
                    .pending
                    .fetch_sub(written.records as u64, Ordering::Relaxed);
                stats.rolls.fetch_add(1, Ordering::Relaxed);
                // On disk: everything up to `last` is safe.
                sub.commit_at(&topic, partition, written.last)?;
            }
            Err((why, roll)) => {
                if let Some(entry) = entry {
                    // The stale files may be gone already: scan again next time.
                    *entry = kept;
                }
                on_disk.remove(&topic);
                stats.write_errors.fetch_add(1, Ordering::Relaxed);
                tracing::error!(topic = %topic, partition, error = %why, "Cannot write the archive; trying again in a second");
                rolls.insert(key, roll);
                return Ok(false);
            }
        }
    }
    Ok(true)
}

/// What a roll's write left on disk.
struct Written {
    files: Vec<ArchiveFile>,
    count: usize,
    bytes: u64,
    records: usize,
    last: i64,
}

/// Writes `roll` of `topic`'s `partition`, one file per hour, after removing `stale`;
/// hands the roll back if anything fails.
fn write_roll(
    dir: &Path,
    run: &str,
    topic: &str,
    partition: i32,
    roll: Roll,
    stale: &[PathBuf],
) -> Result<Written, (String, Roll)> {
    let mut done = Written {
        files: Vec::new(),
        count: 0,
        bytes: 0,
        records: roll.records,
        last: roll.last,
    };
    let result = (|| -> Result<(), String> {
        for path in stale {
            match std::fs::remove_file(path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(format!("cannot remove {}: {e}", path.display())),
            }
        }
        for (&hour, table) in &roll.hours {
            let folder = layout::hour_dir(dir, topic, hour);
            std::fs::create_dir_all(&folder)
                .map_err(|e| format!("cannot make {}: {e}", folder.display()))?;
            let name = layout::file_name(run, partition, roll.first);
            let path = folder.join(&name);
            let tmp = folder.join(format!(".{name}.tmp"));
            let file =
                File::create(&tmp).map_err(|e| format!("cannot make {}: {e}", tmp.display()))?;
            let mut out = table
                .write(BufWriter::new(file))
                .map_err(|e| format!("cannot write {}: {e}", tmp.display()))?;
            out.flush()
                .map_err(|e| format!("cannot write {}: {e}", tmp.display()))?;
            let file = out
                .into_inner()
                .map_err(|e| format!("cannot write {}: {e}", tmp.display()))?;
            file.sync_all()
                .map_err(|e| format!("cannot sync {}: {e}", tmp.display()))?;
            let bytes = file.metadata().map(|m| m.len()).unwrap_or(0);
            drop(file);
            std::fs::rename(&tmp, &path)
                .map_err(|e| format!("cannot rename {} to {name}: {e}", tmp.display()))?;
            // The new name, and any folder made for it, made durable too.
            for level in folder.ancestors().take(3) {
                File::open(level)
                    .and_then(|d| d.sync_all())
                    .map_err(|e| format!("cannot sync {}: {e}", level.display()))?;
            }
            done.files.push(ArchiveFile {
                hour,
                path,
                run: run.to_owned(),
                partition,
                first: roll.first,
            });
            done.count += 1;
            done.bytes += bytes;
        }
        Ok(())
    })();
    match result {
        Ok(()) => Ok(done),
        Err(why) => Err((why, roll)),
    }
}
