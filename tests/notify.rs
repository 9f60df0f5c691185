//! Webhook notifications on a real broker (tansu, from `scripts/test.sh`), to a
//! receiver written in Python that checks each signature with Python's own `hmac`:
//! the receiver is down for a minute, then fails the first attempts; every alert
//! raised and cleared still arrives, signed, with its idempotency key; updates and
//! alerts below the severity asked are not sent; one the receiver refuses (400) is a
//! dead letter and the next ones go on; a notifier killed (`kill -9`) and started again
//! sends what came meanwhile.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use serde_json::Value;
use streamcity_core::{
    Alert, AlertKind, AlertState, Bus, Record, Severity, SubjectKind, Topics, encode,
};
use streamcity_kafka::{KafkaBus, KafkaConfig};
use streamcity_testkit::broker::test_brokers as brokers;
use streamcity_testkit::stage::{Binary, free_port, http_get, metric, unique};

const SECRET: &str = "webhook-secret-for-the-test";

fn alert(id: &str, state: AlertState, severity: Severity) -> Alert {
    let now = streamcity_core::clock::wall_clock_ms();
    Alert {
        alert_id: id.into(),
        kind: AlertKind::Breakdown,
        state,
        severity,
        subject_kind: SubjectKind::Vehicle,
        subject_id: "B01-001".into(),
        lat: Some(40.7),
        lon: Some(-74.0),
        window_start: now,
        window_end: now,
        raised_at: now,
        timestamp: now,
        message: format!("{id} {state:?}"),
        action: "Send a mechanic".into(),
        evidence: Default::default(),
        acknowledged: None,
        muted_until: None,
    }
}

/// A receiver process, killed when dropped (a failing test leaves none behind).
struct Receiver(Child);

impl Drop for Receiver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The Python receiver on `port`, logging to `log`; fails the first `fail_first`.
fn receiver(port: u16, fail_first: u32, log: &std::path::Path) -> Receiver {
    let python = std::env::var("STREAMCITY_PYTHON").unwrap_or_else(|_| "python3".into());
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/support/webhook_receiver.py"
    );
    let child = Command::new(&python)
        .args([
            script,
            &port.to_string(),
            SECRET,
            &fail_first.to_string(),
            log.to_str().unwrap(),
        ])
        .spawn()
        .unwrap_or_else(|e| panic!("the webhook receiver needs Python ({python}): {e}"));
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "the receiver did not start");
        std::thread::sleep(Duration::from_millis(100));
    }
    Receiver(child)
}

