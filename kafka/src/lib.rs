//! StreamCity's Kafka bus: the [`Bus`] trait on rdkafka (librdkafka), for running the
//! stages as separate processes, on several machines, or against Confluent Cloud.
//!
//! - Producing: idempotent, lz4-compressed, batched (`linger.ms`); every delivery report
//!   is counted (delivered, failed). When librdkafka's queue is full, `publish` waits:
//!   the same backpressure as the memory bus.
//! - Consuming: consumer groups; an offset is committed only once the subscriber has
//!   called [`Subscription::commit`] for it (offsets are stored on commit and written by
//!   librdkafka's auto-commit), so a crash re-reads rather than loses.
//! - Topics: created when missing, with configurable partitions, replication factor
//!   (the brokers' default unless set) and settings; `live_vehicle_table` and
//!   `network` (one partition) compacted.
//! - Connection: retried with backoff at start-up, then a clear error.
//! - Configuration after the seeds: bootstrap servers, an API key and secret (SASL_SSL
//!   with PLAIN, as Confluent Cloud wants), and any librdkafka property passed through.

mod admin;
mod config;
mod consumer;
mod logs;
mod producer;
mod restore;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use rdkafka::producer::{Producer, ThreadedProducer};
use rdkafka::util::Timeout;
use streamcity_core::{Bus, BusError, Delivery, Record, Subscribe};

pub use admin::{TopicSpec, plan};
pub use config::{KafkaConfig, is_secret};
pub use consumer::KafkaSubscription;
pub use producer::DeliveryStats;
use producer::{Reports, TopicEntry};

/// The Kafka bus.
#[derive(Clone)]
pub struct KafkaBus {
    config: Arc<KafkaConfig>,
    producer: Arc<ThreadedProducer<Reports>>,
    stats: Arc<DeliveryStats>,
    /// Per topic published to: records handed to librdkafka, partitions (a handful of
    /// topics: a short list).
    topics: Arc<std::sync::RwLock<Vec<Arc<TopicEntry>>>>,
}

impl std::fmt::Debug for KafkaBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaBus")
            .field("brokers", &self.config.brokers)
            .finish_non_exhaustive()
    }
}

fn backend(context: &str, e: impl std::fmt::Display) -> BusError {
    BusError::Backend(format!("{context}: {e}"))
}

impl KafkaBus {
    /// Connects, retrying with backoff while the brokers cannot be reached, then gives
    /// up with an error that says where it tried.
    pub async fn connect(config: KafkaConfig) -> Result<KafkaBus, BusError> {
        let stats = Arc::new(DeliveryStats::default());
        let mut producer_config = config.client_config();
        producer_config
            .set("enable.idempotence", "true")
            .set("compression.type", "lz4")
            .set("linger.ms", "5");
        // Passed-through properties win over these defaults too.
        for (k, v) in &config.properties {
            producer_config.set(k, v);
        }
        let producer: ThreadedProducer<Reports> = producer_config
            .create_with_context(Reports(Arc::clone(&stats)))
            .map_err(|e| backend("invalid Kafka settings", e))?;
        let producer = Arc::new(producer);
        let mut wait = config.connect_backoff;
        let attempts = config.connect_attempts.max(1);
        for attempt in 1..=attempts {
            let p = Arc::clone(&producer);
            let found = tokio::task::spawn_blocking(move || {
                p.client()
                    .fetch_metadata(None, Timeout::After(Duration::from_secs(5)))
            })
            .await
            .map_err(|e| backend("metadata request", e))?;
            match found {
                Ok(metadata) => {
                    tracing::info!(brokers = %config.brokers, count = metadata.brokers().len(), "Connected to Kafka");
                    return Ok(KafkaBus {
                        config: Arc::new(config),
                        producer,
                        stats,
                        topics: Arc::default(),
                    });
                }
                Err(e) if attempt < attempts => {
                    tracing::warn!(brokers = %config.brokers, attempt, attempts, error = %e, "Kafka not reachable; retrying in {wait:?}");
                    tokio::time::sleep(wait).await;
                    wait *= 2;
                }
                Err(e) => {
                    return Err(BusError::Backend(format!(
                        "cannot reach Kafka at {} after {attempts} attempts: {e}",
                        config.brokers
                    )));
                }
            }
        }
        unreachable!("the last attempt returns")
    }

    /// The producer every publish goes through.
    pub(crate) fn producer(&self) -> Arc<ThreadedProducer<Reports>> {
        Arc::clone(&self.producer)
    }

    /// The settings it was connected with.
    pub(crate) fn config(&self) -> &KafkaConfig {
        &self.config
    }

    /// Delivery reports so far.
    pub fn stats(&self) -> &Arc<DeliveryStats> {
        &self.stats
    }

    /// Records published so far, per topic, in the order the topics were first used.
    pub fn published(&self) -> Vec<(Arc<str>, u64)> {
        let list = self
            .topics
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        list.iter()
            .map(|t| (Arc::clone(&t.name), t.published.load(Ordering::Relaxed)))
            .collect()
    }
}

impl Bus for KafkaBus {
    type Subscription = KafkaSubscription;

    async fn publish(&self, record: Record) -> Result<(), BusError> {
        self.send(record).await
    }

    async fn flush(&self) -> Result<(), BusError> {
        let producer = Arc::clone(&self.producer);
        tokio::task::spawn_blocking(move || producer.flush(Timeout::After(Duration::from_secs(30))))
            .await
            .map_err(|e| backend("flushing", e))?
            .map_err(|e| backend("flushing", e))
    }

    async fn read_partition(&self, topic: &str, partition: i32) -> Result<Vec<Record>, BusError> {
        restore::read_partition(&self.config, topic, partition).await
    }

    fn keeps_records(&self) -> bool {
        true
    }

    async fn end_offsets(&self, topic: &str) -> Result<Vec<i64>, BusError> {
        let producer = Arc::clone(&self.producer);
        let topic = topic.to_owned();
        let stats = Arc::clone(&self.stats);
        tokio::task::spawn_blocking(move || {
            let mut ends = restore::end_offsets(producer.client(), &topic)?;
            // What this bus delivered itself is known exactly (a broker may report an
            // end before the last records of a batch: tansu 0.6 does).
            for (end, delivered) in ends.iter_mut().zip(stats.delivered_ends(&topic)) {
                *end = (*end).max(delivered);
            }
            Ok(ends)
        })
        .await
        .map_err(|e| backend("reading end offsets", e))?
    }

    async fn read_range(
        &self,
        topic: &str,
        partition: i32,
        from: i64,
        until: Option<i64>,
    ) -> Result<Vec<Delivery>, BusError> {
        restore::read_range(&self.config, topic, partition, Some(from), until).await
    }

    async fn subscribe(&self, spec: Subscribe) -> Result<KafkaSubscription, BusError> {
        consumer::subscribe(&self.config, spec)
    }
}
