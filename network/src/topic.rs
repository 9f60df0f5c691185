//! The network and the clock on the bus: how stages running apart share one world.
//!
//! The `network` topic (one partition, compacted on Kafka) holds:
//!
//! - key `network/<hash>/<n>`: part `n` of a network's wire form (JSON), at most
//!   [`PART_BYTES`] each, so that a large network fits under a broker's record limit;
//! - key `network`: the [`Manifest`] naming the network in force, its hash and its
//!   parts (published after them, so a reader that sees it finds them all);
//! - key `clock`: the producer's [`ClockReading`].
//!
//! A producer publishes its network when the topic has none, and refuses to start when
//! it holds another ([`Conflict`]); `process` and `serve` read it from there (waiting
//! for a producer when there is none yet) instead of building one from their flags.

use std::collections::HashMap;
use std::time::Duration;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use streamcity_core::bus::key_hash;
use streamcity_core::clock::wall_clock_ms;
use streamcity_core::{
    Bus, BusError, CancellationToken, ClockReading, Record, Topics, decode, encode,
};

use crate::model::{Network, NetworkError};

/// The key of the manifest.
pub const NETWORK_KEY: &str = "network";
/// The key of the clock reading.
pub const CLOCK_KEY: &str = "clock";
/// The largest part of a network's wire form, bytes.
pub const PART_BYTES: usize = 256 * 1024;
/// The format of the manifest and parts; readers refuse another.
pub const FORMAT: u32 = 1;

/// What the `network` key holds: which network is in force and where its parts are.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// [`FORMAT`].
    pub format: u32,
    /// The network's content hash ([`Network::hash`]).
    pub hash: String,
    /// What it is, for people ([`Network::describe`]).
    pub description: String,
    /// Its parts, keyed `network/<hash>/0` and on.
    pub parts: u32,
    /// Bytes of its wire form.
    pub bytes: u64,
}

/// What the `network` topic holds.
#[derive(Debug, Default)]
pub struct OnTheBus {
    /// The network in force, if a producer published one (or why it cannot be used).
    pub network: Option<Result<Network, NetworkError>>,
    /// The latest clock reading, if any.
    pub clock: Option<ClockReading>,
}

