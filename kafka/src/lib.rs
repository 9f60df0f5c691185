//! StreamCity's Kafka bus: the [`Bus`] trait on rdkafka (librdkafka), for running the
//! stages as separate processes, on several machines, or against Confluent Cloud.
//!
//! - Producing: idempotent, lz4-compressed, batched (`linger.ms`); every delivery report
//!   is counted (delivered, failed). When librdkafka's queue is full, `publish` waits:
//!   the same backpressure as the memory bus.
//! - Consuming: consumer groups; an offset is committed only once the subscriber has
//!   called [`Subscription::commit`] for it (offsets are stored on commit and written by
//!   librdkafka's auto-commit), so a crash re-reads rather than loses.
//! - Topics: created when missing, with a configurable partition count;
//!   `live_vehicle_table` is compacted.
//! - Connection: retried with backoff at start-up, then a clear error.
//! - Configuration after the seeds: bootstrap servers, an API key and secret (SASL_SSL
//!   with PLAIN, as Confluent Cloud wants), and any librdkafka property passed through.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicI32, AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use futures_util::FutureExt;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::{ClientContext, DefaultClientContext};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{CommitMode, Consumer, ConsumerContext, Rebalance, StreamConsumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{BorrowedMessage, Message};
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::util::Timeout;
use rdkafka::{Offset, TopicPartitionList};
use streamcity_core::{
    Bus, BusError, Delivery, Record, StartFrom, Subscribe, Subscription, Topics,
};

/// How to reach Kafka.
#[derive(Debug, Clone)]
pub struct KafkaConfig {
    /// Bootstrap servers, `host:port[,host:port...]` (`KAFKA_BOOTSTRAP_SERVERS`).
    pub brokers: String,
    /// API key: with the secret, connects with SASL_SSL and PLAIN (`KAFKA_API_KEY`).
    pub api_key: Option<String>,
    /// API secret (`KAFKA_API_SECRET`).
    pub api_secret: Option<String>,
    /// librdkafka properties passed through as they are (`--kafka-opt key=value`);
    /// they override everything else.
    pub properties: Vec<(String, String)>,
    /// Partitions of the topics this bus creates.
    pub partitions: i32,
    /// Replication factor of the topics this bus creates.
    pub replication: i32,
    /// Attempts to reach the brokers at start-up before giving up.
    pub connect_attempts: u32,
    /// Wait before the second attempt; doubled each time.
    pub connect_backoff: Duration,
}

impl KafkaConfig {
    /// Settings for `brokers` with the defaults: 6 partitions, replication 1, 5
    /// connection attempts starting 1 s apart.
    pub fn new(brokers: impl Into<String>) -> Self {
        KafkaConfig {
            brokers: brokers.into(),
            api_key: None,
            api_secret: None,
            properties: Vec::new(),
            partitions: 6,
            replication: 1,
            connect_attempts: 5,
            connect_backoff: Duration::from_secs(1),
        }
    }

    /// The client settings every connection shares.
    fn client_config(&self) -> ClientConfig {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &self.brokers);
        if let (Some(key), Some(secret)) = (&self.api_key, &self.api_secret) {
            c.set("security.protocol", "SASL_SSL")
                .set("sasl.mechanisms", "PLAIN")
                .set("sasl.username", key)
                .set("sasl.password", secret);
        }
        for (k, v) in &self.properties {
            c.set(k, v);
        }
        c
    }
}

/// Delivery reports, counted.
#[derive(Debug, Default)]
pub struct DeliveryStats {
    /// Records the brokers acknowledged.
    pub delivered: AtomicU64,
    /// Records that could not be delivered (after librdkafka's retries).
    pub failed: AtomicU64,
}

/// Counts delivery reports as librdkafka hands them over.
struct Reports(Arc<DeliveryStats>);

impl ClientContext for Reports {}

impl ProducerContext for Reports {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        match result {
            Ok(_) => {
                self.0.delivered.fetch_add(1, Ordering::Relaxed);
            }
            Err((e, m)) => {
                self.0.failed.fetch_add(1, Ordering::Relaxed);
                tracing::error!(error = %e, topic = m.topic(), "Record not delivered");
            }
        }
    }
}

/// Logs partition assignments, so that a rebalance is visible, and notes the revoked
/// partitions for the subscriber.
struct Rebalances {
    revoked: Pending,
    assigned: Pending,
}

/// Partitions named by a rebalance, waiting for the subscriber.
type Pending = Arc<std::sync::Mutex<Vec<(String, i32)>>>;

