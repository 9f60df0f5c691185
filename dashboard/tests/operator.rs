//! The operator's writes over real HTTP and a bus: acknowledging and muting need the
//! token (compared in full; 401 with a JSON error otherwise), go out on the
//! `alert_actions` topic and are shown once read back, on the alerts they touch; reads
//! need the token only when the dashboard says so.

#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use serde_json::{Value, json};
use streamcity_core::*;
use streamcity_dashboard::auth::Access;
use streamcity_dashboard::{Live, LiveConfig, ServerLimits};
use streamcity_network::{SyntheticConfig, synthetic};

const TOKEN: &str = "s3cret-token-for-tests";

struct Dashboard {
    live: Arc<Live>,
    addr: std::net::SocketAddr,
    bus: MemoryBus,
    topics: Topics,
    _stop: StopOnDrop,
}

/// A dashboard fed from a memory bus, taking actions through it.
async fn dashboard(reads: bool) -> Dashboard {
    let city = Arc::new(synthetic::generate(SyntheticConfig::default()));
    let topics = Topics::default();
    let bus = MemoryBus::default();
    let live = Arc::new(
        Live::new(city, topics.clone(), LiveConfig::default())
            .with_access(Access::new(Some(TOKEN.into()), reads)),
    );
    let stop = CancellationToken::new();
    let sub = streamcity_dashboard::live::subscribe(&bus, &live)
        .await
        .unwrap();
    tokio::spawn(streamcity_dashboard::live::run_ingest(
        sub,
        Arc::clone(&live),
        stop.clone(),
    ));
    let (tx, rx) = tokio::sync::mpsc::channel(8);
    live.take_actions_through(tx);
    tokio::spawn(streamcity_dashboard::live::publish_actions(
        bus.clone(),
        rx,
        stop.clone(),
    ));
    let addr = serve_on_free_port(&live, ServerLimits::default(), &stop).await;
    Dashboard {
        live,
        addr,
        bus,
        topics,
        _stop: StopOnDrop(stop),
    }
}

