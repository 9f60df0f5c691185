//! Hostile records on a real broker (tansu, from `scripts/test.sh`), with every stage
//! running apart: a producer, `process` and `serve`. Malformed, oversized (1 MB),
//! binary and out-of-range records go onto every topic a stage reads. No stage exits;
//! each bad record the processor reads is on `dead_letters` with its reason, bounded in
//! size; the good records go on being processed; the dashboard serves no invalid
//! incident and no invalid vehicle.

#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use serde_json::{Value, json};
use streamcity_core::Topics;
use streamcity_testkit::broker::test_brokers as brokers;
use streamcity_testkit::stage::{Binary, Running, http_get, metric, unique};
use streamcity_testkit::twin::live_vehicles;

const YEAR_MS: i64 = 365 * 24 * 3_600_000;

fn bin(prefix: &str) -> Binary {
    Binary::new(env!("CARGO_BIN_EXE_streamcity"))
        .env("KAFKA_BOOTSTRAP_SERVERS", brokers())
        .env("STREAMCITY_TOPIC_PREFIX", prefix)
}

/// The bad records for a topic: `(key, payload)`. `good` is a valid record of it
/// (JSON), varied into out-of-range ones.
fn hostile(good: &Value, id_field: &str, now: i64) -> Vec<(String, Vec<u8>)> {
    let mut out = vec![
        ("huge".to_owned(), vec![1u8; 1_000_000]),
        (
            "binary".to_owned(),
            (0..2048u32).map(|i| (i * 97 % 256) as u8).collect(),
        ),
        ("text".to_owned(), b"not json at all".to_vec()),
        ("empty-object".to_owned(), b"{}".to_vec()),
        ("empty".to_owned(), Vec::new()),
    ];
    let mut vary = |name: &str, field: &str, value: Value| {
        let mut v = good.clone();
        v[field] = value;
        out.push((name.to_owned(), serde_json::to_vec(&v).unwrap()));
    };
    if good.get("lat").is_some() {
        vary("lat-91", "lat", json!(91.0));
    }
    vary("year-ahead", "timestamp", json!(now + YEAR_MS));
    vary("empty-id", id_field, json!(""));
    if good.get("radius_m").is_some() {
        vary("radius-negative", "radius_m", json!(-5.0));
        vary("radius-huge", "radius_m", json!(1e308));
    }
    out
}

/// A valid record of each topic the processor reads, at `now`: `(topic, id field,
/// record)`.
fn good_records(topics: &Topics, now: i64) -> Vec<(String, &'static str, Value)> {
    vec![
        (
            topics.vehicle_locations.to_string(),
            "vehicle_id",
            json!({"vehicle_id": "HOSTILE-V", "route_id": "B01", "trip_id": "t", "timestamp": now,
                   "lat": 40.7, "lon": -74.0, "bearing": 0.0, "speed_mps": 5.0, "next_stop_id": "S0001",
                   "passengers": 1, "capacity": 80, "occupancy_status": "empty", "delay_s": 0,
                   "status": "in_transit_to"}),
        ),
        (
            topics.rider_tapped_on.to_string(),
            "stop_id",
            json!({"rider_id": "HOSTILE-R", "stop_id": "S0001", "timestamp": now}),
        ),
        (
            topics.rider_tapped_off.to_string(),
            "stop_id",
            json!({"rider_id": "HOSTILE-R", "stop_id": "S0001", "timestamp": now}),
        ),
        (
            topics.traffic_incidents.to_string(),
            "incident_id",
            json!({"incident_id": "HOSTILE-TI", "kind": "accident", "status": "active", "lat": 40.72,
                   "lon": -74.01, "radius_m": 250.0, "severity": "high", "speed_factor": 0.3,
                   "started_at": now, "expected_end": now + 1_800_000, "timestamp": now}),
        ),
        (
            topics.city_incidents.to_string(),
            "event_id",
            json!({"event_id": "HOSTILE-CI", "category": "infrastructure", "type": "power_outage",
                   "status": "active", "severity": "high", "message": "m", "area": "a", "lat": 40.71,
                   "lon": -73.95, "radius_m": 1200.0, "started_at": now, "timestamp": now}),
        ),
    ]
}

fn alive(stage: &mut Running, name: &str) {
    assert!(
        stage.is_running(),
        "{name} exited on hostile input:\n{}",
        stage.printed()
    );
}