fn note(pending: &Pending, tpl: &TopicPartitionList) {
    pending
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .extend(
            tpl.elements()
                .iter()
                .map(|e| (e.topic().to_owned(), e.partition())),
        );
}

impl ClientContext for Rebalances {}

impl ConsumerContext for Rebalances {
    fn pre_rebalance(
        &self,
        _consumer: &rdkafka::consumer::BaseConsumer<Self>,
        rebalance: &Rebalance<'_>,
    ) {
        if let Rebalance::Revoke(tpl) = rebalance {
            note(&self.revoked, tpl);
        }
    }

    fn post_rebalance(
        &self,
        _consumer: &rdkafka::consumer::BaseConsumer<Self>,
        rebalance: &Rebalance<'_>,
    ) {
        match rebalance {
            Rebalance::Assign(tpl) => {
                note(&self.assigned, tpl);
                tracing::info!(partitions = tpl.count(), "Partitions assigned")
            }
            Rebalance::Revoke(tpl) => {
                tracing::info!(partitions = tpl.count(), "Partitions revoked")
            }
            Rebalance::Error(e) => tracing::warn!(error = %e, "Rebalance failed"),
        }
    }
}

/// What the bus knows of a topic it publishes to.
#[derive(Debug)]
struct TopicEntry {
    name: Arc<str>,
    /// Records handed to librdkafka.
    published: AtomicU64,
    /// Its partitions (0 until a record partitioned by another key needs the count).
    partitions: AtomicI32,
}

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

    /// Creates the topics that do not exist yet: `partitions` each, and
    /// `live_vehicle_table` compacted. Asks the brokers which exist first, so nothing is
    /// requested when they all do (clusters that forbid creating topics are fine then).
    pub async fn ensure_topics(&self, topics: &Topics) -> Result<(), BusError> {
        let p = Arc::clone(&self.producer);
        let metadata = tokio::task::spawn_blocking(move || {
            p.client()
                .fetch_metadata(None, Timeout::After(Duration::from_secs(10)))
        })
        .await
        .map_err(|e| backend("metadata request", e))?
        .map_err(|e| backend("listing topics", e))?;
        let existing: Vec<String> = metadata
            .topics()
            .iter()
            .map(|t| t.name().to_owned())
            .collect();
        let missing: Vec<&Arc<str>> = topics
            .all()
            .into_iter()
            .filter(|t| !existing.iter().any(|e| **e == ***t))
            .collect();
        if missing.is_empty() {
            return Ok(());
        }
        let admin: AdminClient<DefaultClientContext> = self
            .config
            .client_config()
            .create()
            .map_err(|e| backend("Kafka admin client", e))?;
        let replication = self.config.replication;
        let new: Vec<NewTopic<'_>> = missing
            .iter()
            .map(|name| {
                let t = NewTopic::new(
                    name,
                    self.config.partitions,
                    TopicReplication::Fixed(replication),
                );
                if ***name == *topics.live_vehicle_table {
                    t.set("cleanup.policy", "compact")
                } else {
                    t
                }
            })
            .collect();
        let results = admin
            .create_topics(
                new.iter(),
                &AdminOptions::new().operation_timeout(Some(Duration::from_secs(10))),
            )
            .await
            .map_err(|e| backend("creating topics", e))?;
        for result in results {
            match result {
                Ok(name) => tracing::info!(topic = %name, "Topic created"),
                Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                Err((name, code)) => {
                    return Err(BusError::Backend(format!("creating topic {name}: {code}")));
                }
            }
        }
        Ok(())
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
        let p = Arc::clone(&self.producer);
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

    /// Records handed to librdkafka and not yet acknowledged or failed.
    pub fn in_flight(&self) -> i32 {
        self.producer.in_flight_count()
    }
}

impl Bus for KafkaBus {
    type Subscription = KafkaSubscription;

