//! The bus: keyed records published to topics and read by subscribers.
//!
//! [`Bus`] is the one interface the stages see. [`MemoryBus`] is the embedded
//! implementation (no infrastructure at all); the Kafka implementation lives behind the
//! same trait, so a stage never knows which one it runs on.
//!
//! The contract, on every implementation:
//! - a record has a topic, a key, a JSON payload and an event timestamp;
//! - records with the same partition key go to the same partition and are delivered in
//!   order; the partition key is the record's key unless it names another one (vehicle
//!   reports are keyed by vehicle and partitioned by line, see [`Record::partitioned_by`]);
//! - every subscription reads independently (on Kafka, subscriptions sharing a group
//!   split the partitions between them);
//! - a slow subscriber slows its publishers down (backpressure): memory stays bounded
//!   and nothing is dropped;
//! - a subscriber calls [`Subscription::commit`] once it has processed a delivery, and
//!   a restarted subscriber of the same group resumes after the last commit where the
//!   bus keeps records (Kafka does; the memory bus keeps none).

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};

use bytes::Bytes;
use tokio::sync::mpsc;

use crate::event::TimestampMs;

/// One keyed record on a topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// The topic it is published to.
    pub topic: Arc<str>,
    /// The partitioning key (vehicle id, stop id, incident id, ...).
    pub key: Bytes,
    /// The JSON payload; empty is a tombstone (deletes the key from a table).
    pub payload: Bytes,
    /// Event time, ms since the epoch.
    pub timestamp: TimestampMs,
    /// The [`key_hash`] of the key the record is partitioned by, when that is not its
    /// own key; `None` partitions it by its key. Set by [`Record::partitioned_by`]; not
    /// carried to subscribers (a [`Delivery`] says which partition it was in).
    pub partition_hash: Option<u64>,
}

impl Record {
    /// A record for `topic`.
    pub fn new(
        topic: &Arc<str>,
        key: impl Into<Bytes>,
        payload: Bytes,
        timestamp: TimestampMs,
    ) -> Self {
        Record {
            topic: Arc::clone(topic),
            key: key.into(),
            payload,
            timestamp,
            partition_hash: None,
        }
    }

    /// The same record, partitioned by `key` instead of its own key: every record
    /// partitioned by the same key goes to the same partition. Vehicle reports are
    /// partitioned by their line, so that one consumer sees a whole line.
    pub fn partitioned_by(mut self, key: &[u8]) -> Self {
        self.partition_hash = Some(key_hash(key));
        self
    }

    /// The partition this record goes to, out of `partitions`.
    pub fn partition(&self, partitions: u32) -> u32 {
        let hash = self.partition_hash.unwrap_or_else(|| key_hash(&self.key));
        (hash % partitions.max(1) as u64) as u32
    }

    /// The key as text (keys are UTF-8 ids; anything else shows lossily).
    pub fn key_str(&self) -> std::borrow::Cow<'_, str> {
        String::from_utf8_lossy(&self.key)
    }
}

/// A record as a subscriber receives it, with its place in the topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// The record.
    pub record: Record,
    /// The partition it was written to (chosen from its key).
    pub partition: i32,
    /// Its offset within that partition.
    pub offset: i64,
}

/// Where a new subscription starts reading when its group has no committed offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StartFrom {
    /// From the oldest record the bus keeps.
    Earliest,
    /// From records published after subscribing.
    #[default]
    Latest,
}

/// What to subscribe to.
#[derive(Debug, Clone)]
pub struct Subscribe {
    /// The topics to read.
    pub topics: Vec<Arc<str>>,
    /// The consumer group: subscriptions sharing one split the partitions between them
    /// and share committed offsets (on buses that keep records).
    pub group: String,
    /// Where to start without a committed offset.
    pub start: StartFrom,
}

impl Subscribe {
    /// A subscription to `topics` in `group`, from the latest records.
    pub fn new(group: impl Into<String>, topics: &[&Arc<str>]) -> Self {
        Subscribe {
            topics: topics.iter().map(|t| Arc::clone(t)).collect(),
            group: group.into(),
            start: StartFrom::Latest,
        }
    }

    /// The same subscription, starting from `start`.
    pub fn from(mut self, start: StartFrom) -> Self {
        self.start = start;
        self
    }
}

/// What can go wrong on a bus.
#[derive(Debug, thiserror::Error)]
pub enum BusError {
    /// The bus was shut down.
    #[error("the bus is closed")]
    Closed,
    /// The backend (e.g. Kafka) reported an error.
    #[error("bus backend error: {0}")]
    Backend(String),
    /// The bus refused this one record (too large, for instance): it alone is lost, and
    /// a stage goes on.
    #[error("record refused: {0}")]
    Rejected(String),
}

