//! Reading one partition of a topic in full, outside any group: how a processor
//! restores the vehicles of a partition it was just assigned from the compacted live
//! table, and how a stage reads the `network` topic.

use std::sync::Arc;
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::util::Timeout;
use rdkafka::{Offset, TopicPartitionList};
use streamcity_core::{BusError, Record};

use crate::consumer::{is_fatal, record_of};
use crate::{KafkaConfig, backend};

/// What is kept of `partition` of `topic` from offset `from` (everything: `None`),
/// oldest first.
pub(crate) async fn read_partition(
    config: &KafkaConfig,
    topic: &str,
    partition: i32,
    from: Option<i64>,
) -> Result<Vec<Record>, BusError> {
    let mut c = config.client_config();
    // Assigned, not subscribed: the group name is required but never joined or
    // committed to.
    c.set("group.id", "streamcity-restore")
        .set("enable.auto.commit", "false");
    let consumer: BaseConsumer<crate::logs::Quiet> = config
        .overridden(c)
        .create_with_context(crate::logs::Quiet)
        .map_err(|e| backend("Kafka consumer", e))?;
    let topic: Arc<str> = Arc::from(topic);
    tokio::task::spawn_blocking(move || read_to_end(&consumer, &topic, partition, from))
        .await
        .map_err(|e| backend("reading a partition", e))?
}

/// Reads `partition` of `topic` from `from` (its first record kept: `None`) to its
/// last (blocking).
fn read_to_end(
    consumer: &BaseConsumer<crate::logs::Quiet>,
    topic: &Arc<str>,
    partition: i32,
    from: Option<i64>,
) -> Result<Vec<Record>, BusError> {
    let wait = Timeout::After(Duration::from_secs(10));
    let (low, high) = consumer
        .fetch_watermarks(topic, partition, wait)
        .map_err(|e| backend(&format!("offsets of {topic}/{partition}"), e))?;
    let mut out = Vec::new();
    if high <= low.max(from.unwrap_or(low)) {
        return Ok(out);
    }
    let start = match from {
        Some(offset) if offset > low => Offset::Offset(offset),
        _ => Offset::Beginning,
    };
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, partition, start)
        .map_err(|e| backend("assigning", e))?;
    consumer.assign(&tpl).map_err(|e| backend("assigning", e))?;
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while std::time::Instant::now() < deadline {
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(m)) => {
                out.push(record_of(Arc::clone(topic), &m));
                if m.offset() >= high - 1 {
                    // A broker may report the end before the last records of a batch
                    // (tansu 0.6 does): whatever else arrives at once is taken too.
                    while let Some(Ok(m)) = consumer.poll(Duration::from_millis(100)) {
                        out.push(record_of(Arc::clone(topic), &m));
                    }
                    return Ok(out);
                }
            }
            Some(Err(e)) if is_fatal(&e) => return Err(backend("reading a partition", e)),
            Some(Err(e)) => tracing::warn!(error = %e, "Kafka consumer error; retrying"),
            None => {}
        }
    }
    Err(BusError::Backend(format!(
        "reading {topic}/{partition}: offset {high} not reached within 30 s"
    )))
}

/// The end offset (the next record's) of each partition of `topic` (blocking).
pub(crate) fn end_offsets(
    client: &rdkafka::client::Client<crate::producer::Reports>,
    topic: &str,
) -> Result<Vec<i64>, BusError> {
    let wait = Timeout::After(Duration::from_secs(10));
    let metadata = client
        .fetch_metadata(Some(topic), wait)
        .map_err(|e| backend(&format!("metadata of {topic}"), e))?;
    let partitions = metadata
        .topics()
        .iter()
        .find(|t| t.name() == topic)
        .map_or(0, |t| t.partitions().len());
    (0..partitions as i32)
        .map(|p| {
            client
                .fetch_watermarks(topic, p, wait)
                .map(|(_, high)| high)
                .map_err(|e| backend(&format!("offsets of {topic}/{p}"), e))
        })
        .collect()
}
