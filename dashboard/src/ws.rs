//! `/ws`: a snapshot on connect, then conflated deltas; see `dashboard/PROTOCOL.md`.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::response::Response;
use tokio::sync::broadcast::error::RecvError;

use crate::live::Live;

/// How often the server pings an idle connection.
const HEARTBEAT: Duration = Duration::from_secs(15);

/// `GET /ws`: upgrades to a WebSocket and streams the live picture.
pub async fn handler(ws: WebSocketUpgrade, State(live): State<Arc<Live>>) -> Response {
    ws.max_message_size(64 * 1024).on_upgrade(move |socket| client(socket, live))
}

async fn client(mut socket: WebSocket, live: Arc<Live>) {
    let (mut rx, snapshot) = live.subscribe();
    let mut last_seq = snapshot.seq;
    if socket.send(Message::Text(snapshot.text)).await.is_err() {
        return;
    }
    let mut heartbeat = tokio::time::interval(HEARTBEAT);
    heartbeat.reset();
    loop {
        tokio::select! {
            frame = rx.recv() => match frame {
                Ok(frame) => {
                    if frame.seq <= last_seq {
                        continue; // already in the snapshot
                    }
                    last_seq = frame.seq;
                    if socket.send(Message::Text(frame.text)).await.is_err() {
                        return;
                    }
                }
                Err(RecvError::Lagged(missed)) => {
                    // Too slow: drop the backlog and catch up with a fresh snapshot.
                    tracing::debug!(missed, "Slow WebSocket client sent a fresh snapshot");
                    let snapshot = live.snapshot();
                    last_seq = snapshot.seq;
                    if socket.send(Message::Text(snapshot.text)).await.is_err() {
                        return;
                    }
                }
                Err(RecvError::Closed) => return close_going_away(socket).await,
            },
            _ = live.closing().cancelled() => return close_going_away(socket).await,
            incoming = socket.recv() => match incoming {
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
                Some(Ok(_)) => {}
            },
            _ = heartbeat.tick() => {
                if socket.send(Message::Ping(Default::default())).await.is_err() {
                    return;
                }
            }
        }
    }
}

async fn close_going_away(mut socket: WebSocket) {
    let frame = CloseFrame { code: 1001, reason: "server shutting down".into() };
    let _ = socket.send(Message::Close(Some(frame))).await;
}
