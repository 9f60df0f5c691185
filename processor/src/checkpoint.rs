//! Checkpoints: the whole state of a processor saved and restored, so that a restored
//! processor fed the rest of the input produces exactly what an uninterrupted one would
//! have. A checkpoint names the network it was taken with; restoring it for another is
//! refused.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use streamcity_core::{TimestampMs, Topics};
use streamcity_network::Network;

use crate::{Processor, ProcessorConfig, State};

/// A checkpoint's format version; restoring another version is refused.
const CHECKPOINT_VERSION: u32 = 2;

#[derive(Serialize, Deserialize)]
struct Checkpoint {
    version: u32,
    config: ProcessorConfig,
    /// The hash of the network it was taken with, if any.
    #[serde(default)]
    network: Option<String>,
    state: State,
}

/// What a checkpoint says about itself, read without restoring it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckpointInfo {
    /// The hash of the network it was taken with, if any.
    pub network: Option<String>,
    /// The latest event time the processor had seen, if any.
    pub event_time: Option<TimestampMs>,
}

/// Why a checkpoint could not be restored.
#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    /// Not a checkpoint, or damaged.
    #[error("unreadable checkpoint: {0}")]
    Unreadable(String),
    /// Written by another version of the processor.
    #[error("checkpoint version {found}, expected {CHECKPOINT_VERSION}")]
    Version {
        /// The version found.
        found: u32,
    },
    /// Taken with another network.
    #[error(
        "the checkpoint was taken with network {checkpoint}, this processor runs network {given}"
    )]
    Network {
        /// The hash of the checkpoint's network.
        checkpoint: String,
        /// The network given, described.
        given: String,
    },
}

fn read(checkpoint: &[u8]) -> Result<Checkpoint, RestoreError> {
    let cp: Checkpoint = serde_json::from_slice(checkpoint).map_err(|e| {
        // Tell a version mismatch apart from damage.
        match serde_json::from_slice::<serde_json::Value>(checkpoint)
            .ok()
            .and_then(|v| v["version"].as_u64())
        {
            Some(v) if v != u64::from(CHECKPOINT_VERSION) => RestoreError::Version {
                found: v.min(u64::from(u32::MAX)) as u32,
            },
            _ => RestoreError::Unreadable(e.to_string()),
        }
    })?;
    if cp.version != CHECKPOINT_VERSION {
        return Err(RestoreError::Version { found: cp.version });
    }
    Ok(cp)
}

/// What a checkpoint holds about its network and time, without restoring it.
pub fn peek(checkpoint: &[u8]) -> Result<CheckpointInfo, RestoreError> {
    let cp = read(checkpoint)?;
    Ok(CheckpointInfo {
        network: cp.network,
        event_time: cp.state.watermarks.max_seen(),
    })
}

impl Processor {
    /// The whole state, serialised (JSON).
    pub fn checkpoint(&self) -> Vec<u8> {
        #[derive(Serialize)]
        struct Ref<'a> {
            version: u32,
            config: &'a ProcessorConfig,
            network: Option<&'a str>,
            state: &'a State,
        }
        serde_json::to_vec(&Ref {
            version: CHECKPOINT_VERSION,
            config: &self.config,
            network: self.network.as_deref().map(Network::hash),
            state: &self.state,
        })
        .unwrap_or_default()
    }

    /// A processor resumed from a checkpoint, with the settings it was taken with.
    pub fn restore(topics: Topics, checkpoint: &[u8]) -> Result<Self, RestoreError> {
        let cp = read(checkpoint)?;
        let mut p = Processor::new(topics, cp.config);
        p.state = cp.state;
        Ok(p)
    }

    /// [`Processor::restore`] for `network`: refused when the checkpoint was taken with
    /// another one.
    pub fn restore_for(
        topics: Topics,
        checkpoint: &[u8],
        network: Arc<Network>,
    ) -> Result<Self, RestoreError> {
        let cp = read(checkpoint)?;
        if let Some(hash) = &cp.network
            && hash != network.hash()
        {
            return Err(RestoreError::Network {
                checkpoint: hash.clone(),
                given: network.describe(),
            });
        }
        let mut p = Processor::new(topics, cp.config).with_network(network);
        p.state = cp.state;
        Ok(p)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use streamcity_network::{SyntheticConfig, synthetic};

    use super::*;

    #[test]
    fn checkpoints_of_another_version_or_damaged_are_refused() {
        let p = Processor::new(Topics::default(), ProcessorConfig::default());
        let mut cp: serde_json::Value = serde_json::from_slice(&p.checkpoint()).unwrap();
        assert!(Processor::restore(Topics::default(), &p.checkpoint()).is_ok());
        cp["version"] = json!(99);
        let err =
            Processor::restore(Topics::default(), &serde_json::to_vec(&cp).unwrap()).unwrap_err();
        assert!(matches!(err, RestoreError::Version { found: 99 }), "{err}");
        assert!(matches!(
            Processor::restore(Topics::default(), b"{oops"),
            Err(RestoreError::Unreadable(_))
        ));
    }

    #[test]
    fn a_checkpoint_of_another_network_is_refused() {
        let city = |seed| {
            Arc::new(synthetic::generate(SyntheticConfig {
                seed,
                ..SyntheticConfig::default()
            }))
        };
        let p =
            Processor::new(Topics::default(), ProcessorConfig::default()).with_network(city(42));
        let saved = p.checkpoint();
        assert_eq!(
            peek(&saved).unwrap().network.as_deref(),
            Some(city(42).hash())
        );
        assert!(Processor::restore_for(Topics::default(), &saved, city(42)).is_ok());
        let err = Processor::restore_for(Topics::default(), &saved, city(7)).unwrap_err();
        assert!(err.to_string().contains("seed 7"), "{err}");
    }
}
