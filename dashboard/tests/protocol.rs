//! The `/ws` protocol and the REST API, with real clients against a server on an
//! ephemeral port, fed records directly (no simulation).

#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use common::*;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use streamcity_core::*;
use streamcity_dashboard::{Live, LiveConfig};
use streamcity_network::{SyntheticConfig, synthetic};
use tokio_tungstenite::tungstenite::Message;

#[tokio::test]
async fn filters_apply_to_snapshots_and_deltas_and_can_change_on_the_open_socket() {
    let s = server(LiveConfig::default()).await;
    s.vehicle("A1", "B01", 40.70, -74.00, T0);
    s.vehicle("B1", "B02", 40.80, -74.10, T0);
    s.alert(
        "surge:1",
        AlertKind::Surge,
        AlertState::Raised,
        Some((40.70, -74.00)),
    );
    s.alert(
        "delay:1",
        AlertKind::Delay,
        AlertState::Raised,
        Some((40.70, -74.00)),
    );
    s.live.tick();
    let mut ws = s.connect("?lines=B01&kinds=surge").await;
    let snap = next(&mut ws).await;
    assert_eq!(snap["type"], "snapshot");
    assert_eq!(ids(&snap, "vehicles"), ["A1"]);
    assert_eq!(ids(&snap, "alerts"), ["surge:1"]);

    s.vehicle("A1", "B01", 40.71, -74.00, T0 + 1000);
    s.vehicle("B1", "B02", 40.81, -74.10, T0 + 1000);
    s.alert("delay:2", AlertKind::Delay, AlertState::Raised, None);
    s.live.tick();
    let delta = next(&mut ws).await;
    assert_eq!(
        (delta["type"].as_str(), delta["seq"].as_u64()),
        (Some("delta"), Some(snap["seq"].as_u64().unwrap() + 1))
    );
    assert_eq!(ids(&delta, "vehicles"), ["A1"]);
    assert!(delta["alerts"].as_array().unwrap().is_empty());

    // A new filter on the open socket: a fresh snapshot under it.
    ws.send(Message::Text(
        r#"{"type":"subscribe","bbox":[40.75,-74.2,40.9,-74.0],"topics":["vehicles"]}"#.into(),
    ))
    .await
    .unwrap();
    let snap = next(&mut ws).await;
    assert_eq!(snap["type"], "snapshot");
    assert_eq!(ids(&snap, "vehicles"), ["B1"]);
    assert!(snap["alerts"].as_array().unwrap().is_empty());
}

