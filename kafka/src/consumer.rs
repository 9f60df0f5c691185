//! Consuming: consumer groups whose offsets are committed only once the subscriber has
//! processed a record (stored on commit, written by librdkafka's auto-commit), broker
//! outages waited out, and the partitions rebalances revoke and assign reported.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use futures_util::FutureExt;
use rdkafka::client::ClientContext;
use rdkafka::consumer::{CommitMode, Consumer, ConsumerContext, Rebalance, StreamConsumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{BorrowedMessage, Message};
use rdkafka::{Offset, TopicPartitionList};
use streamcity_core::{BusError, Delivery, Record, StartFrom, Subscribe, Subscription};

use crate::{KafkaConfig, backend};

/// Logs partition assignments, so that a rebalance is visible, and notes the revoked
/// partitions for the subscriber.
struct Rebalances {
    revoked: Pending,
    assigned: Pending,
    /// Between a rebalance's revocation and its assignment: the revoked partitions are
    /// not handed to the subscriber yet, since the assignment may give them back (then
    /// their state stays where it is).
    in_rebalance: std::sync::atomic::AtomicBool,
}

/// Partitions named by a rebalance, waiting for the subscriber.
type Pending = Arc<std::sync::Mutex<Vec<(String, i32)>>>;

/// Notes the partitions of `tpl` in `pending`, unless the subscriber has not yet taken
/// the opposite news of one in `opposite`: then the two cancel out. A partition revoked
/// and assigned again in one rebalance is kept (its state stays where it is); one
/// assigned and revoked before the subscriber looked was never its.
fn note(pending: &Pending, opposite: &Pending, tpl: &TopicPartitionList) {
    let mut pending = pending
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let mut opposite = opposite
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    for e in tpl.elements() {
        let named = (e.topic().to_owned(), e.partition());
        match opposite.iter().position(|p| *p == named) {
            Some(i) => {
                opposite.swap_remove(i);
            }
            None => pending.push(named),
        }
    }
}

impl ClientContext for Rebalances {
    fn log(&self, level: rdkafka::config::RDKafkaLogLevel, fac: &str, log_message: &str) {
        crate::logs::log(level, fac, log_message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        crate::logs::error(&error, reason);
    }
}

impl ConsumerContext for Rebalances {
    fn pre_rebalance(
        &self,
        _consumer: &rdkafka::consumer::BaseConsumer<Self>,
        rebalance: &Rebalance<'_>,
    ) {
        if let Rebalance::Revoke(tpl) = rebalance {
            self.in_rebalance
                .store(true, std::sync::atomic::Ordering::SeqCst);
            note(&self.revoked, &self.assigned, tpl);
        }
    }

    fn post_rebalance(
        &self,
        _consumer: &rdkafka::consumer::BaseConsumer<Self>,
        rebalance: &Rebalance<'_>,
    ) {
        match rebalance {
            Rebalance::Assign(tpl) => {
                note(&self.assigned, &self.revoked, tpl);
                self.in_rebalance
                    .store(false, std::sync::atomic::Ordering::SeqCst);
                tracing::info!(partitions = tpl.count(), "Partitions assigned")
            }
            Rebalance::Revoke(tpl) => {
                tracing::info!(partitions = tpl.count(), "Partitions revoked")
            }
            Rebalance::Error(e) => {
                self.in_rebalance
                    .store(false, std::sync::atomic::Ordering::SeqCst);
                tracing::warn!(error = %e, "Rebalance failed")
            }
        }
    }
}

/// Subscribes to `spec` with a consumer of its own.
pub(crate) fn subscribe(
    config: &KafkaConfig,
    spec: Subscribe,
) -> Result<KafkaSubscription, BusError> {
    let mut c = config.client_config();
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
    let (revoked, assigned) = (Pending::default(), Pending::default());
    let consumer: StreamConsumer<Rebalances> = config
        .overridden(c)
        .create_with_context(Rebalances {
            revoked: Arc::clone(&revoked),
            assigned: Arc::clone(&assigned),
            in_rebalance: std::sync::atomic::AtomicBool::new(false),
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
        handed: Handed::default(),
    })
}

/// Whether a consumer error ends the subscription: librdkafka's fatal errors and
/// failures that waiting will not fix (credentials, permissions). Everything else, such
/// as all brokers being down for a moment, is retried.
pub(crate) fn is_fatal(e: &KafkaError) -> bool {
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
    /// What was handed to the subscriber, so that nothing is handed twice.
    handed: Handed,
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
    /// Empties `pending`, naming the topics with the subscription's shared names.
    fn take(&self, pending: &Pending) -> Vec<(Arc<str>, i32)> {
        let taken = std::mem::take(
            &mut *pending
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        taken
            .into_iter()
            .map(|(topic, partition)| (shared_name(&self.topics, &topic), partition))
            .collect()
    }
}

/// The subscription's shared name for `topic` (one of `topics`), so deliveries need not
/// allocate one.
fn shared_name(topics: &[Arc<str>], topic: &str) -> Arc<str> {
    topics
        .iter()
        .find(|t| ***t == *topic)
        .cloned()
        .unwrap_or_else(|| Arc::from(topic))
}

/// A consumed message as a bus record on `topic`.
pub(crate) fn record_of(topic: Arc<str>, m: &BorrowedMessage<'_>) -> Record {
    Record::new(
        &topic,
        Bytes::copy_from_slice(m.key().unwrap_or_default()),
        Bytes::copy_from_slice(m.payload().unwrap_or_default()),
        m.timestamp().to_millis().unwrap_or(0),
    )
}

/// What a subscription has handed over per partition.
#[derive(Default)]
struct Handed {
    /// The next offset to hand over per partition held: a partition that stays this
    /// consumer's is never handed a record twice, even when librdkafka fetches from an
    /// earlier offset (a broker restart that lost the group, auto-commit behind).
    next: HashMap<(Arc<str>, i32), i64>,
    /// Partitions being re-read up to what was already handed over, logged once each.
    skipping: std::collections::HashSet<(Arc<str>, i32)>,
}

impl Handed {
    /// `m` (on `topic`) as a delivery, or `None` when its partition was already handed it.
    fn delivery(&mut self, topic: Arc<str>, m: &BorrowedMessage<'_>) -> Option<Delivery> {
        let at = (Arc::clone(&topic), m.partition());
        let next = self.next.entry(at.clone()).or_insert(0);
        if m.offset() < *next {
            if self.skipping.insert(at) {
                tracing::info!(
                    topic = %topic,
                    partition = m.partition(),
                    from = m.offset(),
                    to = *next,
                    "Kafka re-sends records this consumer already handed over (its position was lost); skipping them"
                );
            }
            return None;
        }
        *next = m.offset() + 1;
        self.skipping.remove(&at);
        Some(Delivery {
            record: record_of(Arc::clone(&topic), m),
            partition: m.partition(),
            offset: m.offset(),
        })
    }

    /// Forgets `partitions`: the subscriber let them go, and reads them again from the
    /// committed offset if they come back.
    fn release(&mut self, partitions: &[(Arc<str>, i32)]) {
        for p in partitions {
            self.next.remove(p);
            self.skipping.remove(p);
        }
    }
}

impl Subscription for KafkaSubscription {
    async fn recv_many(
        &mut self,
        buf: &mut Vec<Delivery>,
        limit: usize,
    ) -> Result<usize, BusError> {
        // Transient errors (a broker restarting, a connection lost) are logged and
        // waited out: librdkafka reconnects and resumes from the stored offsets.
        let before = buf.len();
        let mut n = 0;
        while n == 0 {
            let first = loop {
                match self.consumer.recv().await {
                    Ok(m) => break m,
                    Err(e) if is_fatal(&e) => return Err(backend("consuming", e)),
                    Err(e) => tracing::warn!(error = %e, "Kafka consumer error; retrying"),
                }
            };
            let topic = shared_name(&self.topics, first.topic());
            buf.extend(self.handed.delivery(topic, &first));
            drop(first);
            n = buf.len() - before;
            // Whatever else is already waiting, without waiting for more.
            while n < limit {
                match self.consumer.recv().now_or_never() {
                    Some(Ok(m)) => {
                        let topic = shared_name(&self.topics, m.topic());
                        buf.extend(self.handed.delivery(topic, &m));
                        n = buf.len() - before;
                    }
                    Some(Err(e)) => {
                        tracing::warn!(error = %e, "Kafka consumer error");
                        break;
                    }
                    None => break,
                }
            }
        }
        Ok(n)
    }

    fn take_revoked(&mut self) -> Vec<(Arc<str>, i32)> {
        if self
            .consumer
            .context()
            .in_rebalance
            .load(std::sync::atomic::Ordering::SeqCst)
        {
            return Vec::new(); // the assignment to come may give them back
        }
        let revoked = Arc::clone(&self.revoked);
        let revoked = self.take(&revoked);
        self.handed.release(&revoked);
        revoked
    }

    fn take_assigned(&mut self) -> Vec<(Arc<str>, i32)> {
        let assigned = Arc::clone(&self.assigned);
        self.take(&assigned)
    }

    fn commit_at(&mut self, topic: &Arc<str>, partition: i32, offset: i64) -> Result<(), BusError> {
        // Stores offset + 1 (the next to read); librdkafka's auto-commit writes it.
        self.consumer
            .store_offset(topic, partition, offset)
            .map_err(|e| backend("storing the offset", e))?;
        let next = self
            .processed
            .entry((Arc::clone(topic), partition))
            .or_insert(0);
        *next = (*next).max(offset + 1);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tpl(partitions: &[i32]) -> TopicPartitionList {
        let mut tpl = TopicPartitionList::new();
        for &p in partitions {
            tpl.add_partition("t", p);
        }
        tpl
    }

    fn taken(p: &Pending) -> Vec<i32> {
        let mut v: Vec<i32> = p.lock().unwrap().drain(..).map(|(_, n)| n).collect();
        v.sort_unstable();
        v
    }

    #[test]
    fn a_partition_revoked_and_assigned_again_before_the_subscriber_looks_is_kept() {
        let (revoked, assigned) = (Pending::default(), Pending::default());
        // Held 0..4; a rebalance takes them all back and gives 0 and 1 again.
        note(&revoked, &assigned, &tpl(&[0, 1, 2, 3]));
        note(&assigned, &revoked, &tpl(&[0, 1]));
        assert_eq!(taken(&revoked), vec![2, 3]);
        assert_eq!(taken(&assigned), Vec::<i32>::new());
        // Given 5, then taken back before the subscriber saw it: never its.
        note(&assigned, &revoked, &tpl(&[5]));
        note(&revoked, &assigned, &tpl(&[5]));
        assert_eq!((taken(&revoked), taken(&assigned)), (vec![], vec![]));
    }
}
