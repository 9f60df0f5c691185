//! Reading whole topics of the test broker as they sit in their partitions, outside
//! any group: what the fault and hostile-input tests compare.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{BorrowedMessage, Message};
use rdkafka::{Offset, TopicPartitionList};

/// A record as it sits in a partition.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Stored {
    /// Its partition.
    pub partition: i32,
    /// Its key.
    pub key: Vec<u8>,
    /// Its value.
    pub value: Vec<u8>,
    /// Its timestamp, ms since the epoch.
    pub timestamp: i64,
}

impl Stored {
    fn of(m: &BorrowedMessage<'_>) -> Stored {
        Stored {
            partition: m.partition(),
            key: m.key().unwrap_or_default().to_vec(),
            value: m.payload().unwrap_or_default().to_vec(),
            timestamp: m.timestamp().to_millis().unwrap_or(0),
        }
    }
}

/// Every record of every partition of `topic` on `brokers`, in partition order
/// (within 60 s; fails loudly otherwise).
pub fn read_all(brokers: &str, topic: &str) -> Vec<Stored> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", crate::stage::unique("topic-reader"))
        .set("enable.auto.commit", "false")
        .create()
        .expect("a Kafka consumer");
    let wait = Duration::from_secs(10);
    let metadata = consumer
        .fetch_metadata(Some(topic), wait)
        .unwrap_or_else(|e| panic!("metadata of {topic}: {e}"));
    let partitions = metadata
        .topics()
        .first()
        .map_or(0, |t| t.partitions().len()) as i32;
    let mut ends = HashMap::new();
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        let (low, high) = consumer
            .fetch_watermarks(topic, p, wait)
            .unwrap_or_else(|e| panic!("offsets of {topic}/{p}: {e}"));
        if high > low {
            ends.insert(p, high);
            tpl.add_partition_offset(topic, p, Offset::Beginning)
                .expect("a partition to read");
        }
    }
    let mut out = Vec::new();
    if ends.is_empty() {
        return out;
    }
    consumer.assign(&tpl).expect("partitions assigned");
    let deadline = Instant::now() + Duration::from_secs(60);
    while !ends.is_empty() {
        assert!(
            Instant::now() < deadline,
            "{topic}: not read to its end within 60 s"
        );
        let Some(m) = consumer.poll(Duration::from_millis(200)) else {
            continue;
        };
        let m = m.unwrap_or_else(|e| panic!("reading {topic}: {e}"));
        out.push(Stored::of(&m));
        if ends
            .get(&m.partition())
            .is_some_and(|end| m.offset() + 1 >= *end)
        {
            ends.remove(&m.partition());
        }
    }
    // tansu 0.6 reports a partition's end before the last records of its last batch:
    // whatever still comes within a second is read too.
    while let Some(m) = consumer.poll(Duration::from_secs(1)) {
        out.push(Stored::of(
            &m.unwrap_or_else(|e| panic!("reading {topic}: {e}")),
        ));
    }
    out
}