#[tokio::test]
async fn invalid_client_messages_get_errors_and_the_stream_goes_on() {
    let s = server(LiveConfig::default()).await;
    let mut ws = s.connect("").await;
    assert_eq!(next(&mut ws).await["type"], "snapshot");
    for bad in [
        "not json",
        r#"{"type":"dance"}"#,
        r#"{"type":"subscribe","bbox":[1,2]}"#,
        r#"{"type":"subscribe","lines":"B01"}"#,
        "{}",
    ] {
        ws.send(Message::Text(bad.into())).await.unwrap();
        let reply = next(&mut ws).await;
        assert_eq!(reply["type"], "error", "{bad}: {reply}");
        assert!(!reply["message"].as_str().unwrap().is_empty());
    }
    ws.send(Message::Binary(Bytes::from_static(&[0xff, 0x00])))
        .await
        .unwrap();
    assert_eq!(next(&mut ws).await["type"], "error");
    ws.send(Message::Text(r#"{"type":"ping"}"#.into()))
        .await
        .unwrap();
    assert_eq!(next(&mut ws).await["type"], "pong");
    s.vehicle("A1", "B01", 40.7, -74.0, T0);
    s.live.tick();
    assert_eq!(next(&mut ws).await["type"], "delta");
    // Bad query parameters are refused before the upgrade, as JSON.
    let refused = tokio_tungstenite::connect_async(format!("ws://{}/ws?bbox=oops", s.addr))
        .await
        .unwrap_err();
    let tokio_tungstenite::tungstenite::Error::Http(response) = refused else {
        panic!("{refused}")
    };
    assert_eq!(response.status(), 400);
    let body: Value = serde_json::from_slice(response.body().as_deref().unwrap()).unwrap();
    assert!(body["error"].as_str().unwrap().contains("bbox"), "{body}");
}

#[tokio::test]
async fn a_client_resumes_after_reconnecting_or_gets_a_snapshot_when_too_far_behind() {
    let s = server(LiveConfig {
        history: 3,
        ..LiveConfig::default()
    })
    .await;
    for i in 0..3 {
        s.vehicle("A1", "B01", 40.7, -74.0 + i as f64 * 0.001, T0 + i);
        s.live.tick();
    }
    // Seen up to 1: deltas 2 and 3 are replayed, in order.
    let mut ws = s.connect("?since=1").await;
    let (a, b) = (next(&mut ws).await, next(&mut ws).await);
    assert_eq!(
        (a["type"].as_str(), a["seq"].as_u64()),
        (Some("delta"), Some(2))
    );
    assert_eq!(b["seq"], 3);
    // Then live deltas go on from there.
    s.vehicle("A1", "B01", 40.7, -73.9, T0 + 10);
    s.live.tick();
    assert_eq!(next(&mut ws).await["seq"], 4);
    // With this run's epoch, the resume works the same.
    let epoch = s.live.epoch();
    let mut ws = s.connect(&format!("?since=3&epoch={epoch}")).await;
    assert_eq!((next(&mut ws).await["seq"].as_u64()), Some(4));
    // History holds 3 deltas (2, 3, 4): resuming after 0 is too old, a future sequence
    // number is nonsense, and another epoch is another run (a restarted server): each
    // gets a snapshot, which names this run's epoch.
    for query in [
        "?since=0".to_owned(),
        "?since=99".to_owned(),
        format!("?since=3&epoch={}", epoch + 1),
    ] {
        let mut ws = s.connect(&query).await;
        let m = next(&mut ws).await;
        assert_eq!(
            (m["type"].as_str(), m["seq"].as_u64()),
            (Some("snapshot"), Some(4)),
            "{query}"
        );
        assert_eq!(m["epoch"].as_u64(), Some(epoch));
    }
}

#[tokio::test]
async fn an_idle_client_is_closed_with_a_code_and_reason() {
    let s = server(LiveConfig {
        heartbeat: Duration::from_millis(50),
        idle_timeout: Duration::from_millis(300),
        ..LiveConfig::default()
    })
    .await;
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{}/ws", s.addr))
        .await
        .unwrap();
    // Read nothing for a while: pings go unanswered.
    tokio::time::sleep(Duration::from_millis(600)).await;
    let mut close = None;
    while let Ok(Some(Ok(msg))) = tokio::time::timeout(Duration::from_secs(2), ws.next()).await {
        if let Message::Close(f) = msg {
            close = f.map(|f| (u16::from(f.code), f.reason.to_string()));
            break;
        }
    }
    let (code, reason) = close.expect("closed by the server");
    assert_eq!(code, 4000);
    assert!(reason.contains("idle"), "{reason}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_client_is_cut_off_without_slowing_the_others() {
    let s = server(LiveConfig {
        client_queue: 4,
        max_lags_per_minute: 1,
        send_timeout: Duration::from_millis(300),
        ..LiveConfig::default()
    })
    .await;
    let mut slow = s.connect("").await;
    let mut fast = s.connect("").await;
    assert_eq!(next(&mut slow).await["type"], "snapshot");
    let first = next(&mut fast).await["seq"].as_u64().unwrap();
    // Big deltas, many of them, while the slow client reads nothing at all.
    let mut expected = first;
    for round in 0..80 {
        for v in 0..1500 {
            s.vehicle(
                &format!("V{v:04}"),
                "B01",
                40.7 + round as f64 * 1e-4,
                -74.0 + v as f64 * 1e-5,
                T0 + round,
            );
        }
        s.live.tick();
        expected += 1;
        // The fast client keeps up and sees every delta in order (or a snapshot if the
        // machine is too busy to keep up even so: never a gap).
        let m = next(&mut fast).await;
        let seq = m["seq"]
            .as_u64()
            .unwrap_or_else(|| panic!("the fast client got {m}"));
        assert!(
            seq == expected || m["type"] == "snapshot",
            "{} after {}",
            m["seq"],
            expected - 1
        );
        expected = seq;
    }
    // The slow one was cut off: reading what reached it ends, within a deadline, with
    // the server's close (4008, when the close frame could still be queued) or the
    // connection closed; the server counted it as too slow.
    let close = within(30, "the slow client's end", async {
        loop {
            match slow.next().await {
                Some(Ok(Message::Close(f))) => {
                    return f.map(|f| (u16::from(f.code), f.reason.to_string()));
                }
                Some(Ok(_)) => {}
                Some(Err(_)) | None => return None,
            }
        }
    })
    .await;
    if let Some((code, reason)) = close {
        assert_eq!(code, 4008);
        assert!(reason.contains("too slow"), "{reason}");
    }
    let (_, metrics) = s.get("/metrics").await;
    assert!(
        metrics
            .as_str()
            .unwrap()
            .contains("streamcity_ws_closed_total{reason=\"too_slow\"} 1"),
        "{metrics}"
    );
}

#[tokio::test]
async fn rest_queries_filter_look_up_and_explain_their_errors() {
    let s = server(LiveConfig::default()).await;
    s.vehicle("A1", "B01", 40.70, -74.00, T0);
    s.vehicle("B1", "B02", 40.80, -74.10, T0);
    let (status, v) = s.get("/api/vehicles?line=B02").await;
    assert_eq!((status, v.as_array().unwrap().len()), (200, 1));
    assert_eq!(v[0]["vehicle_id"], "B1");
    let (_, v) = s
        .get("/api/vehicles?bbox=40.69,-74.01,40.71,-73.99&status=in_transit_to")
        .await;
    assert_eq!(v.as_array().unwrap().len(), 1);
    assert_eq!(s.get("/api/vehicles/A1").await.1["route_id"], "B01");
    for (path, status, needle) in [
        ("/api/vehicles/nope", 404, "nope"),
        ("/api/vehicles?status=flying", 400, "broken_down"),
        ("/api/vehicles?bbox=1,2,3", 400, "bbox"),
        ("/api/vehicles?colour=red", 400, "colour"),
        ("/api/alerts?kind=nope", 400, "surge"),
        ("/api/stops/S9999", 404, "S9999"),
        ("/api/incidents?near=north", 400, "lat,lon"),
        ("/api/incidents?radius_m=5", 400, "near"),
        ("/api/nothing", 404, "/api/nothing"),
    ] {
        let (got, body) = s.get(path).await;
        assert_eq!(got, status, "{path}: {body}");
        assert!(
            body["error"].as_str().unwrap().contains(needle),
            "{path}: {body}"
        );
    }

    // Stop activity.
    for i in 0..3 {
        let tap = RiderTap {
            rider_id: format!("C{i}").into(),
            stop_id: "S0042".into(),
            route_id: None,
            timestamp: T0 + i,
        };
        s.live.apply(&Record::new(
            &s.topics.rider_tapped_on,
            "S0042",
            encode(&tap),
            T0 + i,
        ));
    }
    let (_, stop) = s.get("/api/stops/S0042").await;
    assert_eq!(
        (
            stop["waiting_estimate"].as_u64(),
            stop["taps_last_5_min"].as_u64()
        ),
        (Some(3), Some(3))
    );
    assert_eq!(stop["recent_taps"][0]["rider_id"], "C2");

    // "Is the power out in my area?"
    let outage = json!({"event_id":"INF-1","category":"infrastructure","type":"power_outage","status":"active","severity":"high",
        "message":"Power outage in Eastside","area":"Eastside","lat":40.7151,"lon":-73.9534,"radius_m":1200.0,"transit_effect":"none",
        "started_at":T0,"timestamp":T0});
    s.live.apply(&Record::new(
        &s.topics.city_incidents,
        "INF-1",
        Bytes::from(outage.to_string()),
        T0,
    ));
    let (_, near) = s
        .get("/api/incidents?near=40.72,-73.95&kind=power_outage")
        .await;
    assert_eq!(near.as_array().unwrap().len(), 1);
    assert_eq!(
        (near[0]["source"].as_str(), near[0]["event_id"].as_str()),
        (Some("city"), Some("INF-1"))
    );
    let (_, far) = s.get("/api/incidents?near=40.60,-74.10").await;
    assert!(far.as_array().unwrap().is_empty());
    assert_eq!(
        s.get("/api/incidents?area=eastside")
            .await
            .1
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

#[tokio::test]
async fn a_stops_waiting_count_falls_only_by_the_riders_who_boarded() {
    let s = server(LiveConfig::default()).await;
    let stop = "S0042";
    for i in 0..600 {
        let tap = RiderTap {
            rider_id: format!("C{i}").into(),
            stop_id: stop.into(),
            route_id: None,
            timestamp: T0 + i,
        };
        s.live.apply(&Record::new(
            &s.topics.rider_tapped_on,
            stop,
            encode(&tap),
            T0 + i,
        ));
    }
    let report =
        |id: &str, ts: i64, status: VehicleStatus, passengers: u32, boarded: Option<u32>| {
            let mut p = position(id, "B01", 40.70, -74.00, ts);
            p.next_stop_id = stop.into();
            p.status = status;
            p.passengers = passengers;
            p.occupancy_status = OccupancyStatus::from_load(passengers, p.capacity);
            p.boarded = boarded;
            s.live.apply(&Record::new(
                &s.topics.live_vehicle_table,
                id.to_owned(),
                encode(&p),
                ts,
            ));
        };
    let waiting =
        || async { s.get(&format!("/api/stops/{stop}")).await.1["waiting_estimate"].as_u64() };
    assert_eq!(waiting().await, Some(600));
    // A vehicle with room arrives and counts 12 boarding: 588 still wait (a stop's
    // crowd does not vanish because one vehicle with room called).
    report("V1", T0 + 1_000, VehicleStatus::InTransitTo, 40, None);
    report("V1", T0 + 2_000, VehicleStatus::StoppedAt, 50, Some(12));
    assert_eq!(waiting().await, Some(588));
    // Its next report at the same call counts nobody twice; more boarding counts.
    report("V1", T0 + 3_000, VehicleStatus::StoppedAt, 50, Some(12));
    report("V1", T0 + 4_000, VehicleStatus::StoppedAt, 53, Some(15));
    assert_eq!(waiting().await, Some(585));
    // A vehicle without passenger counters: what it gained aboard.
    report("V2", T0 + 5_000, VehicleStatus::InTransitTo, 20, None);
    report("V2", T0 + 6_000, VehicleStatus::StoppedAt, 30, None);
    assert_eq!(waiting().await, Some(575));
    // Leaving, and calling again on the next trip, each boarding counted once.
    report("V1", T0 + 7_000, VehicleStatus::InTransitTo, 53, None);
    report("V1", T0 + 8_000, VehicleStatus::StoppedAt, 60, Some(7));
    assert_eq!(waiting().await, Some(568));
}

#[tokio::test]
async fn the_openapi_document_lists_every_endpoint_and_each_answers() {
    let s = server(LiveConfig::default()).await;
    s.vehicle("B07-012", "B07", 40.70, -74.00, T0);
    let (status, doc) = s.get("/api/openapi.json").await;
    assert_eq!(status, 200);
    let paths = doc["paths"].as_object().unwrap();
    for route in [
        "/api/status",
        "/api/routes",
        "/api/stops",
        "/api/stops/{id}",
        "/api/vehicles",
        "/api/vehicles/{id}",
        "/api/alerts",
        "/api/incidents",
        "/api/trips/{id}",
        "/api/series",
        "/api/lines/{id}",
        "/api/mutes",
        "/api/alerts/{id}/ack",
        "/gtfs-rt/vehicle-positions",
        "/gtfs-rt/trip-updates",
        "/gtfs-rt/alerts",
        "/metrics",
        "/healthz",
        "/readyz",
    ] {
        assert!(paths.contains_key(route), "{route} is not documented");
    }
    for (path, item) in paths {
        // Only what answers GET (the operator's writes are POSTs, tested in operator.rs).
        if item.get("get").is_none() {
            continue;
        }
        // Fill path parameters with their examples.
        let mut url = path.clone();
        for p in item["get"]["parameters"].as_array().into_iter().flatten() {
            if p["in"] == "path" {
                url = url.replace(
                    &format!("{{{}}}", p["name"].as_str().unwrap()),
                    p["example"].as_str().unwrap(),
                );
            }
        }
        let (status, body) = s.get(&url).await;
        assert!(status == 200 || status == 503, "{url}: {status} {body}");
    }
}

/// Every `enum` list in the OpenAPI document that names `what` (by a path parameter's
/// or a schema property's name).
fn enums<'a>(doc: &'a Value, name: &str, out: &mut Vec<&'a Value>) {
    match doc {
        Value::Object(map) => {
            for (k, v) in map {
                if k == name && v["enum"].is_array() {
                    out.push(&v["enum"]);
                }
                if k == name && v["items"]["enum"].is_array() {
                    out.push(&v["items"]["enum"]);
                }
                if map.get("name").and_then(Value::as_str) == Some(name)
                    && k == "schema"
                    && v["enum"].is_array()
                {
                    out.push(&v["enum"]);
                }
                enums(v, name, out);
            }
        }
        Value::Array(items) => items.iter().for_each(|v| enums(v, name, out)),
        _ => {}
    }
}

#[tokio::test]
async fn the_alert_kinds_and_statuses_are_documented_as_the_code_has_them() {
    use streamcity_core::{AlertKind, VehicleStatus, wire_name};
    let kinds: Vec<String> = AlertKind::ALL.iter().map(wire_name).collect();
    let statuses: Vec<String> = VehicleStatus::ALL.iter().map(wire_name).collect();
    // The OpenAPI document: every list of kinds and of statuses is the code's.
    let s = server(LiveConfig::default()).await;
    let (_, doc) = s.get("/api/openapi.json").await;
    for (name, want, at_least) in [
        ("kind", &kinds, 2),
        ("alert_kinds", &kinds, 1),
        ("status", &statuses, 2),
    ] {
        let mut found = Vec::new();
        enums(&doc, name, &mut found);
        assert!(found.len() >= at_least, "{name}: {found:?}");
        for list in found {
            assert_eq!(list, &serde_json::json!(want), "{name}");
        }
    }
    // The page takes its kinds from /api/status.
    let (_, status) = s.get("/api/status").await;
    assert_eq!(status["alert_kinds"], serde_json::json!(kinds));
    // PROTOCOL.md names each of them.
    let protocol = include_str!("../PROTOCOL.md");
    for name in kinds.iter().chain(&statuses) {
        assert!(
            protocol.contains(&format!("`{name}`")),
            "PROTOCOL.md omits `{name}`"
        );
    }
    // And nothing else in the code lists them: the error for a bad kind is built from
    // the same list.
    let (code, err) = s.get("/api/alerts?kind=nope").await;
    assert_eq!(code, 400);
    assert!(
        err["error"].as_str().unwrap().ends_with(&kinds.join(", ")),
        "{err}"
    );
}

#[tokio::test(start_paused = true)]
async fn an_update_goes_out_within_one_period_whatever_the_timer_phase() {
    use streamcity_dashboard::live::{ClientFilter, run_ingest, subscribe};
    let city = Arc::new(synthetic::generate(SyntheticConfig::default()));
    let topics = Topics::default();
    let period = Duration::from_millis(100);
    let live = Arc::new(Live::new(
        city,
        topics.clone(),
        LiveConfig {
            tick: period,
            ..LiveConfig::default()
        },
    ));
    let bus = MemoryBus::default();
    let sub = subscribe(&bus, &live).await.unwrap();
    let (mut deltas, _) = live.connect(None, None, &ClientFilter::default());
    let stop = CancellationToken::new();
    tokio::spawn(run_ingest(sub, Arc::clone(&live), stop.clone()));
    let publish = |id: &'static str| {
        let (bus, topic) = (bus.clone(), Arc::clone(&topics.live_vehicle_table));
        async move {
            let p = position(id, "B01", 40.7, -74.0, T0);
            bus.publish(Record::new(&topic, id, encode(&p), T0))
                .await
                .unwrap();
        }
    };
    // Half a period into the dashboard's life: a quiet dashboard sends at once.
    tokio::time::sleep(period * 3 / 2).await;
    let first_at = tokio::time::Instant::now();
    publish("V1").await;
    let vehicles = |d: &streamcity_dashboard::live::Delta| -> Vec<String> {
        let v: Value = serde_json::from_slice(&d.text).unwrap();
        ids(&v, "vehicles")
    };
    let first = deltas.recv().await.unwrap();
    assert_eq!(vehicles(&first), ["V1"]);
    assert!(first_at.elapsed() < Duration::from_millis(5));
    // A tenth of a period later: held back, then sent a period after the first delta,
    // not on the next round tick of a timer that started with the dashboard (which
    // would be almost two periods).
    tokio::time::sleep(period / 10).await;
    publish("V2").await;
    let second = deltas.recv().await.unwrap();
    let gap = first_at.elapsed();
    assert_eq!(vehicles(&second), ["V2"]);
    assert!(
        gap >= period && gap < period + Duration::from_millis(5),
        "second delta {gap:?} after the first"
    );
    stop.cancel();
}

#[tokio::test]
async fn the_resume_history_is_bounded_in_bytes_too() {
    use streamcity_dashboard::live::{ClientFilter, Start};
    let city = Arc::new(synthetic::generate(SyntheticConfig::default()));
    let topics = Topics::default();
    // Room for a few deltas of 50 vehicles (about 17 KB each), not for all 20.
    let live = Live::new(
        city,
        topics.clone(),
        LiveConfig {
            history_bytes: 100_000,
            ..LiveConfig::default()
        },
    );
    for round in 0..20 {
        for v in 0..50 {
            let id = format!("V{v}");
            let p = position(&id, "B01", 40.7, -74.0, T0 + round);
            live.apply(&Record::new(
                &topics.live_vehicle_table,
                id,
                encode(&p),
                T0 + round,
            ));
        }
        assert!(live.tick());
    }
    let resume = |since: u64| match live.connect(Some(since), None, &ClientFilter::default()).1 {
        Start::Resume(deltas) => Some(deltas.len()),
        Start::Snapshot(..) => None,
    };
    // The last deltas are kept; the first ones went to stay within the bytes.
    assert_eq!(resume(19), Some(1));
    assert_eq!(resume(17), Some(3));
    assert_eq!(resume(2), None, "20 deltas of 50 vehicles kept in 100 KB");
    // By count alone (600) every one would have been kept.
    let kept = (1..20).rev().take_while(|&s| resume(s).is_some()).count();
    assert!((2..12).contains(&kept), "{kept} deltas kept");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gtfs_realtime_feeds_are_built_once_per_update_and_polled_with_etags() {
    use prost::Message;
    use streamcity_realtime::proto::FeedMessage;
    let s = server(LiveConfig::default()).await;
    s.vehicle("A1", "B01", 40.70, -74.00, T0);
    s.vehicle("A2", "B02", 40.71, -74.01, T0);
    s.live.tick();
    let port = s.addr.port();
    let fetch = |path: &'static str, etag: Option<String>| {
        tokio::task::spawn_blocking(move || {
            let headers: Vec<(&str, &str)> = etag
                .as_deref()
                .map(|e| ("If-None-Match", e))
                .into_iter()
                .collect();
            streamcity_testkit::stage::http_get_bytes(port, path, &headers)
        })
    };
    let get = |etag| fetch("/gtfs-rt/vehicle-positions", etag);
    let first = within(20, "the feed", get(None)).await.unwrap();
    assert_eq!(first.status, 200);
    let feed = FeedMessage::decode(first.body.as_slice()).unwrap();
    assert_eq!(feed.header.gtfs_realtime_version, "2.0");
    let ids: Vec<&str> = feed.entity.iter().map(|e| e.id.as_str()).collect();
    assert_eq!(ids, ["A1", "A2"]);
    // The built-in city's shuttles run no trip of its timetable: their route only.
    let trip = feed.entity[0]
        .vehicle
        .as_ref()
        .unwrap()
        .trip
        .as_ref()
        .unwrap();
    assert_eq!(
        (trip.route_id.as_deref(), trip.trip_id.as_deref()),
        (Some("B01"), None)
    );
    let etag = first.header("etag").unwrap().to_owned();
    // Unchanged: 304, no body.
    let same = within(20, "the feed again", get(Some(etag.clone())))
        .await
        .unwrap();
    assert_eq!((same.status, same.body.len()), (304, 0));
    // A new report: a new feed, a new ETag.
    s.vehicle("A3", "B03", 40.72, -74.02, T0 + 1_000);
    s.live.tick();
    let changed = within(20, "the changed feed", get(Some(etag.clone())))
        .await
        .unwrap();
    assert_eq!(changed.status, 200);
    assert_ne!(changed.header("etag"), Some(etag.as_str()));
    assert_eq!(
        FeedMessage::decode(changed.body.as_slice())
            .unwrap()
            .entity
            .len(),
        3
    );
    // An incident alone (no vehicle changed, nothing for /ws): the alerts change too.
    let alerts = |etag| fetch("/gtfs-rt/alerts", etag);
    let quiet = within(20, "the alerts", alerts(None)).await.unwrap();
    let quiet_etag = quiet.header("etag").unwrap().to_owned();
    let jam = streamcity_core::TrafficIncident {
        incident_id: "TI-0001".into(),
        kind: streamcity_core::TrafficIncidentKind::Congestion,
        status: streamcity_core::IncidentStatus::Active,
        lat: 40.70,
        lon: -74.00,
        radius_m: 500.0,
        severity: streamcity_core::Severity::Moderate,
        speed_factor: 0.5,
        started_at: T0 + 1_000,
        expected_end: T0 + 3_600_000,
        timestamp: T0 + 1_000,
    };
    s.live.apply(&streamcity_core::Record::new(
        &s.topics.traffic_incidents,
        "TI-0001",
        streamcity_core::encode(&jam),
        T0 + 1_000,
    ));
    let jammed = within(
        20,
        "the alerts after an incident",
        alerts(Some(quiet_etag.clone())),
    )
    .await
    .unwrap();
    assert_eq!(jammed.status, 200);
    assert_ne!(jammed.header("etag"), Some(quiet_etag.as_str()));
    let ids: Vec<String> = FeedMessage::decode(jammed.body.as_slice())
        .unwrap()
        .entity
        .into_iter()
        .map(|e| e.id)
        .collect();
    assert_eq!(ids, ["traffic:TI-0001"]);
}
