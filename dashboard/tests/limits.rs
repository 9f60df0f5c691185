//! What hostile or careless clients cannot do to the dashboard: open `/ws` from another
//! site, connect without limit, hold connections open without sending a request, send
//! oversized messages, or make the server build snapshot after snapshot.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::*;
use futures_util::{SinkExt, StreamExt};
use streamcity_dashboard::ws::{SUBSCRIBE_BURST, SUBSCRIBE_PERIOD};
use streamcity_dashboard::{AllowedOrigins, LiveConfig, ServerLimits};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

/// The status of a `/ws` upgrade sent with `origin`: 101 when accepted.
async fn upgrade_status(s: &Server, origin: Option<&str>) -> u16 {
    let mut request = format!("ws://{}/ws", s.addr).into_client_request().unwrap();
    if let Some(origin) = origin {
        request
            .headers_mut()
            .insert("origin", origin.parse().unwrap());
    }
    match within(10, "the upgrade", tokio_tungstenite::connect_async(request)).await {
        Ok(_) => 101,
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => response.status().as_u16(),
        Err(e) => panic!("upgrade failed: {e}"),
    }
}

/// What the server answers on a fresh connection to `request` (raw bytes), read
/// until it closes.
async fn raw(s: &Server, request: &[u8]) -> String {
    let mut tcp = TcpStream::connect(s.addr).await.unwrap();
    tcp.write_all(request).await.unwrap();
    let mut answer = Vec::new();
    within(10, "the raw answer", tcp.read_to_end(&mut answer))
        .await
        .unwrap();
    String::from_utf8_lossy(&answer).into_owned()
}

#[tokio::test]
async fn pages_from_other_sites_cannot_open_the_live_feed() {
    let own = server(LiveConfig::default()).await;
    let host = format!("http://{}", own.addr);
    assert_eq!(
        upgrade_status(&own, None).await,
        101,
        "a non-browser client"
    );
    assert_eq!(
        upgrade_status(&own, Some(&host)).await,
        101,
        "the map page itself"
    );
    assert_eq!(upgrade_status(&own, Some("http://evil.example")).await, 403);
    assert_eq!(upgrade_status(&own, Some("null")).await, 403);
    let listed = server_with(
        LiveConfig::default(),
        ServerLimits::default(),
        AllowedOrigins::parse(&["https://ops.example.org"]).unwrap(),
    )
    .await;
    assert_eq!(
        upgrade_status(&listed, Some("https://ops.example.org")).await,
        101
    );
    assert_eq!(
        upgrade_status(&listed, Some("http://evil.example")).await,
        403
    );
    // The refusal says why, as JSON.
    let answer = raw(
        &own,
        b"GET /ws HTTP/1.1\r\nHost: x\r\nOrigin: http://evil.example\r\nConnection: Upgrade, close\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 403"), "{answer}");
    assert!(answer.contains("--allowed-origin"), "{answer}");
}