#[test]
fn hostile_records_on_every_topic_stop_no_stage_and_each_is_set_aside_with_its_reason() {
    let prefix = unique("hostile");
    let topics = Topics::with_prefix(&prefix);
    let bin = bin(&prefix);
    let producer = bin.start(&["produce", "all", "--port", "0"]);
    producer.wait_for("Producing", Duration::from_secs(60));
    let mut process = bin.start(&["process", "--port", "0"]);
    let mut serve = bin.start(&["serve", "--port", "0"]);
    let port = serve.dashboard_port();
    let runtime = streamcity_testkit::twin::runtime();
    assert!(
        runtime.block_on(live_vehicles(&port)) >= 200,
        "the twin is live"
    );
    let port: u16 = port.parse().unwrap();
    let metrics = process.metrics_port();
    let records_before = metric(
        &http_get(metrics, "/metrics").1,
        "streamcity_processor_records_in_total",
    );

    // The bad records, on every topic a stage reads.
    let now = streamcity_core::clock::wall_clock_ms();
    let kafka: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", brokers())
        .set("message.max.bytes", "3000000")
        .create()
        .unwrap();
    let mut sent_to_processor = Vec::new();
    let mut hostile_ids = Vec::new();
    for (topic, id_field, good) in good_records(&topics, now) {
        hostile_ids.push(good[id_field].as_str().unwrap().to_owned());
        for (key, payload) in hostile(&good, id_field, now) {
            kafka
                .send(BaseRecord::to(&topic).key(&key).payload(&payload))
                .unwrap_or_else(|(e, _)| panic!("{topic}/{key}: {e}"));
            sent_to_processor.push((topic.clone(), key));
        }
    }
    // And on the topics only the dashboard reads.
    let good_row = &good_records(&topics, now)[0].2;
    for topic in [&topics.live_vehicle_table, &topics.alerts] {
        for (key, payload) in hostile(good_row, "vehicle_id", now) {
            kafka
                .send(BaseRecord::to(topic).key(&key).payload(&payload))
                .unwrap_or_else(|(e, _)| panic!("{topic}/{key}: {e}"));
        }
    }
    kafka.flush(Duration::from_secs(30)).unwrap();

    // Every bad record the processor reads is set aside, with its reason.
    let deadline = Instant::now() + Duration::from_secs(60);
    let letters = loop {
        let letters = read_dead_letters(&topics);
        let found = sent_to_processor
            .iter()
            .filter(|(topic, key)| {
                letters
                    .iter()
                    .any(|l| l["source_topic"] == *topic.as_str() && l["key"] == *key.as_str())
            })
            .count();
        if found == sent_to_processor.len() {
            break letters;
        }
        assert!(
            Instant::now() < deadline,
            "{found} of {} bad records on dead_letters after 60 s:\n{letters:#?}",
            sent_to_processor.len()
        );
        std::thread::sleep(Duration::from_secs(1));
    };
    let reasons = streamcity_core::InvalidEvent::REASONS;
    for l in &letters {
        assert!(reasons.contains(&l["reason"].as_str().unwrap()), "{l}");
        assert!(!l["error"].as_str().unwrap().is_empty(), "{l}");
        assert!(
            l["payload"].as_str().unwrap().len() <= 4 * 1024,
            "a dead letter carries an excerpt, not the payload: {} bytes",
            l["payload"].as_str().unwrap().len()
        );
    }
    let huge = letters.iter().find(|l| l["key"] == "huge").unwrap();
    assert_eq!(huge["payload_bytes"], 1_000_000);
    assert_eq!(huge["reason"], "too_large");

    // No stage stopped, and the good records go on.
    std::thread::sleep(Duration::from_secs(3));
    alive(&mut process, "process");
    alive(&mut serve, "serve");
    let page = http_get(metrics, "/metrics").1;
    assert!(
        metric(&page, "streamcity_processor_records_in_total") > records_before + 500.0,
        "the processor stalled:\n{page}"
    );
    assert_eq!(http_get(metrics, "/readyz").0, 200);
    assert!(runtime.block_on(live_vehicles(&port.to_string())) >= 200);

    // The dashboard has read them (five unreadable records on each of the five topics
    // it shares with the test: at least 25 set aside) and serves no invalid incident
    // and no invalid vehicle.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let page = http_get(port, "/metrics").1;
        if metric(&page, "streamcity_dashboard_undecodable_total") >= 25.0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the dashboard did not read the bad records within 60 s:\n{page}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    let (status, incidents) = http_get(port, "/api/incidents");
    assert_eq!(status, 200, "{incidents}");
    let incidents: Value = serde_json::from_str(&incidents).unwrap();
    for i in incidents.as_array().unwrap() {
        let id = i["incident_id"]
            .as_str()
            .or(i["event_id"].as_str())
            .unwrap_or("");
        assert!(!hostile_ids.iter().any(|h| h == id), "served: {i}");
        let (lat, radius) = (i["lat"].as_f64().unwrap(), i["radius_m"].as_f64().unwrap());
        assert!(
            lat.abs() <= 90.0 && (0.0..=100_000.0).contains(&radius),
            "served: {i}"
        );
    }
    let (_, vehicles) = http_get(port, "/api/vehicles");
    let vehicles: Value = serde_json::from_str(&vehicles).unwrap();
    for v in vehicles.as_array().unwrap() {
        assert!(v["lat"].as_f64().unwrap().abs() <= 90.0, "served: {v}");
    }
    let (status, _) = http_get(port, "/api/vehicles/HOSTILE-V");
    assert_eq!(status, 404, "an invalid vehicle row was served");

    serve.stop();
    process.stop();
    producer.stop();
}

/// Everything on the dead-letter topic so far, decoded.
fn read_dead_letters(topics: &Topics) -> Vec<Value> {
    streamcity_testkit::topic::read_all(&brokers(), &topics.dead_letters)
        .iter()
        .filter_map(|r| serde_json::from_slice(&r.value).ok())
        .collect()
}