/// The requests the receiver logged.
fn logged(log: &std::path::Path) -> Vec<Value> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Waits (up to `secs`) until the receiver has answered 200 to every key in `keys`;
/// fails with what `notifier` printed otherwise.
fn delivered(
    log: &std::path::Path,
    keys: &BTreeSet<String>,
    secs: u64,
    notifier: &streamcity_testkit::stage::Running,
) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let got = logged(log);
        let ok: BTreeSet<String> = got
            .iter()
            .filter(|r| r["status"] == 200)
            .map(|r| r["key"].as_str().unwrap().to_owned())
            .collect();
        if keys.is_subset(&ok) {
            return got;
        }
        assert!(
            Instant::now() < deadline,
            "not all delivered within {secs} s: missing {:?}; the receiver saw {got:?}; the notifier printed:\n{}\n{}",
            keys.difference(&ok).collect::<Vec<_>>(),
            notifier.printed(),
            http_get(notifier.metrics_port(), "/metrics").1
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_alert_reaches_a_webhook_that_was_down_signed_once_per_key() {
    let prefix = unique("notify");
    let topics = Topics::with_prefix(&prefix);
    let bus = KafkaBus::connect(KafkaConfig::new(brokers()))
        .await
        .unwrap();
    bus.ensure_topics(&topics).await.unwrap();
    let port = free_port();
    let log = std::env::temp_dir().join(format!("{prefix}webhook.jsonl"));
    let bin = Binary::new(env!("CARGO_BIN_EXE_streamcity"))
        .env("KAFKA_BOOTSTRAP_SERVERS", brokers())
        .env("STREAMCITY_TOPIC_PREFIX", &prefix)
        .env("STREAMCITY_WEBHOOK_SECRET", SECRET);
    let webhook = format!("http://127.0.0.1:{port}/hook");
    let args = [
        "notify",
        "--webhook",
        &webhook,
        "--min-severity",
        "moderate",
        "--webhook-max-backoff",
        "4",
        "--port",
        "0",
    ];
    let notifier = bin.start(&args);
    // A new group starts from the latest alerts: once it has joined.
    notifier.wait_for("Partitions assigned", Duration::from_secs(60));

    // Alerts while the receiver is down: raised, updated, cleared; one too mild; one
    // the receiver will refuse.
    let publish = |a: Alert| {
        let bus = bus.clone();
        let topic = topics.alerts.clone();
        async move {
            bus.publish(Record::new(
                &topic,
                a.alert_id.to_string(),
                encode(&a),
                a.timestamp,
            ))
            .await
            .unwrap();
        }
    };
    // A new group starts from the latest alerts once its position is known: mild
    // alerts (not sent, counted as skipped) until it has read one.
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut probe = 0;
    while metric(
        &http_get(notifier.metrics_port(), "/metrics").1,
        "streamcity_notify_skipped_total",
    ) < 1.0
    {
        assert!(
            Instant::now() < deadline,
            "the notifier reads no alerts: {}",
            notifier.printed()
        );
        probe += 1;
        publish(alert(
            &format!("probe:{probe}"),
            AlertState::Raised,
            Severity::Low,
        ))
        .await;
        bus.flush().await.unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let mut expected = BTreeSet::new();
    for i in 0..4 {
        let id = format!("breakdown:B01-00{i}:1");
        publish(alert(&id, AlertState::Raised, Severity::High)).await;
        publish(alert(&id, AlertState::Updated, Severity::High)).await;
        expected.insert(format!("{id}/raised"));
        if i % 2 == 0 {
            publish(alert(&id, AlertState::Cleared, Severity::High)).await;
            expected.insert(format!("{id}/cleared"));
        }
    }
    publish(alert("breakdown:mild:1", AlertState::Raised, Severity::Low)).await;
    publish(alert(
        "reject:B02-001:1",
        AlertState::Raised,
        Severity::High,
    ))
    .await;
    publish(alert(
        "breakdown:after-reject:1",
        AlertState::Raised,
        Severity::High,
    ))
    .await;
    expected.insert("breakdown:after-reject:1/raised".into());
    bus.flush().await.unwrap();

    // Down for a minute, then up and failing its first two answers.
    std::thread::sleep(Duration::from_secs(60));
    let up = receiver(port, 2, &log);
    let got = delivered(&log, &expected, 60, &notifier);
    // Signed, keyed as said, and nothing not asked for.
    assert!(got.iter().all(|r| r["signed"] == true), "{got:?}");
    assert!(got.iter().all(|r| r["key"] == r["body_key"]), "{got:?}");
    assert_eq!(
        got.iter().filter(|r| r["status"] == 503).count(),
        2,
        "{got:?}"
    );
    let sent: BTreeSet<&str> = got.iter().map(|r| r["key"].as_str().unwrap()).collect();
    assert!(
        !sent
            .iter()
            .any(|k| k.contains("mild") || k.ends_with("/updated")),
        "{sent:?}"
    );
    let delivered_keys: Vec<&str> = got
        .iter()
        .filter(|r| r["status"] == 200)
        .map(|r| r["key"].as_str().unwrap())
        .collect();
    assert_eq!(
        delivered_keys.len(),
        expected.len(),
        "each delivered once: {delivered_keys:?}"
    );
    let (_, page) = http_get(notifier.metrics_port(), "/metrics");
    assert_eq!(
        metric(&page, "streamcity_notify_dead_letters_total"),
        1.0,
        "{page}"
    );
    assert!(
        metric(&page, "streamcity_notify_retries_total") >= 3.0,
        "{page}"
    );
    assert_eq!(
        metric(&page, "streamcity_notify_delivered_total"),
        expected.len() as f64,
        "{page}"
    );

    // Killed, alerts published meanwhile, started again: they arrive.
    notifier.kill();
    let mut more = BTreeSet::new();
    for i in 0..3 {
        let id = format!("breakdown:B09-00{i}:1");
        publish(alert(&id, AlertState::Raised, Severity::Critical)).await;
        more.insert(format!("{id}/raised"));
    }
    bus.flush().await.unwrap();
    let again = bin.start(&args);
    again.wait_for("Partitions assigned", Duration::from_secs(60));
    let got = delivered(&log, &more, 60, &again);
    assert!(got.iter().all(|r| r["signed"] == true));
    again.stop();
    drop(up);
    let _ = std::fs::remove_file(&log);
}