    async fn publish(&self, record: Record) -> Result<(), BusError> {
        let entry = self.entry(&record.topic);
        // Partitioned by another key than its own: choose the partition here, as the
        // memory bus does. Otherwise librdkafka's partitioner hashes the key.
        let partition = match record.partition_hash {
            Some(_) => Some(record.partition(self.partitions(&entry).await? as u32) as i32),
            None => None,
        };
        loop {
            let mut r = BaseRecord::to(&record.topic)
                .key(&record.key[..])
                .timestamp(record.timestamp);
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
                Err((e, _)) => return Err(backend("producing", e)),
            }
        }
    }

    async fn flush(&self) -> Result<(), BusError> {
        let producer = Arc::clone(&self.producer);
        tokio::task::spawn_blocking(move || producer.flush(Timeout::After(Duration::from_secs(30))))
            .await
            .map_err(|e| backend("flushing", e))?
            .map_err(|e| backend("flushing", e))
    }

    async fn read_partition(&self, topic: &str, partition: i32) -> Result<Vec<Record>, BusError> {
        let mut c = self.config.client_config();
        // Assigned, not subscribed: the group name is required but never joined or
        // committed to.
        c.set("group.id", "streamcity-restore")
            .set("enable.auto.commit", "false");
        for (k, v) in &self.config.properties {
            c.set(k, v);
        }
        let consumer: rdkafka::consumer::BaseConsumer =
            c.create().map_err(|e| backend("Kafka consumer", e))?;
        let topic: Arc<str> = Arc::from(topic);
        tokio::task::spawn_blocking(move || read_to_end(&consumer, &topic, partition))
            .await
            .map_err(|e| backend("reading a partition", e))?
    }

    async fn subscribe(&self, spec: Subscribe) -> Result<KafkaSubscription, BusError> {
        let mut c = self.config.client_config();
        c.set("group.id", &spec.group)
            .set("enable.auto.commit", "true")
            .set("enable.auto.offset.store", "false")
            .set("auto.commit.interval.ms", "1000")
            // A member that dies hands its partitions on within seconds.
            .set("session.timeout.ms", "10000")
            .set("heartbeat.interval.ms", "1000")
            // A live twin: a fetch with nothing new returns within 10 ms rather than
            // librdkafka's 500 (tansu holds a fetch that long; each hop paid it).
            .set("fetch.wait.max.ms", "10")
            .set(
                "auto.offset.reset",
                match spec.start {
                    StartFrom::Earliest => "earliest",
                    StartFrom::Latest => "latest",
                },
            );
        for (k, v) in &self.config.properties {
            c.set(k, v);
        }
        let (revoked, assigned) = (Pending::default(), Pending::default());
        let consumer: StreamConsumer<Rebalances> = c
            .create_with_context(Rebalances {
                revoked: Arc::clone(&revoked),
                assigned: Arc::clone(&assigned),
            })
            .map_err(|e| backend("Kafka consumer", e))?;
        let names: Vec<&str> = spec.topics.iter().map(|t| &**t).collect();
        consumer
            .subscribe(&names)
            .map_err(|e| backend("subscribing", e))?;
        Ok(KafkaSubscription {
            consumer,
            topics: spec.topics,
            processed: HashMap::new(),
            revoked,
            assigned,
        })
    }
}

/// Reads `partition` of `topic` from its first record kept to its last (blocking).
fn read_to_end(
    consumer: &rdkafka::consumer::BaseConsumer,
    topic: &Arc<str>,
    partition: i32,
) -> Result<Vec<Record>, BusError> {
    let wait = Timeout::After(Duration::from_secs(10));
    let (low, high) = consumer
        .fetch_watermarks(topic, partition, wait)
        .map_err(|e| backend(&format!("offsets of {topic}/{partition}"), e))?;
    let mut out = Vec::new();
    if high <= low {
        return Ok(out);
    }
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, partition, Offset::Beginning)
        .map_err(|e| backend("assigning", e))?;
    consumer.assign(&tpl).map_err(|e| backend("assigning", e))?;
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while std::time::Instant::now() < deadline {
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(m)) => {
                out.push(record_of(Arc::clone(topic), &m));
                if m.offset() >= high - 1 {
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

/// Whether a consumer error ends the subscription: librdkafka's fatal errors and
/// failures that waiting will not fix (credentials, permissions). Everything else, such
/// as all brokers being down for a moment, is retried.
fn is_fatal(e: &KafkaError) -> bool {
    if matches!(e, KafkaError::MessageConsumptionFatal(_)) {
        return true;
    }
    matches!(
        e.rdkafka_error_code(),
        Some(
            RDKafkaErrorCode::Authentication
                | RDKafkaErrorCode::SaslAuthenticationFailed
                | RDKafkaErrorCode::TopicAuthorizationFailed
                | RDKafkaErrorCode::GroupAuthorizationFailed
                | RDKafkaErrorCode::ClusterAuthorizationFailed
                | RDKafkaErrorCode::Fatal
        )
    )
}

/// A subscription to Kafka topics in a consumer group. Dropping it commits what was
/// processed and closes the consumer; its partitions go to the group's other members at
/// the next rebalance (at most the 10 s session timeout).
pub struct KafkaSubscription {
    consumer: StreamConsumer<Rebalances>,
    /// The subscribed names, so deliveries share them instead of allocating.
    topics: Vec<Arc<str>>,
    /// The next offset to read per partition, after what was processed.
    processed: HashMap<(Arc<str>, i32), i64>,
    /// Partitions revoked by rebalances, not yet taken by the subscriber.
    revoked: Pending,
    /// Partitions assigned by rebalances, not yet taken by the subscriber.
    assigned: Pending,
}

impl Drop for KafkaSubscription {
    fn drop(&mut self) {
        if !self.processed.is_empty() {
            let mut tpl = TopicPartitionList::new();
            for ((topic, partition), next) in &self.processed {
                let _ = tpl.add_partition_offset(topic, *partition, Offset::Offset(*next));
            }
            if let Err(e) = self.consumer.commit(&tpl, CommitMode::Sync) {
                tracing::warn!(error = %e, "Committing on close failed; the group re-reads from its last commit");
            }
        }
        // rdkafka's own drop then closes the consumer, which leaves the group.
    }
}

impl std::fmt::Debug for KafkaSubscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaSubscription")
            .field("topics", &self.topics)
            .finish_non_exhaustive()
    }
}

