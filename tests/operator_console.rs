//! The operator's actions on a real broker (tansu, from `scripts/test.sh`): two
//! dashboards (`streamcity serve`) on one set of topics agree on every acknowledgement
//! and mute, whichever took it; a dashboard killed (`kill -9`) and started again shows
//! them again (they live on the compacted `alert_actions` topic); writes need the token.

#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use streamcity_core::{
    Alert, AlertKind, AlertState, Bus, Record, Severity, SubjectKind, Topics, encode,
};
use streamcity_kafka::{KafkaBus, KafkaConfig};
use streamcity_testkit::broker::test_brokers as brokers;
use streamcity_testkit::stage::{Binary, http_request, unique};

const TOKEN: &str = "operator-console-test-token";

fn request(port: u16, method: &str, path: &str, token: Option<&str>, body: Value) -> (u16, Value) {
    let auth = token.map(|t| format!("Bearer {t}"));
    let mut headers = vec![("Content-Type", "application/json")];
    if let Some(a) = &auth {
        headers.push(("Authorization", a.as_str()));
    }
    let body = if body.is_null() {
        Vec::new()
    } else {
        body.to_string().into_bytes()
    };
    let answer = http_request(port, method, path, &headers, &body);
    (
        answer.status,
        serde_json::from_slice(&answer.body).unwrap_or(Value::Null),
    )
}

/// Waits (up to 60 s) until dashboard `port` shows active alert `id` passing `ready`.
fn shown(port: u16, id: &str, what: &str, ready: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (_, alerts) = request(port, "GET", "/api/alerts", None, Value::Null);
        if let Some(a) = alerts["active"]
            .as_array()
            .and_then(|l| l.iter().find(|a| a["alert_id"] == id))
            .filter(|a| ready(a))
        {
            return a.clone();
        }
        assert!(
            Instant::now() < deadline,
            "dashboard on {port}: {what} not shown within 60 s: {alerts}"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_dashboards_agree_on_acknowledgements_and_mutes_across_a_kill() {
    let prefix = unique("console");
    let bin = Binary::new(env!("CARGO_BIN_EXE_streamcity"))
        .env("KAFKA_BOOTSTRAP_SERVERS", brokers())
        .env("STREAMCITY_TOPIC_PREFIX", &prefix)
        .env("STREAMCITY_API_TOKEN", TOKEN);
    let producer = bin.start(&["produce", "all", "--port", "0"]);
    let mut a = bin.start(&["serve", "--port", "0"]);
    let mut b = bin.start(&["serve", "--port", "0"]);
    let port_a: u16 = a.dashboard_port().parse().unwrap();
    let port_b: u16 = b.dashboard_port().parse().unwrap();

    // An alert as the processor would publish it.
    let topics = Topics::with_prefix(&prefix);
    let bus = KafkaBus::connect(KafkaConfig::new(brokers()))
        .await
        .unwrap();
    let now = streamcity_core::clock::wall_clock_ms();
    let id = format!("bunching:B03:{now}");
    let alert = Alert {
        alert_id: id.as_str().into(),
        kind: AlertKind::Bunching,
        state: AlertState::Raised,
        severity: Severity::Moderate,
        subject_kind: SubjectKind::Route,
        subject_id: "B03".into(),
        lat: Some(40.71),
        lon: Some(-74.0),
        window_start: now,
        window_end: now,
        raised_at: now,
        timestamp: now,
        message: "Bunching on line B03".into(),
        action: "Hold the follower".into(),
        evidence: Default::default(),
        acknowledged: None,
        muted_until: None,
    };
    bus.publish(Record::new(&topics.alerts, id.clone(), encode(&alert), now))
        .await
        .unwrap();
    bus.flush().await.unwrap();
    for port in [port_a, port_b] {
        shown(port, &id, "the alert", |_| true);
    }

    // Writes need the token, on either dashboard.
    let path = format!("/api/alerts/{id}/ack");
    assert_eq!(request(port_a, "POST", &path, None, Value::Null).0, 401);
    assert_eq!(
        request(
            port_b,
            "POST",
            &path,
            Some("operator-console-test-tokeN"),
            Value::Null
        )
        .0,
        401
    );
    // Acknowledged on B: A shows it too.
    let (status, body) = request(port_b, "POST", &path, Some(TOKEN), json!({"by": "desk 4"}));
    assert_eq!(status, 202, "{body}");
    let seen = shown(port_a, &id, "the acknowledgement", |a| {
        !a["acknowledged"].is_null()
    });
    assert_eq!(seen["acknowledged"]["by"], "desk 4");
    // Bunching muted on A for an hour: B shows it muted.
    let (status, body) = request(
        port_a,
        "POST",
        "/api/mutes",
        Some(TOKEN),
        json!({"kind": "bunching", "minutes": 60}),
    );
    assert_eq!(status, 202, "{body}");
    let muted = shown(port_b, &id, "the mute", |a| a["muted_until"].is_i64());
    assert!(muted["muted_until"].as_i64().unwrap() > now + 50 * 60_000);

    // B killed and started again reads both back from the topic.
    b.kill();
    let mut b = bin.start(&["serve", "--port", "0"]);
    let port_b: u16 = b.dashboard_port().parse().unwrap();
    let again = shown(
        port_b,
        &id,
        "the acknowledgement and mute after a restart",
        |a| !a["acknowledged"].is_null() && a["muted_until"].is_i64(),
    );
    assert_eq!(again["acknowledged"]["by"], "desk 4");
    let (_, mutes) = request(port_b, "GET", "/api/mutes", None, Value::Null);
    assert_eq!(mutes.as_array().map(Vec::len), Some(1), "{mutes}");

    for stage in [a, b, producer] {
        stage.stop();
    }
}
