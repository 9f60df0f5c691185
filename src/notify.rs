//! Webhook notifications: every alert raised and cleared (of the kinds and severities
//! asked for) is POSTed as JSON to a webhook, signed with HMAC-SHA256, at least once.
//!
//! - **Signed.** `X-StreamCity-Signature: sha256=<hex>` is the HMAC-SHA256 of the exact
//!   body with the shared secret; the receiver recomputes it.
//! - **At least once, with a key.** `Idempotency-Key: <alert id>/<raised|cleared>` (also
//!   in the body): a receiver that has seen the key drops the repeat. The alert's
//!   offset is committed only once the webhook took it (2xx) or it was given up, so a
//!   notifier killed meanwhile sends it again.
//! - **From the beginning, within an hour.** The group reads the alerts topic from its
//!   beginning when it has no committed offsets, so that nothing published while it
//!   joins (or while it was down, in a partition it never committed) is lost; alerts
//!   more than `max_age` older than the newest one on the topic at start are skipped.
//! - **Retried.** A connection error, a timeout, 408, 429 or 5xx is retried after 1 s,
//!   2 s, 4 s... up to `max_backoff` (a `Retry-After` is honoured within it), for up to
//!   `give_up_after`; another 4xx, or that long without success, is a dead letter:
//!   logged and counted (`streamcity_notify_dead_letters_total`). Alerts go out one at
//!   a time, in order.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use hmac::{Hmac, KeyInit, Mac};
use serde_json::json;
use sha2::Sha256;
use streamcity_core::membership::Membership;
use streamcity_core::{
    Alert, AlertKind, AlertState, Bus, BusError, CancellationToken, Severity, Subscribe,
    Subscription, decode_valid, wire_name,
};
use streamcity_dashboard::metrics::Sample;

/// The consumer group of notifiers (behind the topic prefix): its committed offsets say
/// which alerts have been sent.
pub const GROUP: &str = "streamcity-notify";

/// Where and what to notify.
#[derive(Debug, Clone)]
pub struct NotifyConfig {
    /// The webhook.
    pub webhook: reqwest::Url,
    /// The shared secret the bodies are signed with.
    pub secret: String,
    /// The kinds of alert sent (empty: every kind).
    pub kinds: Vec<AlertKind>,
    /// The least severity sent.
    pub min_severity: Severity,
    /// The longest wait between two attempts.
    pub max_backoff: Duration,
    /// How long an alert is retried before it is a dead letter.
    pub give_up_after: Duration,
    /// How long one attempt may take.
    pub timeout: Duration,
    /// Alerts older than this (event time) than the newest alert on the topic when the
    /// notifier starts are not sent: a notifier reads the topic from its beginning the
    /// first time (so that nothing published while it joins is lost) and must not page
    /// anyone about last week.
    pub max_age: Duration,
}

impl NotifyConfig {
    /// Notifications of every alert to `webhook`, signed with `secret`.
    pub fn new(webhook: reqwest::Url, secret: String) -> Self {
        NotifyConfig {
            webhook,
            secret,
            kinds: Vec::new(),
            min_severity: Severity::Low,
            max_backoff: Duration::from_secs(30),
            give_up_after: Duration::from_secs(3600),
            timeout: Duration::from_secs(10),
            max_age: Duration::from_secs(3600),
        }
    }

    /// Whether `alert` is one to send.
    pub fn wants(&self, alert: &Alert) -> bool {
        alert.state != AlertState::Updated
            && alert.severity >= self.min_severity
            && (self.kinds.is_empty() || self.kinds.contains(&alert.kind))
    }
}

/// What the notifier has done.
#[derive(Debug, Default)]
pub struct NotifyStats {
    /// Notifications the webhook took.
    pub delivered: AtomicU64,
    /// Attempts made (first tries and retries).
    pub attempts: AtomicU64,
    /// Attempts that failed and were retried.
    pub retries: AtomicU64,
    /// Notifications given up (a 4xx, or retried too long).
    pub dead_letters: AtomicU64,
    /// Alerts not sent: updates, other kinds, lower severities, unreadable records.
    pub skipped: AtomicU64,
}