impl KafkaSubscription {
    /// The subscription's shared name for `topic`, so deliveries need not allocate one.
    fn shared_name(&self, topic: &str) -> Arc<str> {
        self.topics
            .iter()
            .find(|t| ***t == *topic)
            .cloned()
            .unwrap_or_else(|| Arc::from(topic))
    }

    fn delivery(&self, m: &BorrowedMessage<'_>) -> Delivery {
        Delivery {
            record: record_of(self.shared_name(m.topic()), m),
            partition: m.partition(),
            offset: m.offset(),
        }
    }

    /// Empties `pending`, naming the topics with the subscription's shared names.
    fn take(&self, pending: &Pending) -> Vec<(Arc<str>, i32)> {
        let taken = std::mem::take(
            &mut *pending
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        taken
            .into_iter()
            .map(|(topic, partition)| (self.shared_name(&topic), partition))
            .collect()
    }
}

/// A consumed message as a bus record on `topic`.
fn record_of(topic: Arc<str>, m: &BorrowedMessage<'_>) -> Record {
    Record::new(
        &topic,
        Bytes::copy_from_slice(m.key().unwrap_or_default()),
        Bytes::copy_from_slice(m.payload().unwrap_or_default()),
        m.timestamp().to_millis().unwrap_or(0),
    )
}

impl Subscription for KafkaSubscription {
    async fn recv_many(
        &mut self,
        buf: &mut Vec<Delivery>,
        limit: usize,
    ) -> Result<usize, BusError> {
        // Transient errors (a broker restarting, a connection lost) are logged and
        // waited out: librdkafka reconnects and resumes from the stored offsets.
        let first = loop {
            match self.consumer.recv().await {
                Ok(m) => break m,
                Err(e) if is_fatal(&e) => return Err(backend("consuming", e)),
                Err(e) => tracing::warn!(error = %e, "Kafka consumer error; retrying"),
            }
        };
        buf.push(self.delivery(&first));
        drop(first);
        let mut n = 1;
        // Whatever else is already waiting, without waiting for more.
        while n < limit {
            match self.consumer.recv().now_or_never() {
                Some(Ok(m)) => {
                    buf.push(self.delivery(&m));
                    n += 1;
                }
                Some(Err(e)) => {
                    tracing::warn!(error = %e, "Kafka consumer error");
                    break;
                }
                None => break,
            }
        }
        Ok(n)
    }

    fn take_revoked(&mut self) -> Vec<(Arc<str>, i32)> {
        let revoked = Arc::clone(&self.revoked);
        self.take(&revoked)
    }

    fn take_assigned(&mut self) -> Vec<(Arc<str>, i32)> {
        let assigned = Arc::clone(&self.assigned);
        self.take(&assigned)
    }

    fn commit(&mut self, delivery: &Delivery) -> Result<(), BusError> {
        // Stores offset + 1 (the next to read); librdkafka's auto-commit writes it.
        self.consumer
            .store_offset(&delivery.record.topic, delivery.partition, delivery.offset)
            .map_err(|e| backend("storing the offset", e))?;
        let next = self
            .processed
            .entry((Arc::clone(&delivery.record.topic), delivery.partition))
            .or_insert(0);
        *next = (*next).max(delivery.offset + 1);
        Ok(())
    }
}
