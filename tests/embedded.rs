//! End to end: the whole embedded twin on an ephemeral port, watched by a real
//! WebSocket client.

#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use serde_json::Value;
use streamcity::{Embedded, EmbeddedConfig};
use streamcity_core::{Bus, Record, RiderTap, encode};
use tokio_tungstenite::tungstenite::Message;

async fn start() -> Embedded {
    let config = EmbeddedConfig {
        addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        ..EmbeddedConfig::default()
    };
    Embedded::start(config).await.expect("the twin starts")
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn next_json(ws: &mut Socket) -> Value {
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .expect("a message within 10 s")
            .expect("the socket stays open")
            .expect("a valid frame");
        if let Message::Text(text) = msg {
            return serde_json::from_str(&text).expect("messages are JSON");
        }
    }
}

/// Waits until the dashboard has at least `n` vehicles (they report within a second).
async fn wait_for_vehicles(twin: &Embedded, n: usize) {
    for _ in 0..100 {
        if twin.live.vehicle_count() >= n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("only {} vehicles after 10 s", twin.live.vehicle_count());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_client_sees_the_city_move_and_a_surge_raised() {
    let twin = start().await;
    wait_for_vehicles(&twin, 100).await;
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{}/ws", twin.addr))
        .await
        .expect("connects");

    // First a snapshot with the whole fleet.
    let snapshot = next_json(&mut ws).await;
    assert_eq!(snapshot["type"], "snapshot");
    let vehicles = snapshot["vehicles"].as_array().expect("vehicles array");
    assert!(
        vehicles.len() >= 100,
        "snapshot has {} vehicles",
        vehicles.len()
    );
    let start: HashMap<String, (f64, f64)> = vehicles
        .iter()
        .map(|v| {
            (
                v["vehicle_id"].as_str().unwrap().to_owned(),
                (v["lat"].as_f64().unwrap(), v["lon"].as_f64().unwrap()),
            )
        })
        .collect();
    let mut seq = snapshot["seq"].as_u64().expect("seq");

    // Then deltas, in sequence, in which vehicles move.
    let mut moved = 0;
    for _ in 0..30 {
        let delta = next_json(&mut ws).await;
        assert_eq!(delta["type"], "delta");
        let s = delta["seq"].as_u64().unwrap();
        assert_eq!(s, seq + 1, "deltas follow the snapshot in sequence");
        seq = s;
        for v in delta["vehicles"].as_array().unwrap() {
            let id = v["vehicle_id"].as_str().unwrap();
            if let Some(&(lat, lon)) = start.get(id)
                && (v["lat"].as_f64().unwrap() != lat || v["lon"].as_f64().unwrap() != lon)
            {
                moved += 1;
            }
        }
        if moved >= 20 {
            break;
        }
    }
    assert!(moved >= 20, "only {moved} position changes seen");

    // Inject a burst of taps at one stop, as riders pouring out of a stadium.
    let now = twin.clock.now_ms();
    for i in 0..200 {
        let tap = RiderTap {
            rider_id: format!("C9{i:07}").into(),
            stop_id: "S0007".into(),
            route_id: None,
            timestamp: now + i,
        };
        twin.bus
            .publish(Record::new(
                &twin.topics.rider_tapped_on,
                Bytes::from_static(b"S0007"),
                encode(&tap),
                tap.timestamp,
            ))
            .await
            .unwrap();
    }
    let mut surge = None;
    for _ in 0..100 {
        let delta = next_json(&mut ws).await;
        if let Some(a) = delta["alerts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["kind"] == "surge" && a["subject_id"] == "S0007")
        {
            surge = Some(a.clone());
            break;
        }
    }
    let surge = surge.expect("a surge alert for S0007 reaches the client");
    assert_eq!(surge["state"], "raised");
    assert!(
        surge["evidence"]["taps"].as_u64().unwrap()
            > surge["evidence"]["threshold"].as_u64().unwrap()
    );
    // The dashboard places stop alerts on the map.
    assert!(surge["lat"].as_f64().is_some() && surge["lon"].as_f64().is_some());

    twin.shutdown().await.expect("clean shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_are_closed_cleanly_on_shutdown() {
    let twin = start().await;
    wait_for_vehicles(&twin, 1).await;
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{}/ws", twin.addr))
        .await
        .expect("connects");
    assert_eq!(next_json(&mut ws).await["type"], "snapshot");
    let summary = tokio::time::timeout(Duration::from_secs(10), twin.shutdown())
        .await
        .expect("shutdown does not hang on an open WebSocket")
        .expect("clean shutdown");
    let published: u64 = summary.topics.iter().map(|t| t.published).sum();
    assert!(published > 0);
    // The client is told the server is going away.
    let mut close_code = None;
    while let Ok(Some(Ok(msg))) = tokio::time::timeout(Duration::from_secs(5), ws.next()).await {
        if let Message::Close(frame) = msg {
            close_code = frame.map(|f| u16::from(f.code));
            break;
        }
    }
    assert_eq!(close_code, Some(1001));
}

/// Every alert record on `bus`'s alert topic from now on: (alert id, state).
async fn alert_reader(
    bus: &streamcity_core::MemoryBus,
) -> tokio::task::JoinHandle<Vec<(String, String)>> {
    use streamcity_core::{Subscribe, Subscription, Topics};
    let topics = Topics::default();
    let mut sub = bus
        .subscribe(Subscribe::new("alert-reader", &[&topics.alerts]))
        .await
        .unwrap();
    tokio::spawn(async move {
        let mut seen = Vec::new();
        let mut batch = Vec::new();
        while let Ok(Ok(n)) =
            tokio::time::timeout(Duration::from_secs(3), sub.recv_many(&mut batch, 256)).await
        {
            if n == 0 {
                break;
            }
            for d in batch.drain(..) {
                let a: Value = serde_json::from_slice(&d.record.payload).unwrap();
                seen.push((
                    a["alert_id"].as_str().unwrap().to_owned(),
                    a["state"].as_str().unwrap().to_owned(),
                ));
            }
        }
        seen
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_with_a_checkpoint_resumes_the_clock_and_the_state_together() {
    let path =
        std::env::temp_dir().join(format!("streamcity-checkpoint-{}.json", std::process::id()));
    let _ = std::fs::remove_file(&path);
    // The same settings twice, as a user restarting `--start 17:00 --speed 10
    // --checkpoint FILE` would give them.
    let start_ms = 1_763_917_200_000; // 17:00 UTC
    let config = EmbeddedConfig {
        addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        checkpoint: Some(path.clone()),
        speed: 10.0,
        sim: streamcity_producers::SimConfig {
            start_ms,
            tick_ms: streamcity_producers::SimConfig::live_tick_ms(10.0),
            ..streamcity_producers::SimConfig::default()
        },
        ..EmbeddedConfig::default()
    };
    let bus = streamcity_core::MemoryBus::default();
    let first_alerts = alert_reader(&bus).await;
    let twin = Embedded::start_on(config.clone(), bus).await.unwrap();
    wait_for_vehicles(&twin, 200).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let first = twin.shutdown().await.unwrap();
    let first_alerts = first_alerts.await.unwrap();
    let still_active: Vec<&String> = first_alerts
        .iter()
        .filter(|(id, s)| {
            s == "raised" && !first_alerts.iter().any(|(i, s)| i == id && s == "cleared")
        })
        .map(|(id, _)| id)
        .collect();
    assert_eq!(
        first.alerts_raised as usize,
        first_alerts.iter().filter(|(_, s)| s == "raised").count(),
        "the summary counts what was published"
    );

    let saved = std::fs::read(&path).expect("a checkpoint written on stop");
    let info = streamcity_processor::checkpoint::peek(&saved).unwrap();
    let reached = info.event_time.expect("the processor saw events");
    assert!(reached > start_ms + 20_000, "{reached}");

    // The restart resumes the simulation where the processor was: vehicles are on the
    // map within seconds, nothing is late, no alert still active is raised again.
    let bus = streamcity_core::MemoryBus::default();
    let second_alerts = alert_reader(&bus).await;
    let twin = Embedded::start_on(config, bus).await.unwrap();
    assert!(
        twin.clock.now_ms() > reached,
        "the clock resumes after {reached}, not at the start {start_ms}"
    );
    wait_for_vehicles(&twin, 200).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let counts = twin.processor.counts();
    assert!(counts.records_in > 0);
    assert_eq!(counts.late, 0, "no late records after resuming");
    assert_eq!(counts.dead_letters, 0);
    let second = twin.shutdown().await.unwrap();
    let second_alerts = second_alerts.await.unwrap();
    let raised_again: Vec<&(String, String)> = second_alerts
        .iter()
        .filter(|(id, s)| s == "raised" && still_active.contains(&id))
        .collect();
    assert!(raised_again.is_empty(), "raised twice: {raised_again:?}");
    assert_eq!(
        second.alerts_raised as usize,
        second_alerts.iter().filter(|(_, s)| s == "raised").count(),
        "the summary counts this run's alerts, not the checkpoint's"
    );
    std::fs::remove_file(&path).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_checkpoint_of_another_city_is_refused_clearly() {
    let path = std::env::temp_dir().join(format!("streamcity-other-{}.json", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let config = EmbeddedConfig {
        addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        checkpoint: Some(path.clone()),
        ..EmbeddedConfig::default()
    };
    let twin = Embedded::start(config.clone()).await.unwrap();
    wait_for_vehicles(&twin, 10).await;
    twin.shutdown().await.unwrap();
    let other = EmbeddedConfig {
        network: streamcity_network::SyntheticConfig {
            seed: 7,
            ..streamcity_network::SyntheticConfig::default()
        },
        ..config
    };
    let err = match Embedded::start(other).await {
        Ok(_) => panic!("a checkpoint of another network was accepted"),
        Err(e) => format!("{e:#}"),
    };
    assert!(
        err.contains("another network") && err.contains("seed 7"),
        "{err}"
    );
    std::fs::remove_file(&path).unwrap();
}