impl NotifyStats {
    /// The counters as metrics.
    pub fn metrics(&self) -> Vec<Sample> {
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        vec![
            Sample::counter(
                "streamcity_notify_delivered",
                "Notifications the webhook took (2xx)",
                &[],
                load(&self.delivered),
            ),
            Sample::counter(
                "streamcity_notify_attempts",
                "Requests made to the webhook",
                &[],
                load(&self.attempts),
            ),
            Sample::counter(
                "streamcity_notify_retries",
                "Requests that failed and were retried",
                &[],
                load(&self.retries),
            ),
            Sample::counter(
                "streamcity_notify_dead_letters",
                "Notifications given up: refused (4xx) or failing for too long",
                &[],
                load(&self.dead_letters),
            ),
            Sample::counter(
                "streamcity_notify_skipped",
                "Alert records not sent (updates, kinds and severities not asked for)",
                &[],
                load(&self.skipped),
            ),
        ]
    }
}

/// The body of the notification of `alert`, and its idempotency key.
pub fn body(alert: &Alert, sent_at: i64) -> (Vec<u8>, String) {
    let key = format!("{}/{}", alert.alert_id, wire_name(&alert.state));
    let body = json!({
        "event": format!("alert.{}", wire_name(&alert.state)),
        "idempotency_key": key,
        "sent_at": sent_at,
        "alert": alert,
    });
    (body.to_string().into_bytes(), key)
}

/// `sha256=<hex>`: the HMAC-SHA256 of `body` with `secret`.
pub fn signature(secret: &str, body: &[u8]) -> String {
    // HMAC takes a key of any length.
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret.as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
    mac.update(body);
    let digest = mac.finalize().into_bytes();
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256={hex}")
}

/// How an attempt ended.
enum Attempt {
    Delivered,
    /// Worth another try, after at least this long (a `Retry-After`), if given.
    Retry(String, Option<Duration>),
    Refused(String),
}

