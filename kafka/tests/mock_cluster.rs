//! The Kafka bus against librdkafka's built-in mock cluster: fast, no broker to
//! install. The mock does not answer admin requests, so topic creation is tested
//! against a real Kafka-protocol broker.

#![allow(clippy::unwrap_used)]

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use rdkafka::mocking::MockCluster;
use streamcity_core::{Bus, Delivery, Record, StartFrom, Subscribe, Subscription};
use streamcity_kafka::{KafkaBus, KafkaConfig};

fn unique(prefix: &str) -> String {
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    )
}

async fn receive(sub: &mut impl Subscription, n: usize) -> Vec<Delivery> {
    let mut got = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while got.len() < n {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        match tokio::time::timeout(left, sub.recv_many(&mut got, 1000)).await {
            Ok(r) => {
                r.unwrap();
            }
            Err(_) => panic!("only {} of {n} records within 30 s", got.len()),
        }
    }
    got
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_round_trip_with_keys_partitions_and_order() {
    let cluster = MockCluster::new(1).unwrap();
    let topic: Arc<str> = Arc::from(unique("round-trip"));
    cluster.create_topic(&topic, 6, 1).unwrap();
    let bus = KafkaBus::connect(KafkaConfig::new(cluster.bootstrap_servers()))
        .await
        .unwrap();
    let keys = ["B01-001", "B02-007", "S0042", "TI-000001", "R1-003"];
    for n in 0..500u64 {
        let key = keys[(n % 5) as usize];
        bus.publish(Record::new(
            &topic,
            key.to_owned(),
            Bytes::from(format!("{{\"n\":{n}}}")),
            1_763_884_800_000 + n as i64,
        ))
        .await
        .unwrap();
    }
    bus.flush().await.unwrap();
    assert_eq!(bus.stats().delivered.load(Ordering::Relaxed), 500);
    assert_eq!(bus.stats().failed.load(Ordering::Relaxed), 0);

    let mut sub = bus
        .subscribe(Subscribe::new(unique("group"), &[&topic]).from(StartFrom::Earliest))
        .await
        .unwrap();
    let got = receive(&mut sub, 500).await;
    assert_eq!(got.len(), 500);
    let mut per_key: HashMap<Bytes, Vec<i64>> = HashMap::new();
    let mut partitions: HashMap<Bytes, HashSet<i32>> = HashMap::new();
    for d in &got {
        assert_eq!(d.record.topic, topic);
        per_key
            .entry(d.record.key.clone())
            .or_default()
            .push(d.record.timestamp);
        partitions
            .entry(d.record.key.clone())
            .or_default()
            .insert(d.partition);
    }
    for (key, times) in &per_key {
        assert_eq!(times.len(), 100);
        assert!(
            times.windows(2).all(|w| w[0] < w[1]),
            "order broken for {key:?}"
        );
        assert_eq!(partitions[key].len(), 1, "{key:?} spread over partitions");
    }
    let used: HashSet<i32> = partitions.values().flatten().copied().collect();
    assert!(used.len() >= 2, "five keys all in one partition: {used:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_partitioned_by_a_line_go_where_the_memory_bus_puts_them() {
    let cluster = MockCluster::new(1).unwrap();
    let topic: Arc<str> = Arc::from(unique("by-line"));
    cluster.create_topic(&topic, 6, 1).unwrap();
    let bus = KafkaBus::connect(KafkaConfig::new(cluster.bootstrap_servers()))
        .await
        .unwrap();
    // Vehicles of three lines, keyed by vehicle, partitioned by line.
    let lines = ["B01", "B02", "T1"];
    for n in 0..300u64 {
        let line = lines[(n % 3) as usize];
        let vehicle = format!("{line}-{:03}", n % 30);
        bus.publish(
            Record::new(&topic, vehicle, Bytes::from(n.to_string()), n as i64)
                .partitioned_by(line.as_bytes()),
        )
        .await
        .unwrap();
    }
    bus.flush().await.unwrap();
    let mut sub = bus
        .subscribe(Subscribe::new(unique("group"), &[&topic]).from(StartFrom::Earliest))
        .await
        .unwrap();
    let got = receive(&mut sub, 300).await;
    for d in &got {
        let key = d.record.key_str();
        let line = key.split('-').next().unwrap();
        let expected = streamcity_core::bus::partition_for(line.as_bytes(), 6) as i32;
        assert_eq!(d.partition, expected, "{key} not in its line's partition");
    }
    let published: u64 = bus.published().iter().map(|(_, n)| n).sum();
    assert_eq!(published, 300);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_resumes_after_what_it_committed() {
    let cluster = MockCluster::new(1).unwrap();
    let topic: Arc<str> = Arc::from(unique("resume"));
    cluster.create_topic(&topic, 1, 1).unwrap();
    let bus = KafkaBus::connect(KafkaConfig::new(cluster.bootstrap_servers()))
        .await
        .unwrap();
    for n in 0..200 {
        bus.publish(Record::new(
            &topic,
            "k",
            Bytes::from(n.to_string()),
            1_763_884_800_000 + n,
        ))
        .await
        .unwrap();
    }
    bus.flush().await.unwrap();

    let group = unique("group");
    {
        let mut sub = bus
            .subscribe(Subscribe::new(group.clone(), &[&topic]).from(StartFrom::Earliest))
            .await
            .unwrap();
        let got = receive(&mut sub, 200).await;
        // Only the first 120 were processed.
        for d in &got[..120] {
            sub.commit(d).unwrap();
        }
        // Closing the subscription commits what was processed and leaves the group.
        drop(sub);
    }
    let mut again = bus
        .subscribe(Subscribe::new(group, &[&topic]).from(StartFrom::Earliest))
        .await
        .unwrap();
    let got = receive(&mut again, 80).await;
    let first: i64 = std::str::from_utf8(&got[0].record.payload)
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(first, 120, "resumed after the last commit");
    assert_eq!(got[0].offset, 120);
}

#[tokio::test]
async fn existing_topics_are_left_alone() {
    // The mock answers metadata but not admin requests: with every topic there, none
    // is made.
    let cluster = MockCluster::new(1).unwrap();
    let topics = streamcity_core::Topics::with_prefix(&format!("{}-", unique("t")));
    for t in topics.all() {
        let partitions = if *t == topics.network { 1 } else { 3 };
        cluster.create_topic(t, partitions, 1).unwrap();
    }
    let bus = KafkaBus::connect(KafkaConfig::new(cluster.bootstrap_servers()))
        .await
        .unwrap();
    tokio::time::timeout(Duration::from_secs(5), bus.ensure_topics(&topics))
        .await
        .expect("no admin request")
        .unwrap();
}

#[tokio::test]
async fn a_network_topic_with_several_partitions_is_refused_clearly() {
    let cluster = MockCluster::new(1).unwrap();
    let topics = streamcity_core::Topics::with_prefix(&format!("{}-", unique("n")));
    for t in topics.all() {
        cluster.create_topic(t, 3, 1).unwrap();
    }
    let bus = KafkaBus::connect(KafkaConfig::new(cluster.bootstrap_servers()))
        .await
        .unwrap();
    let err = tokio::time::timeout(Duration::from_secs(5), bus.ensure_topics(&topics))
        .await
        .expect("no admin request")
        .unwrap_err()
        .to_string();
    assert!(err.contains("exactly one"), "{err}");
}

#[tokio::test]
async fn unreachable_brokers_are_retried_then_reported_clearly() {
    // A port nothing listens on.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let mut config = KafkaConfig::new(addr.to_string());
    config.connect_attempts = 2;
    config.connect_backoff = Duration::from_millis(10);
    let err = KafkaBus::connect(config).await.unwrap_err().to_string();
    assert!(
        err.contains(&addr.to_string()) && err.contains("after 2 attempts"),
        "{err}"
    );
}