/// A bus: publish keyed records, subscribe to topics.
pub trait Bus: Clone + Send + Sync + 'static {
    /// A live subscription.
    type Subscription: Subscription;

    /// Publishes one record. Waits while subscribers are too far behind
    /// (backpressure); returns once the bus has taken the record.
    fn publish(&self, record: Record) -> impl Future<Output = Result<(), BusError>> + Send;

    /// Waits until every record published so far has been delivered to the bus
    /// (on Kafka: acknowledged by the brokers).
    fn flush(&self) -> impl Future<Output = Result<(), BusError>> + Send;

    /// Subscribes to topics. Records published after this returns are delivered to it.
    fn subscribe(
        &self,
        spec: Subscribe,
    ) -> impl Future<Output = Result<Self::Subscription, BusError>> + Send;

    /// Everything the bus keeps of one partition of `topic`, oldest first, read to its
    /// end outside any group (for a compacted topic: about the latest record per key).
    /// A consumer restores the state of a partition it was just assigned from this.
    /// The memory bus keeps nothing, so by default there is nothing to read.
    fn read_partition(
        &self,
        topic: &str,
        partition: i32,
    ) -> impl Future<Output = Result<Vec<Record>, BusError>> + Send {
        let _ = (topic, partition);
        std::future::ready(Ok(Vec::new()))
    }

    /// Whether the bus keeps records, so that offsets name them across restarts (Kafka
    /// does; the memory bus starts afresh with each process).
    fn keeps_records(&self) -> bool {
        false
    }

    /// The offset the next record of each partition of `topic` will get, by partition
    /// (empty on a bus that keeps nothing).
    fn end_offsets(&self, topic: &str) -> impl Future<Output = Result<Vec<i64>, BusError>> + Send {
        let _ = topic;
        std::future::ready(Ok(Vec::new()))
    }

    /// The records of `partition` of `topic` from offset `from` up to `until` (not
    /// included; `None`: to its end), outside any group, oldest first with their
    /// offsets (nothing on a bus that keeps nothing).
    fn read_range(
        &self,
        topic: &str,
        partition: i32,
        from: i64,
        until: Option<i64>,
    ) -> impl Future<Output = Result<Vec<Delivery>, BusError>> + Send {
        let _ = (topic, partition, from, until);
        std::future::ready(Ok(Vec::new()))
    }
}

/// A live subscription to one or more topics.
pub trait Subscription: Send + 'static {
    /// Waits for at least one delivery and moves up to `limit` into `buf`. Returns how
    /// many were added; 0 means the subscription has ended.
    fn recv_many(
        &mut self,
        buf: &mut Vec<Delivery>,
        limit: usize,
    ) -> impl Future<Output = Result<usize, BusError>> + Send;

    /// Marks `delivery`, and everything before it in its partition, as processed.
    fn commit(&mut self, delivery: &Delivery) -> Result<(), BusError> {
        self.commit_at(&delivery.record.topic, delivery.partition, delivery.offset)
    }

    /// Marks the record at `offset` of `partition` of `topic`, and everything before it
    /// in that partition, as processed.
    fn commit_at(&mut self, topic: &Arc<str>, partition: i32, offset: i64) -> Result<(), BusError>;

    /// Partitions taken away from this subscription since the last call (a consumer
    /// group rebalanced): the subscriber should release their state, as another member
    /// now reads them. Buses without groups never revoke.
    fn take_revoked(&mut self) -> Vec<(Arc<str>, i32)> {
        Vec::new()
    }

    /// Partitions given to this subscription since the last call (a consumer group
    /// rebalanced): the subscriber may restore their state before processing them.
    /// Buses without groups never assign.
    fn take_assigned(&mut self) -> Vec<(Arc<str>, i32)> {
        Vec::new()
    }
}

