//! Reading one partition of a topic in full, outside any group: how a processor
//! restores the vehicles of a partition it was just assigned from the compacted live
//! table, and how a stage reads the `network` topic.

use std::sync::Arc;
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::util::Timeout;
use rdkafka::{Offset, TopicPartitionList};
use streamcity_core::{BusError, Delivery, Record};

use crate::consumer::{is_fatal, record_of};
use crate::{KafkaConfig, backend};

/// What is kept of `partition` of `topic` (everything), oldest first.
pub(crate) async fn read_partition(
    config: &KafkaConfig,
    topic: &str,
    partition: i32,
) -> Result<Vec<Record>, BusError> {
    let read = read_range(config, topic, partition, None, None).await?;
    Ok(read.into_iter().map(|d| d.record).collect())
}

/// What is kept of `partition` of `topic` from offset `from` (its first record kept:
/// `None`) up to `until` (not included; its end: `None`), oldest first.
pub(crate) async fn read_range(
    config: &KafkaConfig,
    topic: &str,
    partition: i32,
    from: Option<i64>,
    until: Option<i64>,
) -> Result<Vec<Delivery>, BusError> {
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
    tokio::task::spawn_blocking(move || {
        let wait = Timeout::After(Duration::from_secs(10));
        let (low, high) = consumer
            .fetch_watermarks(&topic, partition, wait)
            .map_err(|e| backend(&format!("offsets of {topic}/{partition}"), e))?;
        let from = from.unwrap_or(low).max(low);
        // Known to exist when asked for (a broker may report an end short of them).
        let end = until.unwrap_or(high);
        if end <= from {
            return Ok(Vec::new());
        }
        // A broker may answer a fetch from inside a batch with the batch after it (tansu
        // 0.6 does): started earlier and earlier until the first record is not after
        // `from`, the records before it left out.
        let mut back = 0;
        loop {
            let start = (from - back).max(low);
            let (read, first) =
                read_from(&consumer, &topic, partition, start, end, until.is_some())?;
            let complete = first.is_none_or(|first| first <= from) || start == low;
            if complete {
                return Ok(read.into_iter().filter(|d| d.offset >= from).collect());
            }
            back = (back * 4).max(256);
        }
    })
    .await
    .map_err(|e| backend("reading a partition", e))?
}

/// Reads `partition` of `topic` from offset `start` until offset `end` (blocking). An
/// `exact` end is where the caller knows records stop; otherwise it is the broker's
/// high watermark, and whatever arrives at once after it is taken too. Also returns the
/// offset of the first record the broker answered with.
fn read_from(
    consumer: &BaseConsumer<crate::logs::Quiet>,
    topic: &Arc<str>,
    partition: i32,
    start: i64,
    end: i64,
    exact: bool,
) -> Result<(Vec<Delivery>, Option<i64>), BusError> {
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, partition, Offset::Offset(start))
        .map_err(|e| backend("assigning", e))?;
    consumer.assign(&tpl).map_err(|e| backend("assigning", e))?;
    let mut out = Vec::new();
    let delivery = |m: &rdkafka::message::BorrowedMessage<'_>| Delivery {
        record: record_of(Arc::clone(topic), m),
        partition,
        offset: m.offset(),
    };
    let mut first = None;
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while std::time::Instant::now() < deadline {
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(m)) if exact && m.offset() >= end => {
                return Ok((out, Some(*first.get_or_insert(m.offset()))));
            }
            Some(Ok(m)) => {
                first.get_or_insert(m.offset());
                out.push(delivery(&m));
                if m.offset() >= end - 1 {
                    if !exact {
                        // A broker may report the end before the last records of a
                        // batch (tansu 0.6 does): whatever else arrives at once is
                        // taken too.
                        while let Some(Ok(m)) = consumer.poll(Duration::from_millis(100)) {
                            out.push(delivery(&m));
                        }
                    }
                    return Ok((out, first));
                }
            }
            Some(Err(e)) if is_fatal(&e) => return Err(backend("reading a partition", e)),
            Some(Err(e)) => tracing::warn!(error = %e, "Kafka consumer error; retrying"),
            None => {}
        }
    }
    Err(BusError::Backend(format!(
        "reading {topic}/{partition}: offset {end} not reached within 30 s"
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