/// Sends the alerts of the subscription `spec` on `bus` to the webhook until `stop`;
/// commits each once sent or given up. A member left with no partitions joins its
/// group again (see [`Membership`]).
pub async fn run<B: Bus>(
    bus: &B,
    spec: Subscribe,
    config: NotifyConfig,
    stats: Arc<NotifyStats>,
    stop: CancellationToken,
) -> Result<(), BusError> {
    let horizon = newest_alert(bus, &spec)
        .await?
        .map(|t| t.saturating_sub(i64::try_from(config.max_age.as_millis()).unwrap_or(i64::MAX)));
    let mut sub = bus.subscribe(spec.clone()).await?;
    let mut membership = Membership::new(bus.keeps_records());
    let mut watch = tokio::time::interval(Duration::from_secs(1));
    let client = reqwest::Client::builder()
        .timeout(config.timeout)
        .user_agent(concat!("streamcity-notify/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| BusError::Backend(format!("cannot make an HTTP client: {e}")))?;
    let mut batch = Vec::new();
    loop {
        let got = tokio::select! {
            got = sub.recv_many(&mut batch, 64) => got?,
            _ = watch.tick() => {
                membership.note(&mut sub);
                if membership.should_rejoin() {
                    tracing::warn!("No partitions of the alerts: leaving the consumer group and joining it afresh");
                    drop(sub);
                    sub = bus.subscribe(spec.clone()).await?;
                }
                continue;
            }
            _ = stop.cancelled() => return Ok(()),
        };
        if got == 0 {
            return Ok(());
        }
        membership.note(&mut sub);
        membership.delivered();
        for delivery in batch.drain(..) {
            match decode_valid::<Alert>(&delivery.record.payload) {
                Ok(alert)
                    if config.wants(&alert) && horizon.is_none_or(|h| alert.timestamp >= h) =>
                {
                    if !send(&client, &config, &alert, &stats, &stop).await {
                        // Stopped before it was sent: not committed, sent after a restart.
                        return Ok(());
                    }
                }
                _ => {
                    stats.skipped.fetch_add(1, Ordering::Relaxed);
                }
            }
            sub.commit(&delivery)?;
        }
    }
}

/// The event time of the newest alert on the topics of `spec` (the last record of each
/// partition), if any.
async fn newest_alert<B: Bus>(bus: &B, spec: &Subscribe) -> Result<Option<i64>, BusError> {
    let mut newest = None;
    for topic in &spec.topics {
        for (p, &end) in bus.end_offsets(topic).await?.iter().enumerate() {
            if end == 0 {
                continue;
            }
            let p = i32::try_from(p).unwrap_or(i32::MAX);
            for d in bus.read_range(topic, p, end - 1, None).await? {
                newest = newest.max(Some(d.record.timestamp));
            }
        }
    }
    Ok(newest)
}

/// Sends `alert` until the webhook takes it or it is given up; false when stopped
/// first.
async fn send(
    client: &reqwest::Client,
    config: &NotifyConfig,
    alert: &Alert,
    stats: &NotifyStats,
    stop: &CancellationToken,
) -> bool {
    let started = tokio::time::Instant::now();
    let mut backoff = Duration::from_secs(1);
    loop {
        let (body, key) = body(alert, streamcity_core::clock::wall_clock_ms());
        stats.attempts.fetch_add(1, Ordering::Relaxed);
        let attempt = tokio::select! {
            a = attempt(client, config, body, &key) => a,
            _ = stop.cancelled() => return false,
        };
        let why = match attempt {
            Attempt::Delivered => {
                stats.delivered.fetch_add(1, Ordering::Relaxed);
                return true;
            }
            Attempt::Refused(why) => {
                dead_letter(stats, &key, &why);
                return true;
            }
            Attempt::Retry(why, after) => {
                let wait = after
                    .unwrap_or(backoff)
                    .min(config.max_backoff)
                    .max(backoff);
                if started.elapsed() + wait > config.give_up_after {
                    dead_letter(
                        stats,
                        &key,
                        &format!("{why}; retried for {:?}", started.elapsed()),
                    );
                    return true;
                }
                stats.retries.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(key, error = %why, retry_in = ?wait, "Webhook failed; retrying");
                wait
            }
        };
        backoff = (backoff * 2).min(config.max_backoff);
        tokio::select! {
            _ = tokio::time::sleep(why) => {}
            _ = stop.cancelled() => return false,
        }
    }
}

fn dead_letter(stats: &NotifyStats, key: &str, why: &str) {
    stats.dead_letters.fetch_add(1, Ordering::Relaxed);
    tracing::error!(key, error = %why, "Notification given up (counted in streamcity_notify_dead_letters_total)");
}

async fn attempt(
    client: &reqwest::Client,
    config: &NotifyConfig,
    body: Vec<u8>,
    key: &str,
) -> Attempt {
    let signature = signature(&config.secret, &body);
    let answer = client
        .post(config.webhook.clone())
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header("X-StreamCity-Signature", signature)
        .header("Idempotency-Key", key)
        .body(body)
        .send()
        .await;
    let response = match answer {
        Ok(r) => r,
        Err(e) => return Attempt::Retry(streamcity_core::error_chain(&e), None),
    };
    let status = response.status();
    if status.is_success() {
        return Attempt::Delivered;
    }
    let retry_after = response
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs);
    let why = format!("the webhook answered {status}");
    if status.is_server_error() || status.as_u16() == 408 || status.as_u16() == 429 {
        Attempt::Retry(why, retry_after)
    } else {
        Attempt::Refused(why)
    }
}
