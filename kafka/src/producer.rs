//! Producing: idempotent, lz4-compressed, batched; every delivery report counted; the
//! bus's `publish` waits while librdkafka's queue is full (backpressure).

use std::sync::Arc;
use std::sync::atomic::{AtomicI32, AtomicU64, Ordering};

use std::time::Duration;

use rdkafka::client::ClientContext;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::util::Timeout;
use streamcity_core::{BusError, Record};

use crate::{KafkaBus, backend};

/// Delivery reports, counted.
#[derive(Debug, Default)]
pub struct DeliveryStats {
    /// Records the brokers acknowledged.
    pub delivered: AtomicU64,
    /// Records that could not be delivered (after librdkafka's retries).
    pub failed: AtomicU64,
    /// Per topic and partition, the offset after the last record delivered there.
    ends: std::sync::Mutex<std::collections::HashMap<String, Vec<i64>>>,
}

impl DeliveryStats {
    /// The offset after the last record this bus delivered to each partition of
    /// `topic` (-1 for partitions it has not delivered to).
    pub fn delivered_ends(&self, topic: &str) -> Vec<i64> {
        self.ends
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(topic)
            .cloned()
            .unwrap_or_default()
    }

    fn note_delivered(&self, topic: &str, partition: i32, offset: i64) {
        let Ok(p) = usize::try_from(partition) else {
            return;
        };
        let mut ends = self
            .ends
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let list = match ends.get_mut(topic) {
            Some(list) => list,
            None => ends.entry(topic.to_owned()).or_default(),
        };
        if list.len() <= p {
            list.resize(p + 1, -1);
        }
        list[p] = list[p].max(offset + 1);
    }
}

/// Counts delivery reports as librdkafka hands them over.
pub(crate) struct Reports(pub(crate) Arc<DeliveryStats>);

impl ClientContext for Reports {
    fn log(&self, level: rdkafka::config::RDKafkaLogLevel, fac: &str, log_message: &str) {
        crate::logs::log(level, fac, log_message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        crate::logs::error(&error, reason);
    }
}

impl ProducerContext for Reports {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        match result {
            Ok(m) => {
                self.0.delivered.fetch_add(1, Ordering::Relaxed);
                self.0.note_delivered(m.topic(), m.partition(), m.offset());
            }
            Err((e, m)) => {
                self.0.failed.fetch_add(1, Ordering::Relaxed);
                tracing::error!(error = %e, topic = m.topic(), "Record not delivered");
            }
        }
    }
}

/// What the bus knows of a topic it publishes to.
#[derive(Debug)]
pub(crate) struct TopicEntry {
    pub(crate) name: Arc<str>,
    /// Records handed to librdkafka.
    pub(crate) published: AtomicU64,
    /// Its partitions (0 until a record partitioned by another key needs the count).
    partitions: AtomicI32,
}

impl KafkaBus {
    /// The entry of `topic`, added on first use.
    fn entry(&self, topic: &Arc<str>) -> Arc<TopicEntry> {
        let find = |list: &[Arc<TopicEntry>]| {
            list.iter()
                .find(|t| Arc::ptr_eq(&t.name, topic) || t.name == *topic)
                .map(Arc::clone)
        };
        if let Some(t) = find(
            &self
                .topics
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        ) {
            return t;
        }
        let mut list = self
            .topics
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // Another publisher may have added it between the two locks.
        if let Some(t) = find(&list) {
            return t;
        }
        let t = Arc::new(TopicEntry {
            name: Arc::clone(topic),
            published: AtomicU64::new(0),
            partitions: AtomicI32::new(0),
        });
        list.push(Arc::clone(&t));
        t
    }

    /// The partitions of `entry`'s topic, asked of the brokers once.
    async fn partitions(&self, entry: &TopicEntry) -> Result<i32, BusError> {
        let known = entry.partitions.load(Ordering::Relaxed);
        if known > 0 {
            return Ok(known);
        }
        let p = self.producer();
        let name = Arc::clone(&entry.name);
        let metadata = tokio::task::spawn_blocking(move || {
            p.client()
                .fetch_metadata(Some(&name), Timeout::After(Duration::from_secs(10)))
        })
        .await
        .map_err(|e| backend("metadata request", e))?
        .map_err(|e| backend(&format!("partitions of {}", entry.name), e))?;
        let count = metadata
            .topics()
            .first()
            .map_or(0, |t| t.partitions().len() as i32);
        if count == 0 {
            return Err(BusError::Backend(format!(
                "topic {} has no partitions: does it exist?",
                entry.name
            )));
        }
        entry.partitions.store(count, Ordering::Relaxed);
        Ok(count)
    }

    /// Publishes one record: partitioned here when it names another key than its own
    /// (as the memory bus does), otherwise by librdkafka's partitioner on its key;
    /// waits while librdkafka's queue is full.
    pub(crate) async fn send(&self, record: Record) -> Result<(), BusError> {
        let entry = self.entry(&record.topic);
        // Partitioned by another key than its own: choose the partition here, as the
        // memory bus does. Otherwise librdkafka's partitioner hashes the key.
        let partition = match record.partition_hash {
            Some(_) => Some(record.partition(self.partitions(&entry).await? as u32) as i32),
            None => None,
        };
        loop {
            let mut r: BaseRecord<'_, [u8], [u8]> =
                BaseRecord::to(&record.topic).timestamp(record.timestamp);
            // An empty key is none at all (a scenario's record without a key).
            if !record.key.is_empty() {
                r.key = Some(&record.key[..]);
            }
            if let Some(p) = partition {
                r = r.partition(p);
            }
            // An empty payload is a tombstone: no value at all.
            if !record.payload.is_empty() {
                r = r.payload(&record.payload[..]);
            }
            match self.producer.send(r) {
                Ok(()) => {
                    entry.published.fetch_add(1, Ordering::Relaxed);
                    return Ok(());
                }
                // librdkafka's queue is full: wait for deliveries (backpressure).
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
                // Fatal errors (the idempotent producer's sequence broken) end the
                // stage; anything else is about this record alone.
                Err((e @ KafkaError::MessageProduction(RDKafkaErrorCode::Fatal), _)) => {
                    return Err(backend("producing", e));
                }
                Err((e, _)) => {
                    return Err(BusError::Rejected(format!(
                        "{} ({} bytes) on {}: {e}",
                        String::from_utf8_lossy(&record.key[..record.key.len().min(64)]),
                        record.payload.len(),
                        record.topic
                    )));
                }
            }
        }
    }
}