impl Dashboard {
    /// An HTTP/1.1 request with an optional bearer token and JSON body; (status,
    /// body as JSON, headers).
    async fn request(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (u16, Value, String) {
        http(self.addr, method, path, token, body).await
    }

    /// Records published on `topic`.
    fn published(&self, topic: &str) -> u64 {
        self.bus
            .stats()
            .iter()
            .find(|t| &*t.topic == topic)
            .map_or(0, |t| t.published)
    }

    async fn alert(&self, id: &str, kind: AlertKind, route: &str) {
        let a = Alert {
            alert_id: id.into(),
            kind,
            state: AlertState::Raised,
            severity: Severity::Moderate,
            subject_kind: SubjectKind::Route,
            subject_id: route.into(),
            lat: Some(40.7),
            lon: Some(-74.0),
            window_start: T0,
            window_end: T0,
            raised_at: T0,
            timestamp: T0,
            message: "test".into(),
            action: "do something".into(),
            evidence: Default::default(),
            acknowledged: None,
            muted_until: None,
        };
        self.bus
            .publish(Record::new(
                &self.topics.alerts,
                id.to_owned(),
                encode(&a),
                T0,
            ))
            .await
            .unwrap();
    }

    /// The active alert `id` as `/api/alerts` shows it, once `ready` holds (within 10 s).
    async fn alert_when(&self, id: &str, ready: impl Fn(&Value) -> bool) -> Value {
        within(10, "the alert to show the action", async {
            loop {
                let (_, alerts, _) = self.request("GET", "/api/alerts", Some(TOKEN), None).await;
                if let Some(a) = alerts["active"]
                    .as_array()
                    .and_then(|l| l.iter().find(|a| a["alert_id"] == id))
                    .filter(|a| ready(a))
                {
                    return Ok::<Value, ()>(a.clone());
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
        .await
        .unwrap()
    }
}

#[tokio::test]
async fn acknowledging_needs_the_token_and_every_reader_sees_it() {
    let d = dashboard(false).await;
    d.alert("bunching:B01:1", AlertKind::Bunching, "B01").await;
    d.alert("delay:B02:line:1", AlertKind::Delay, "B02").await;
    d.alert_when("bunching:B01:1", |_| true).await;

    // No token, a wrong one (same length and not), a malformed header: 401, JSON.
    for token in [None, Some("s3cret-token-for-tesTS"), Some("nope")] {
        let (status, body, head) = d
            .request("POST", "/api/alerts/bunching:B01:1/ack", token, None)
            .await;
        assert_eq!(status, 401, "{token:?}: {body}");
        assert!(body["error"].as_str().unwrap().contains("token"), "{body}");
        assert!(
            head.to_ascii_lowercase()
                .contains("www-authenticate: bearer"),
            "{head}"
        );
    }
    // An alert that is not active: 404; a bad body: 4xx; nothing published.
    let (status, _, _) = d
        .request("POST", "/api/alerts/nope/ack", Some(TOKEN), None)
        .await;
    assert_eq!(status, 404);
    let (status, _, _) = d
        .request(
            "POST",
            "/api/alerts/bunching:B01:1/ack",
            Some(TOKEN),
            Some(json!({"by": "x".repeat(200)})),
        )
        .await;
    assert_eq!(status, 400);
    assert_eq!(d.published(&d.topics.alert_actions), 0);

    // With the token: accepted, published, and shown once read back.
    let (status, body, _) = d
        .request(
            "POST",
            "/api/alerts/bunching:B01:1/ack",
            Some(TOKEN),
            Some(json!({"by": "control room 2"})),
        )
        .await;
    assert_eq!(status, 202, "{body}");
    let a = d
        .alert_when("bunching:B01:1", |a| !a["acknowledged"].is_null())
        .await;
    assert_eq!(a["acknowledged"]["by"], "control room 2");
    // A WebSocket client's snapshot has it too.
    let mut ws = tokio::time::timeout(
        Duration::from_secs(10),
        tokio_tungstenite::connect_async(format!("ws://{}/ws", d.addr)),
    )
    .await
    .unwrap()
    .unwrap()
    .0;
    let snapshot = next(&mut ws).await;
    let shown = snapshot["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["alert_id"] == "bunching:B01:1")
        .unwrap()
        .clone();
    assert_eq!(shown["acknowledged"]["by"], "control room 2");
    // The processor's next record of the alert keeps the acknowledgement.
    d.alert("bunching:B01:1", AlertKind::Bunching, "B01").await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let a = d.alert_when("bunching:B01:1", |_| true).await;
    assert_eq!(a["acknowledged"]["by"], "control room 2");
    assert_eq!(d.published(&d.topics.alert_actions), 1);
    assert!(d.live.alert_is_active("bunching:B01:1"));
}

#[tokio::test]
async fn a_mute_silences_a_kind_or_a_line_for_a_while() {
    let d = dashboard(false).await;
    d.alert("bunching:B01:1", AlertKind::Bunching, "B01").await;
    d.alert("delay:B02:line:1", AlertKind::Delay, "B02").await;
    d.alert_when("delay:B02:line:1", |_| true).await;
    for (body, status) in [
        (json!({"kind": "bunching", "minutes": 30}), 202),
        (json!({"line": "B02", "minutes": 10}), 202),
        (json!({"line": "NOPE", "minutes": 10}), 404),
        (json!({"kind": "bunching", "minutes": 100000}), 400),
        (
            json!({"kind": "bunching", "line": "B01", "minutes": 1}),
            400,
        ),
        (json!({"kind": "weather", "minutes": 1}), 400),
    ] {
        let (got, answer, _) = d
            .request("POST", "/api/mutes", Some(TOKEN), Some(body.clone()))
            .await;
        assert_eq!(got, status, "{body}: {answer}");
    }
    let (status, _, _) = d
        .request(
            "POST",
            "/api/mutes",
            None,
            Some(json!({"kind": "delay", "minutes": 5})),
        )
        .await;
    assert_eq!(status, 401);
    let now = clock::wall_clock_ms();
    let b = d
        .alert_when("bunching:B01:1", |a| a["muted_until"].is_i64())
        .await;
    let until = b["muted_until"].as_i64().unwrap();
    assert!(
        (now + 29 * 60_000..now + 31 * 60_000).contains(&until),
        "{b}"
    );
    let l = d
        .alert_when("delay:B02:line:1", |a| a["muted_until"].is_i64())
        .await;
    assert!(l["muted_until"].as_i64().unwrap() < until);
    let (_, mutes, _) = d.request("GET", "/api/mutes", Some(TOKEN), None).await;
    assert_eq!(mutes.as_array().unwrap().len(), 2, "{mutes}");
    // Lifted: 0 minutes.
    let (status, _, _) = d
        .request(
            "POST",
            "/api/mutes",
            Some(TOKEN),
            Some(json!({"kind": "bunching", "minutes": 0})),
        )
        .await;
    assert_eq!(status, 202);
    d.alert_when("bunching:B01:1", |a| a["muted_until"].is_null())
        .await;
}

#[tokio::test]
async fn reads_need_the_token_only_when_asked() {
    let open = dashboard(false).await;
    assert_eq!(
        open.request("GET", "/api/vehicles", None, None).await.0,
        200
    );
    let closed = dashboard(true).await;
    for path in [
        "/api/vehicles",
        "/api/alerts",
        "/gtfs-rt/vehicle-positions",
        "/api/mutes",
    ] {
        let (status, body, _) = closed.request("GET", path, None, None).await;
        assert_eq!(status, 401, "{path}: {body}");
        assert_eq!(
            closed.request("GET", path, Some(TOKEN), None).await.0,
            200,
            "{path}"
        );
    }
    assert_eq!(
        closed
            .request(
                "GET",
                &format!("/api/vehicles?access_token={TOKEN}"),
                None,
                None
            )
            .await
            .0,
        200
    );
    // The page, health and metrics stay open.
    for path in ["/", "/healthz", "/metrics"] {
        assert_eq!(
            closed.request("GET", path, None, None).await.0,
            200,
            "{path}"
        );
    }
    // A browser's WebSocket: refused without the token, served with it in the query.
    let refused = tokio::time::timeout(
        Duration::from_secs(10),
        tokio_tungstenite::connect_async(format!("ws://{}/ws", closed.addr)),
    )
    .await
    .unwrap();
    assert!(refused.is_err());
    let mut ws = tokio::time::timeout(
        Duration::from_secs(10),
        tokio_tungstenite::connect_async(format!("ws://{}/ws?access_token={TOKEN}", closed.addr)),
    )
    .await
    .unwrap()
    .unwrap()
    .0;
    assert_eq!(next(&mut ws).await["type"], "snapshot");
}