#[tokio::test]
async fn clients_over_the_cap_get_503_and_a_slot_frees_when_one_leaves() {
    let s = server(LiveConfig {
        max_clients: 3,
        ..LiveConfig::default()
    })
    .await;
    let mut clients = Vec::new();
    for _ in 0..3 {
        let mut ws = s.connect("").await;
        assert_eq!(next(&mut ws).await["type"], "snapshot");
        clients.push(ws);
    }
    assert_eq!(upgrade_status(&s, None).await, 503);
    let answer = raw(
        &s,
        b"GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, close\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
    )
    .await
    .to_ascii_lowercase();
    assert!(answer.starts_with("http/1.1 503"), "{answer}");
    assert!(answer.contains("retry-after: 5"), "{answer}");
    assert!(answer.contains("max-clients"), "{answer}");
    // REST goes on meanwhile.
    assert_eq!(s.get("/healthz").await.0, 200);
    // One leaves: its slot is free again.
    let mut gone = clients.pop().unwrap();
    gone.close(None).await.unwrap();
    let mut status = 0;
    for _ in 0..50 {
        status = upgrade_status(&s, None).await;
        if status == 101 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(status, 101);
    let (_, metrics) = s.get("/metrics").await;
    assert!(
        metrics
            .as_str()
            .unwrap()
            .contains("streamcity_ws_refused_total 2"),
        "{metrics}"
    );
}

#[tokio::test]
async fn an_oversized_message_closes_the_client_with_1009() {
    let s = server(LiveConfig::default()).await;
    let mut ws = s.connect("").await;
    assert_eq!(next(&mut ws).await["type"], "snapshot");
    let big = format!(
        r#"{{"type":"subscribe","lines":["{}"]}}"#,
        "B".repeat(70 * 1024)
    );
    ws.send(Message::Text(big.into())).await.unwrap();
    let m = next(&mut ws).await;
    assert_eq!(m["type"], "close", "{m}");
    assert_eq!(m["code"], 1009, "{m}");
    // Others are not concerned.
    let mut other = s.connect("").await;
    assert_eq!(next(&mut other).await["type"], "snapshot");
}

#[tokio::test]
async fn subscribe_floods_are_paced_and_the_last_filter_wins() {
    let s = server(LiveConfig::default()).await;
    for v in 0..40 {
        s.vehicle(
            &format!("V{v:02}"),
            &format!("B{:02}", v % 4 + 1),
            40.7,
            -74.0,
            T0,
        );
    }
    s.live.tick();
    let mut ws = s.connect("").await;
    assert_eq!(next(&mut ws).await["type"], "snapshot");
    // 200 subscribes at once, the last one for line B03.
    let sent = 200;
    for i in 0..sent {
        let line = if i + 1 == sent { "B03" } else { "B01" };
        ws.send(Message::Text(
            format!(r#"{{"type":"subscribe","lines":["{line}"]}}"#).into(),
        ))
        .await
        .unwrap();
    }
    // The burst is answered at once; the rest wait for the next period and are
    // answered once, under the latest filter.
    let mut snapshots = Vec::new();
    let deadline = tokio::time::Instant::now() + SUBSCRIBE_PERIOD * 3;
    while let Ok(Some(Ok(msg))) = tokio::time::timeout_at(deadline, ws.next()).await {
        if let Message::Text(t) = msg {
            let v: serde_json::Value = serde_json::from_str(&t).unwrap();
            if v["type"] == "snapshot" {
                snapshots.push(v);
            }
        }
    }
    assert_eq!(snapshots.len(), SUBSCRIBE_BURST as usize + 1);
    let last = snapshots.last().unwrap();
    let lines: std::collections::HashSet<&str> = last["vehicles"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["route_id"].as_str().unwrap())
        .collect();
    assert_eq!(lines, ["B03"].into());
    assert_eq!(last["vehicles"].as_array().unwrap().len(), 10);
}

#[tokio::test]
async fn clients_starting_together_share_one_snapshot() {
    let s = server(LiveConfig::default()).await;
    s.vehicle("A1", "B01", 40.7, -74.0, T0);
    s.live.tick();
    let everything = streamcity_dashboard::live::ClientFilter::default();
    let (a, b) = (s.live.snapshot(&everything), s.live.snapshot(&everything));
    assert_eq!(a.0, b.0);
    assert_eq!(a.1.as_ptr(), b.1.as_ptr(), "one copy in memory");
    // A new sequence number: a new snapshot, with what changed.
    s.vehicle("A2", "B01", 40.7, -74.0, T0);
    s.live.tick();
    let c = s.live.snapshot(&everything);
    assert_eq!(c.0, a.0 + 1);
    assert!(String::from_utf8_lossy(&c.1).contains("A2"));
}

#[tokio::test]
async fn connections_that_send_no_request_are_closed_after_the_header_timeout() {
    let limits = ServerLimits {
        max_connections: 7,
        header_timeout: Duration::from_millis(500),
        ..ServerLimits::default()
    };
    let s = server_with(LiveConfig::default(), limits, AllowedOrigins::same_origin()).await;
    // Slowloris: half a request line, then a header every 100 ms forever; silent
    // connections; and a keep-alive connection left idle after its first answer.
    let mut slow = Vec::new();
    for _ in 0..3 {
        let mut tcp = TcpStream::connect(s.addr).await.unwrap();
        tcp.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
            .await
            .unwrap();
        slow.push(tcp);
    }
    let mut silent = Vec::new();
    for _ in 0..3 {
        silent.push(TcpStream::connect(s.addr).await.unwrap());
    }
    let mut idle = TcpStream::connect(s.addr).await.unwrap();
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut first = [0u8; 17];
    within(5, "the first answer", idle.read_exact(&mut first))
        .await
        .unwrap();
    assert_eq!(&first, b"HTTP/1.1 200 OK\r\n");
    // 7 connections held: one more is refused at once, with 503.
    let answer = raw(&s, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    // The trickling clients keep sending; the server closes them all anyway.
    let trickle = tokio::spawn(async move {
        let mut closed = 0;
        for _ in 0..30 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            closed = 0;
            for tcp in &mut slow {
                if tcp.write_all(b"X-Slow: 1\r\n").await.is_err() {
                    closed += 1;
                }
            }
            if closed == 3 {
                break;
            }
        }
        closed
    });
    for tcp in silent.iter_mut().chain([&mut idle]) {
        let mut rest = Vec::new();
        within(
            5,
            "the server closing a silent connection",
            tcp.read_to_end(&mut rest),
        )
        .await
        .ok();
    }
    assert_eq!(within(10, "the trickle", trickle).await.unwrap(), 3);
    // Slots are free again.
    assert_eq!(s.get("/healthz").await.0, 200);
}