/// The hash partitions are chosen by (FNV-1a: stable across runs and machines).
pub fn key_hash(key: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in key {
        h ^= b as u64;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// The partition a key goes to, out of `partitions`.
pub fn partition_for(key: &[u8], partitions: u32) -> u32 {
    (key_hash(key) % partitions.max(1) as u64) as u32
}

/// Settings of the in-memory bus.
#[derive(Debug, Clone, Copy)]
pub struct MemoryBusConfig {
    /// Partitions per topic (keys are spread over them as on Kafka).
    pub partitions: u32,
    /// Records a subscriber may have waiting before its publishers wait for it.
    pub subscriber_capacity: usize,
}

impl Default for MemoryBusConfig {
    fn default() -> Self {
        MemoryBusConfig {
            partitions: 6,
            subscriber_capacity: 16_384,
        }
    }
}

/// The embedded bus: every stage in one process, no infrastructure.
///
/// Each subscription has a bounded queue. A publisher hands a record to every
/// subscriber of its topic; when a subscriber's queue is full, the publisher waits for
/// room (backpressure), so memory stays bounded and nothing is dropped.
#[derive(Debug, Clone)]
pub struct MemoryBus {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    config: MemoryBusConfig,
    topics: RwLock<HashMap<Arc<str>, Arc<TopicState>>>,
}

#[derive(Debug)]
struct TopicState {
    name: Arc<str>,
    subscribers: RwLock<Vec<mpsc::Sender<Delivery>>>,
    next_offset: Box<[AtomicI64]>,
    published: AtomicU64,
    waits: AtomicU64,
}

/// Counters of one topic on the memory bus.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicStats {
    /// The topic.
    pub topic: Arc<str>,
    /// Records published to it.
    pub published: u64,
    /// Times a publisher had to wait for a slow subscriber.
    pub backpressure_waits: u64,
    /// Live subscriptions.
    pub subscribers: usize,
}

impl Default for MemoryBus {
    fn default() -> Self {
        Self::new(MemoryBusConfig::default())
    }
}

impl MemoryBus {
    /// A bus with the given settings.
    pub fn new(config: MemoryBusConfig) -> Self {
        MemoryBus {
            inner: Arc::new(Inner {
                config,
                topics: RwLock::new(HashMap::new()),
            }),
        }
    }

    fn topic(&self, name: &Arc<str>) -> Arc<TopicState> {
        if let Some(t) = self
            .inner
            .topics
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(name)
        {
            return Arc::clone(t);
        }
        let mut topics = self
            .inner
            .topics
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        let partitions = self.inner.config.partitions.max(1) as usize;
        Arc::clone(topics.entry(Arc::clone(name)).or_insert_with(|| {
            Arc::new(TopicState {
                name: Arc::clone(name),
                subscribers: RwLock::new(Vec::new()),
                next_offset: (0..partitions).map(|_| AtomicI64::new(0)).collect(),
                published: AtomicU64::new(0),
                waits: AtomicU64::new(0),
            })
        }))
    }

    /// Counters for every topic used so far, sorted by name.
    pub fn stats(&self) -> Vec<TopicStats> {
        let topics = self
            .inner
            .topics
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        let mut out: Vec<TopicStats> = topics
            .values()
            .map(|t| TopicStats {
                topic: Arc::clone(&t.name),
                published: t.published.load(Ordering::Relaxed),
                backpressure_waits: t.waits.load(Ordering::Relaxed),
                subscribers: t
                    .subscribers
                    .read()
                    .unwrap_or_else(PoisonError::into_inner)
                    .len(),
            })
            .collect();
        out.sort_by(|a, b| a.topic.cmp(&b.topic));
        out
    }
}

impl Bus for MemoryBus {
    type Subscription = MemorySubscription;

    async fn publish(&self, record: Record) -> Result<(), BusError> {
        let topic = self.topic(&record.topic);
        let partition = record.partition(topic.next_offset.len() as u32);
        let offset = topic.next_offset[partition as usize].fetch_add(1, Ordering::Relaxed);
        topic.published.fetch_add(1, Ordering::Relaxed);
        let delivery = Delivery {
            record,
            partition: partition as i32,
            offset,
        };

        // Fast path: hand the record to every subscriber with room, without waiting and
        // without allocating. Subscribers that are full are waited for afterwards,
        // outside the lock.
        let mut full: Vec<(mpsc::Sender<Delivery>, Delivery)> = Vec::new();
        let mut saw_closed = false;
        {
            let subs = topic
                .subscribers
                .read()
                .unwrap_or_else(PoisonError::into_inner);
            for sub in subs.iter() {
                match sub.try_send(delivery.clone()) {
                    Ok(()) => {}
                    Err(mpsc::error::TrySendError::Full(d)) => full.push((sub.clone(), d)),
                    Err(mpsc::error::TrySendError::Closed(_)) => saw_closed = true,
                }
            }
        }
        for (sub, d) in full {
            topic.waits.fetch_add(1, Ordering::Relaxed);
            // A subscriber that went away while we waited no longer needs the record.
            if sub.send(d).await.is_err() {
                saw_closed = true;
            }
        }
        if saw_closed {
            topic
                .subscribers
                .write()
                .unwrap_or_else(PoisonError::into_inner)
                .retain(|s| !s.is_closed());
        }
        Ok(())
    }

    async fn flush(&self) -> Result<(), BusError> {
        // A record is on the bus as soon as publish returns.
        Ok(())
    }

    async fn subscribe(&self, spec: Subscribe) -> Result<MemorySubscription, BusError> {
        let (tx, rx) = mpsc::channel(self.inner.config.subscriber_capacity.max(1));
        for name in &spec.topics {
            let topic = self.topic(name);
            topic
                .subscribers
                .write()
                .unwrap_or_else(PoisonError::into_inner)
                .push(tx.clone());
        }
        Ok(MemorySubscription {
            rx,
            group: spec.group,
            committed: HashMap::new(),
        })
    }
}

/// A subscription to the memory bus.
#[derive(Debug)]
pub struct MemorySubscription {
    rx: mpsc::Receiver<Delivery>,
    group: String,
    committed: HashMap<(Arc<str>, i32), i64>,
}

impl MemorySubscription {
    /// The group this subscription belongs to.
    pub fn group(&self) -> &str {
        &self.group
    }

    /// The last committed offset of a topic's partition.
    pub fn committed(&self, topic: &str, partition: i32) -> Option<i64> {
        self.committed.get(&(Arc::from(topic), partition)).copied()
    }
}

impl Subscription for MemorySubscription {
    async fn recv_many(
        &mut self,
        buf: &mut Vec<Delivery>,
        limit: usize,
    ) -> Result<usize, BusError> {
        Ok(self.rx.recv_many(buf, limit.max(1)).await)
    }

    fn commit_at(&mut self, topic: &Arc<str>, partition: i32, offset: i64) -> Result<(), BusError> {
        let slot = self
            .committed
            .entry((Arc::clone(topic), partition))
            .or_insert(-1);
        *slot = (*slot).max(offset);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn rec(topic: &Arc<str>, key: &str, n: u64) -> Record {
        Record::new(topic, key.to_owned(), Bytes::from(n.to_string()), n as i64)
    }

    async fn drain(sub: &mut MemorySubscription, n: usize) -> Vec<Delivery> {
        let mut out = Vec::new();
        while out.len() < n {
            let got = tokio::time::timeout(Duration::from_secs(5), sub.recv_many(&mut out, n))
                .await
                .expect("timed out waiting for deliveries")
                .expect("bus error");
            assert!(got > 0, "subscription ended early");
        }
        out
    }

    #[tokio::test]
    async fn keeps_per_key_order_and_partitions_by_key() {
        let bus = MemoryBus::default();
        let t: Arc<str> = Arc::from("t");
        let mut sub = bus.subscribe(Subscribe::new("g", &[&t])).await.unwrap();
        let keys = ["a", "b", "c", "d"];
        for n in 0..400u64 {
            bus.publish(rec(&t, keys[(n % 4) as usize], n))
                .await
                .unwrap();
        }
        let got = drain(&mut sub, 400).await;
        for key in keys {
            let seq: Vec<i64> = got
                .iter()
                .filter(|d| d.record.key == key)
                .map(|d| d.record.timestamp)
                .collect();
            assert_eq!(seq.len(), 100);
            assert!(
                seq.windows(2).all(|w| w[0] < w[1]),
                "order broken for {key}"
            );
            let parts: std::collections::HashSet<i32> = got
                .iter()
                .filter(|d| d.record.key == key)
                .map(|d| d.partition)
                .collect();
            assert_eq!(parts.len(), 1, "key {key} spread over partitions");
            let offsets: Vec<i64> = got
                .iter()
                .filter(|d| d.record.key == key)
                .map(|d| d.offset)
                .collect();
            assert!(offsets.windows(2).all(|w| w[0] < w[1]));
        }
    }

    #[tokio::test]
    async fn every_subscriber_gets_every_record() {
        let bus = MemoryBus::default();
        let t: Arc<str> = Arc::from("t");
        let other: Arc<str> = Arc::from("other");
        let mut a = bus.subscribe(Subscribe::new("a", &[&t])).await.unwrap();
        let mut b = bus
            .subscribe(Subscribe::new("b", &[&t, &other]))
            .await
            .unwrap();
        for n in 0..50 {
            bus.publish(rec(&t, "k", n)).await.unwrap();
            bus.publish(rec(&other, "k", 1000 + n)).await.unwrap();
        }
        let ga = drain(&mut a, 50).await;
        let gb = drain(&mut b, 100).await;
        assert!(ga.iter().all(|d| &*d.record.topic == "t"));
        assert_eq!(
            gb.iter().filter(|d| &*d.record.topic == "other").count(),
            50
        );
        // Nothing more is waiting for `a`: it never subscribed to `other`.
        let mut extra = Vec::new();
        assert!(
            tokio::time::timeout(Duration::from_millis(50), a.recv_many(&mut extra, 10))
                .await
                .is_err()
        );
    }

    #[tokio::test]
    async fn slow_subscriber_applies_backpressure_without_loss() {
        let bus = MemoryBus::new(MemoryBusConfig {
            partitions: 3,
            subscriber_capacity: 8,
        });
        let t: Arc<str> = Arc::from("t");
        let mut slow = bus.subscribe(Subscribe::new("slow", &[&t])).await.unwrap();
        let publisher = {
            let bus = bus.clone();
            let t = Arc::clone(&t);
            tokio::spawn(async move {
                for n in 0..100 {
                    bus.publish(rec(&t, "k", n)).await.unwrap();
                }
            })
        };
        // The publisher cannot get far ahead of a subscriber that reads nothing.
        tokio::time::sleep(Duration::from_millis(100)).await;
        let published = bus.stats()[0].published;
        assert!(
            published <= 10,
            "publisher ran {published} records ahead of a full queue"
        );
        assert!(!publisher.is_finished());
        // Reading slowly lets it finish, and every record arrives once, in order.
        let mut got = Vec::new();
        while got.len() < 100 {
            tokio::time::sleep(Duration::from_millis(1)).await;
            slow.recv_many(&mut got, 3).await.unwrap();
        }
        publisher.await.unwrap();
        let ts: Vec<i64> = got.iter().map(|d| d.record.timestamp).collect();
        assert_eq!(ts, (0..100).collect::<Vec<_>>());
        assert!(bus.stats()[0].backpressure_waits > 0);
    }

    #[tokio::test]
    async fn dropped_subscriber_does_not_block_publishers() {
        let bus = MemoryBus::new(MemoryBusConfig {
            partitions: 1,
            subscriber_capacity: 2,
        });
        let t: Arc<str> = Arc::from("t");
        let sub = bus.subscribe(Subscribe::new("g", &[&t])).await.unwrap();
        drop(sub);
        for n in 0..20 {
            tokio::time::timeout(Duration::from_secs(1), bus.publish(rec(&t, "k", n)))
                .await
                .expect("publish blocked on a dropped subscriber")
                .unwrap();
        }
        assert_eq!(bus.stats()[0].subscribers, 0);
    }

    #[tokio::test]
    async fn commit_tracks_the_highest_offset() {
        let bus = MemoryBus::default();
        let t: Arc<str> = Arc::from("t");
        let mut sub = bus.subscribe(Subscribe::new("g", &[&t])).await.unwrap();
        for n in 0..3 {
            bus.publish(rec(&t, "k", n)).await.unwrap();
        }
        let got = drain(&mut sub, 3).await;
        sub.commit(&got[2]).unwrap();
        sub.commit(&got[0]).unwrap();
        assert_eq!(sub.committed("t", got[0].partition), Some(2));
    }

    #[tokio::test]
    async fn records_partitioned_by_another_key_share_its_partition() {
        let bus = MemoryBus::default();
        let t: Arc<str> = Arc::from("t");
        let mut sub = bus.subscribe(Subscribe::new("g", &[&t])).await.unwrap();
        // Twenty vehicles of one line: spread by their own keys, together by the line's.
        for n in 0..20 {
            let r = rec(&t, &format!("B07-{n:03}"), n);
            assert_eq!(r.partition(6), partition_for(r.key.as_ref(), 6));
            bus.publish(r.partitioned_by(b"B07")).await.unwrap();
        }
        let got = drain(&mut sub, 20).await;
        let line = partition_for(b"B07", 6) as i32;
        assert!(got.iter().all(|d| d.partition == line), "{got:?}");
        // In order, offsets counting up within the partition.
        let offsets: Vec<i64> = got.iter().map(|d| d.offset).collect();
        assert_eq!(offsets, (0..20).collect::<Vec<i64>>());
        let spread: std::collections::HashSet<u32> = (0..20)
            .map(|n| partition_for(format!("B07-{n:03}").as_bytes(), 6))
            .collect();
        assert!(
            spread.len() > 1,
            "the test's keys must not share a partition"
        );
    }

    #[test]
    fn partitioning_is_stable_and_in_range() {
        assert_eq!(partition_for(b"B07-012", 6), partition_for(b"B07-012", 6));
        for k in 0..1000 {
            assert!(partition_for(format!("v{k}").as_bytes(), 6) < 6);
        }
        assert_eq!(partition_for(b"x", 0), 0);
    }
}