/// Why a producer's network cannot go on the bus.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// The bus failed.
    #[error(transparent)]
    Bus(#[from] BusError),
    /// The topic already holds another network.
    #[error(transparent)]
    Conflict(#[from] Conflict),
}

/// Two networks where one is needed: what a stage was given, and what the bus holds.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("this stage was given {given}, but topic `{topic}` holds {on_bus}")]
pub struct Conflict {
    /// What the stage was given ([`Network::describe`]).
    pub given: String,
    /// What the bus holds.
    pub on_bus: String,
    /// The topic.
    pub topic: String,
}

fn part_key(hash: &str, n: u32) -> String {
    format!("{NETWORK_KEY}/{hash}/{n}")
}

/// A record of the `network` topic. All go to one partition.
fn record(topics: &Topics, key: String, payload: Bytes) -> Record {
    Record::new(&topics.network, key, payload, wall_clock_ms())
        .partitioned_by(NETWORK_KEY.as_bytes())
}

/// The records that put `network` on the bus: its parts of at most `part_bytes`, then
/// its manifest.
pub fn network_records(topics: &Topics, network: &Network, part_bytes: usize) -> Vec<Record> {
    let json = Bytes::from(network.to_json());
    let mut out: Vec<Record> = json
        .chunks(part_bytes.max(1))
        .enumerate()
        .map(|(n, c)| {
            record(
                topics,
                part_key(network.hash(), n as u32),
                json.slice_ref(c),
            )
        })
        .collect();
    let manifest = Manifest {
        format: FORMAT,
        hash: network.hash().to_owned(),
        description: network.describe(),
        parts: out.len() as u32,
        bytes: json.len() as u64,
    };
    out.push(record(topics, NETWORK_KEY.to_owned(), encode(&manifest)));
    out
}

/// Publishes `network` ([`network_records`]), then flushes the bus.
pub async fn publish_network<B: Bus>(
    bus: &B,
    topics: &Topics,
    network: &Network,
) -> Result<(), BusError> {
    for r in network_records(topics, network, PART_BYTES) {
        bus.publish(r).await?;
    }
    bus.flush().await
}

/// Publishes a reading of the simulated clock.
pub async fn publish_clock<B: Bus>(
    bus: &B,
    topics: &Topics,
    reading: ClockReading,
) -> Result<(), BusError> {
    bus.publish(record(topics, CLOCK_KEY.to_owned(), encode(&reading)))
        .await?;
    bus.flush().await
}

/// Puts a producer's `network` on the bus: publishes it when the topic holds none, does
/// nothing when it holds the same one, and refuses when it holds another.
pub async fn offer<B: Bus>(
    bus: &B,
    topics: &Topics,
    network: &Network,
) -> Result<(), PublishError> {
    match read(bus, topics).await?.network {
        None => {
            publish_network(bus, topics, network).await?;
            tracing::info!(topic = %topics.network, network = %network.describe(), "Network published");
            Ok(())
        }
        Some(Ok(on_bus)) if on_bus.hash() == network.hash() => Ok(()),
        Some(on_bus) => Err(Conflict {
            given: network.describe(),
            on_bus: match on_bus {
                Ok(n) => n.describe(),
                Err(e) => format!("a network this version cannot use ({e})"),
            },
            topic: topics.network.to_string(),
        }
        .into()),
    }
}

/// Checks that a stage given `network` agrees with the bus: an error naming both when
/// the bus holds another one. Nothing on the bus yet is fine.
pub fn agree(given: &Network, on_bus: &Network, topics: &Topics) -> Result<(), Conflict> {
    if given.hash() == on_bus.hash() {
        return Ok(());
    }
    Err(Conflict {
        given: given.describe(),
        on_bus: on_bus.describe(),
        topic: topics.network.to_string(),
    })
}

/// Reads what the `network` topic holds.
pub async fn read<B: Bus>(bus: &B, topics: &Topics) -> Result<OnTheBus, BusError> {
    let records = bus.read_partition(&topics.network, 0).await?;
    Ok(assemble(&records))
}

/// What a run of `network` topic records says: the latest manifest whose parts are all
/// there, and the latest clock reading.
pub fn assemble(records: &[Record]) -> OnTheBus {
    let mut manifest: Option<Result<Manifest, NetworkError>> = None;
    let mut clock = None;
    let mut parts: HashMap<&[u8], &Bytes> = HashMap::new();
    for r in records {
        match &r.key[..] {
            k if k == NETWORK_KEY.as_bytes() => {
                manifest = Some(
                    decode::<Manifest>(&r.payload)
                        .map_err(|e| NetworkError::Unreadable(format!("manifest: {e}"))),
                )
            }
            k if k == CLOCK_KEY.as_bytes() => {
                // A reading that does not decode or makes no sense is skipped.
                if let Ok(reading) = decode::<ClockReading>(&r.payload)
                    && reading.is_valid()
                {
                    clock = Some(reading);
                }
            }
            k => {
                parts.insert(k, &r.payload);
            }
        }
    }
    let network = manifest.map(|m| m.and_then(|m| join(&m, &parts)));
    OnTheBus { network, clock }
}

/// The network a manifest names, from its parts.
fn join(m: &Manifest, parts: &HashMap<&[u8], &Bytes>) -> Result<Network, NetworkError> {
    if m.format != FORMAT {
        return Err(NetworkError::Unreadable(format!(
            "format {}, this version reads format {FORMAT}",
            m.format
        )));
    }
    let mut json = Vec::with_capacity(m.bytes.min(1 << 30) as usize);
    for n in 0..m.parts {
        let key = part_key(&m.hash, n);
        let part = parts.get(key.as_bytes()).ok_or_else(|| {
            NetworkError::Unreadable(format!("part {n} of {} ({key}) is missing", m.parts))
        })?;
        json.extend_from_slice(part);
    }
    let hash = format!("{:016x}", key_hash(&json));
    if hash != m.hash {
        return Err(NetworkError::Unreadable(format!(
            "its parts hash to {hash}, the manifest says {}",
            m.hash
        )));
    }
    Network::from_json(&json)
}

/// Waits until the bus holds a network and returns it with the latest clock reading,
/// saying once (then every 30 s) that it is waiting. `None` when `stop` is cancelled
/// first.
pub async fn wait_for<B: Bus>(
    bus: &B,
    topics: &Topics,
    stage: &str,
    stop: &CancellationToken,
) -> Result<Option<(Network, Option<ClockReading>)>, WaitError> {
    let started = tokio::time::Instant::now();
    let mut said = None::<tokio::time::Instant>;
    loop {
        let found = read(bus, topics).await?;
        match found.network {
            Some(Ok(network)) => {
                if said.is_some() {
                    tracing::info!(network = %network.describe(), waited_s = started.elapsed().as_secs(), "Network found");
                }
                return Ok(Some((network, found.clock)));
            }
            Some(Err(e)) => return Err(WaitError::Unusable(e)),
            None => {}
        }
        if said.is_none_or(|t| t.elapsed() >= Duration::from_secs(30)) {
            tracing::warn!(
                topic = %topics.network,
                "{stage} is waiting for the network: start `streamcity produce` with the same --topic-prefix, which publishes it"
            );
            said = Some(tokio::time::Instant::now());
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            _ = stop.cancelled() => return Ok(None),
        }
    }
}

/// Why a stage could not get the network from the bus.
#[derive(Debug, thiserror::Error)]
pub enum WaitError {
    /// The bus failed.
    #[error(transparent)]
    Bus(#[from] BusError),
    /// The topic holds a network this stage cannot use.
    #[error("the network on the bus cannot be used: {0}")]
    Unusable(NetworkError),
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::synthetic::{SyntheticConfig, generate};

    #[test]
    fn a_network_read_back_is_the_same_network() {
        let topics = Topics::default();
        let network = generate(SyntheticConfig::default());
        let mut records = network_records(&topics, &network, PART_BYTES);
        assert_eq!(records.len(), 2, "the default city fits in one part");
        let clock = ClockReading {
            sim_ms: 1_763_884_800_000,
            wall_ms: 1_763_884_800_000,
            speed: 10.0,
        };
        records.push(record(&topics, CLOCK_KEY.to_owned(), encode(&clock)));
        let got = assemble(&records);
        let read = got.network.unwrap().unwrap();
        assert_eq!(read.hash(), network.hash());
        assert_eq!(read.to_json(), network.to_json());
        assert_eq!(read.routes[2].stop_dist, network.routes[2].stop_dist);
        assert_eq!(got.clock, Some(clock));
        // The derived geometry agrees to well under a metre.
        let (a, b) = (&read.routes[0].path, &network.routes[0].path);
        assert!((a.length_m() - b.length_m()).abs() < 1e-6);
    }

    #[test]
    fn a_large_network_travels_in_parts_and_damage_is_named() {
        let topics = Topics::default();
        let network = generate(SyntheticConfig::default());
        let records = network_records(&topics, &network, 10_000);
        assert!(records.len() > 5, "{} records", records.len());
        let whole = assemble(&records).network.unwrap().unwrap();
        assert_eq!(whole.hash(), network.hash());
        // A missing part, a damaged one, another format, garbage: named, never a panic.
        let mut missing = records.clone();
        missing.remove(1);
        let err = assemble(&missing).network.unwrap().unwrap_err();
        assert!(err.to_string().contains("part 1"), "{err}");
        let mut damaged = records.clone();
        damaged[0].payload = Bytes::from_static(b"{\"oops");
        let err = assemble(&damaged).network.unwrap().unwrap_err();
        assert!(err.to_string().contains("hash"), "{err}");
        let mut garbage = records.clone();
        let last = garbage.len() - 1;
        garbage[last].payload = Bytes::from_static(b"\x00\x01");
        assert!(assemble(&garbage).network.unwrap().is_err());
        assert!(assemble(&[]).network.is_none());
    }

    #[test]
    fn a_different_network_is_a_conflict_naming_both() {
        let topics = Topics::with_prefix("t-");
        let a = generate(SyntheticConfig::default());
        let b = generate(SyntheticConfig {
            seed: 7,
            ..SyntheticConfig::default()
        });
        assert!(agree(&a, &a, &topics).is_ok());
        let err = agree(&b, &a, &topics).unwrap_err().to_string();
        assert!(err.contains("seed 7") && err.contains("seed 42"), "{err}");
        assert!(err.contains("t-network"), "{err}");
    }
}
