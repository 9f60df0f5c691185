//! `/ws`: a snapshot on connect (or the missed deltas, resuming with `?since=SEQ`),
//! then conflated deltas; filters chosen by the client, changeable on the open socket.
//! See `dashboard/PROTOCOL.md`.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Query, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use hyper_util::rt::TokioIo;
use serde::Deserialize;
use tokio::sync::broadcast::error::RecvError;
use tokio::time::Instant;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{CloseCode, Data, OpCode};
use tokio_tungstenite::tungstenite::protocol::frame::{CloseFrame, Frame};
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};

use crate::api::ApiError;
use crate::live::{ClientFilter, Live, Start};

/// Close code: the client could not keep up.
pub const CLOSE_TOO_SLOW: u16 = 4008;
/// Close code: the client sent nothing for the idle timeout.
pub const CLOSE_IDLE: u16 = 4000;
/// Close code: the server is going away.
pub const CLOSE_GOING_AWAY: u16 = 1001;
/// Close code: a message from the client was over [`MAX_CLIENT_MESSAGE`].
pub const CLOSE_TOO_BIG: u16 = 1009;

/// Largest message a client may send (a `subscribe` with its filter is far smaller).
pub const MAX_CLIENT_MESSAGE: usize = 64 * 1024;
/// `subscribe` messages answered at once, in a burst...
pub const SUBSCRIBE_BURST: u32 = 5;
/// ... and then one per this period: a client asking faster gets its latest filter
/// applied (and its snapshot) when the period is up; those in between are skipped.
pub const SUBSCRIBE_PERIOD: Duration = Duration::from_secs(1);

/// Query parameters of `/ws`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WsQuery {
    /// The last sequence number seen: resume after it.
    since: Option<u64>,
    /// The epoch of the snapshot the client started from.
    epoch: Option<u64>,
    /// Comma-separated lines.
    lines: Option<String>,
    /// Comma-separated alert kinds.
    kinds: Option<String>,
    /// `min_lat,min_lon,max_lat,max_lon`.
    bbox: Option<String>,
    /// Comma-separated topics: `vehicles`, `alerts`.
    topics: Option<String>,
}

/// A message from a client.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
enum ClientMessage {
    /// Replace the filter; answered with a fresh snapshot under it.
    Subscribe(ClientFilter),
    /// An application-level heartbeat; answered with a pong.
    Ping,
}

fn list(s: &Option<String>) -> Option<Vec<String>> {
    s.as_ref().map(|s| {
        s.split(',')
            .map(str::trim)
            .filter(|x| !x.is_empty())
            .map(str::to_owned)
            .collect()
    })
}

/// The filter given in the query string, with a clear error for bad values.
fn filter_from_query(q: &WsQuery) -> Result<ClientFilter, String> {
    let mut value = serde_json::Map::new();
    if let Some(lines) = list(&q.lines) {
        value.insert("lines".into(), serde_json::json!(lines));
    }
    if let Some(kinds) = list(&q.kinds) {
        value.insert("alert_kinds".into(), serde_json::json!(kinds));
    }
    if let Some(topics) = list(&q.topics) {
        value.insert("topics".into(), serde_json::json!(topics));
    }
    if let Some(bbox) = &q.bbox {
        let b =
            streamcity_core::query::BoundingBox::parse(bbox).map_err(|e| format!("bbox: {e}"))?;
        value.insert(
            "bbox".into(),
            serde_json::json!([b.min_lat, b.min_lon, b.max_lat, b.max_lon]),
        );
    }
    serde_json::from_value(serde_json::Value::Object(value)).map_err(|e| e.to_string())
}

/// Largest frame sent: longer messages (snapshots of big fleets) go out as standard
/// WebSocket fragments of this size. The connection's write buffer never grows past
/// one fragment, so a client costs the server a few KiB whatever the snapshot size.
pub const FRAGMENT: usize = 16 * 1024;

type Socket = WebSocketStream<TokioIo<hyper::upgrade::Upgraded>>;

fn header_has(headers: &HeaderMap, name: header::HeaderName, token: &str) -> bool {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
}

/// `GET /ws`: upgrades to a WebSocket and streams the live picture.
pub async fn handler(
    State(live): State<Arc<Live>>,
    query: Result<Query<WsQuery>, axum::extract::rejection::QueryRejection>,
    mut request: Request,
) -> Response {
    let headers = request.headers();
    if !live.allowed_origins().allows(headers) {
        let origin = headers
            .get(header::ORIGIN)
            .and_then(|o| o.to_str().ok())
            .unwrap_or("?");
        return ApiError::Forbidden(format!(
            "/ws is not open to pages from {origin}: the server allows its own origin and those given with --allowed-origin"
        ))
        .into_response();
    }
    let key = headers.get(header::SEC_WEBSOCKET_KEY).cloned();
    let is_upgrade = header_has(headers, header::CONNECTION, "upgrade")
        && header_has(headers, header::UPGRADE, "websocket")
        && headers
            .get(header::SEC_WEBSOCKET_VERSION)
            .is_some_and(|v| v == "13");
    let Some(key) = key.filter(|_| is_upgrade) else {
        return ApiError::BadRequest("/ws needs a WebSocket upgrade request (version 13)".into())
            .into_response();
    };
    let Query(query) = match query {
        Ok(q) => q,
        Err(e) => {
            return ApiError::BadRequest(format!("bad /ws parameters: {}", e.body_text()))
                .into_response();
        }
    };
    let filter = match filter_from_query(&query) {
        Ok(f) => f,
        Err(e) => return ApiError::BadRequest(format!("bad /ws parameters: {e}")).into_response(),
    };
    let Some(slot) = live.client_slot() else {
        live.metrics.ws_refused.inc();
        return ApiError::Busy(format!(
            "too many live clients ({} connected, the server's --max-clients); try again later",
            live.config().max_clients
        ))
        .into_response();
    };
    let upgrade = hyper::upgrade::on(&mut request);
    tokio::spawn(async move {
        let _slot = slot;
        let upgraded = match upgrade.await {
            Ok(u) => u,
            Err(e) => {
                tracing::debug!(error = %e, "WebSocket upgrade failed");
                return;
            }
        };
        // Clients send little: a small read buffer, and small messages.
        // Frames go out as they are sent: no write batching.
        let config = WebSocketConfig::default()
            .read_buffer_size(4 * 1024)
            .write_buffer_size(0)
            .max_message_size(Some(MAX_CLIENT_MESSAGE))
            .max_frame_size(Some(MAX_CLIENT_MESSAGE));
        let socket =
            WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, Some(config))
                .await;
        live.metrics.ws_clients.inc();
        let reason = Client {
            socket,
            live: Arc::clone(&live),
            filter,
            last_seq: 0,
            subscribes: Bucket::full(),
            wanted: None,
        }
        .run(query.since, query.epoch)
        .await;
        live.metrics.ws_clients.dec();
        if let Some(reason) = reason {
            live.metrics.closed(reason);
        }
    });
    let mut response = Response::new(Body::empty());
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = response.headers_mut();
    h.insert(
        header::CONNECTION,
        header::HeaderValue::from_static("upgrade"),
    );
    h.insert(
        header::UPGRADE,
        header::HeaderValue::from_static("websocket"),
    );
    if let Ok(accept) = header::HeaderValue::from_str(&derive_accept_key(key.as_bytes())) {
        h.insert(header::SEC_WEBSOCKET_ACCEPT, accept);
    }
    response
}

struct Client {
    socket: Socket,
    live: Arc<Live>,
    filter: ClientFilter,
    last_seq: u64,
    /// `subscribe` messages the client may still send at once.
    subscribes: Bucket,
    /// A filter asked for faster than [`SUBSCRIBE_PERIOD`] allows: applied when the
    /// bucket refills.
    wanted: Option<ClientFilter>,
}

/// A token bucket: [`SUBSCRIBE_BURST`] tokens, one more every [`SUBSCRIBE_PERIOD`].
struct Bucket {
    tokens: u32,
    refilled_at: Instant,
}

impl Bucket {
    fn full() -> Self {
        Bucket {
            tokens: SUBSCRIBE_BURST,
            refilled_at: Instant::now(),
        }
    }

    fn refill(&mut self) {
        while self.tokens < SUBSCRIBE_BURST && self.refilled_at.elapsed() >= SUBSCRIBE_PERIOD {
            self.tokens += 1;
            self.refilled_at += SUBSCRIBE_PERIOD;
        }
        if self.tokens == SUBSCRIBE_BURST {
            self.refilled_at = Instant::now();
        }
    }

    /// Takes a token if there is one.
    fn take(&mut self) -> bool {
        self.refill();
        let ok = self.tokens > 0;
        if ok {
            self.tokens -= 1;
        }
        ok
    }

    /// When the next token comes.
    fn next_at(&self) -> Instant {
        self.refilled_at + SUBSCRIBE_PERIOD
    }
}

/// Why a send did not go through.
enum SendError {
    Gone,
    TooSlow,
}

impl Client {
    /// Sends one text message (valid UTF-8 JSON, built by us), in fragments of at most
    /// [`FRAGMENT`] bytes.
    async fn send(&mut self, text: Bytes) -> Result<(), SendError> {
        let socket = &mut self.socket;
        let sending = async {
            let n = text.len().div_ceil(FRAGMENT).max(1);
            for i in 0..n {
                let chunk = text.slice(i * FRAGMENT..((i + 1) * FRAGMENT).min(text.len()));
                let opcode = if i == 0 {
                    OpCode::Data(Data::Text)
                } else {
                    OpCode::Data(Data::Continue)
                };
                socket
                    .feed(Message::Frame(Frame::message(chunk, opcode, i + 1 == n)))
                    .await?;
            }
            socket.flush().await
        };
        match tokio::time::timeout(self.live.config().send_timeout, sending).await {
            Ok(Ok(())) => {
                self.live.metrics.ws_messages_sent.inc();
                Ok(())
            }
            Ok(Err(_)) => Err(SendError::Gone),
            Err(_) => Err(SendError::TooSlow),
        }
    }

    async fn send_snapshot(&mut self) -> Result<(), SendError> {
        let (seq, text) = self.live.snapshot(&self.filter);
        self.last_seq = seq;
        self.send(text).await
    }

    /// Closes with `code` and `reason`, completing the closing handshake: the client's
    /// own Close (or its going away) is awaited briefly, so it reads ours before the
    /// connection drops.
    async fn close(mut self, code: u16, reason: &'static str) {
        let frame = CloseFrame {
            code: CloseCode::from(code),
            reason: reason.into(),
        };
        let wait = self.live.config().send_timeout;
        if tokio::time::timeout(wait, self.socket.send(Message::Close(Some(frame))))
            .await
            .is_err()
        {
            return; // could not even queue it: the client is not reading at all
        }
        let _ = tokio::time::timeout(wait, async {
            while let Some(Ok(msg)) = self.socket.next().await {
                if matches!(msg, Message::Close(_)) {
                    break;
                }
            }
        })
        .await;
    }

    /// Serves the client until it leaves or is closed; returns why the server closed
    /// it, if it did.
    async fn run(mut self, since: Option<u64>, epoch: Option<u64>) -> Option<&'static str> {
        let config = self.live.config();
        let (mut rx, start) = self.live.connect(since, epoch, &self.filter);
        let started = match start {
            Start::Snapshot(seq, text) => {
                self.last_seq = seq;
                self.send(text).await
            }
            Start::Resume(missed) => {
                let mut result = Ok(());
                for delta in missed {
                    self.last_seq = delta.seq;
                    let text = self.live.render(&delta, &self.filter);
                    result = self.send(text).await;
                    if result.is_err() {
                        break;
                    }
                }
                result
            }
        };
        match started {
            Ok(()) => {}
            Err(SendError::Gone) => return None,
            Err(SendError::TooSlow) => {
                self.close(
                    CLOSE_TOO_SLOW,
                    "client too slow: its first message was not read in time",
                )
                .await;
                return Some("too_slow");
            }
        }
        let mut heartbeat = tokio::time::interval(config.heartbeat);
        heartbeat.reset();
        let mut heard_at = Instant::now();
        let mut lags: Vec<Instant> = Vec::new();
        loop {
            let outcome = tokio::select! {
                delta = rx.recv() => match delta {
                    Ok(delta) => {
                        if delta.seq <= self.last_seq {
                            continue; // already in the snapshot
                        }
                        self.last_seq = delta.seq;
                        let text = self.live.render(&delta, &self.filter);
                        self.send(text).await
                    }
                    Err(RecvError::Lagged(missed)) => {
                        // Too slow: drop the backlog and catch up with a fresh snapshot,
                        // unless this keeps happening.
                        self.live.metrics.ws_messages_dropped.inc_by(missed);
                        lags.retain(|t| t.elapsed() < Duration::from_secs(60));
                        lags.push(Instant::now());
                        if lags.len() as u32 > config.max_lags_per_minute {
                            self.close(CLOSE_TOO_SLOW, "client too slow: fell behind repeatedly").await;
                            return Some("too_slow");
                        }
                        tracing::debug!(missed, "Slow WebSocket client sent a fresh snapshot");
                        self.send_snapshot().await
                    }
                    Err(RecvError::Closed) => {
                        self.close(CLOSE_GOING_AWAY, "server shutting down").await;
                        return None;
                    }
                },
                incoming = self.socket.next() => {
                    heard_at = Instant::now();
                    match incoming {
                        Some(Ok(Message::Text(text))) => self.on_message(text.as_str()).await,
                        Some(Ok(Message::Binary(_))) => self.error("binary messages are not understood; send JSON text").await,
                        Some(Err(tokio_tungstenite::tungstenite::Error::Capacity(_))) => {
                            self.close(CLOSE_TOO_BIG, "message too big: the limit is 64 KiB").await;
                            return Some("too_big");
                        }
                        Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return None,
                        Some(Ok(_)) => Ok(()), // pings are answered by the library; pongs just count as heard
                    }
                }
                () = tokio::time::sleep_until(self.subscribes.next_at()), if self.wanted.is_some() => {
                    match self.wanted.take() {
                        Some(filter) => self.subscribe(filter).await,
                        None => Ok(()),
                    }
                }
                _ = heartbeat.tick() => {
                    if heard_at.elapsed() >= config.idle_timeout {
                        self.close(CLOSE_IDLE, "idle timeout: nothing heard from the client").await;
                        return Some("idle");
                    }
                    match tokio::time::timeout(config.send_timeout, self.socket.send(Message::Ping(Bytes::new()))).await {
                        Ok(Ok(())) => Ok(()),
                        Ok(Err(_)) => Err(SendError::Gone),
                        Err(_) => Err(SendError::TooSlow),
                    }
                }
                _ = self.live.closing().cancelled() => {
                    self.close(CLOSE_GOING_AWAY, "server shutting down").await;
                    return None;
                }
            };
            match outcome {
                Ok(()) => {}
                Err(SendError::Gone) => return None,
                Err(SendError::TooSlow) => {
                    self.close(CLOSE_TOO_SLOW, "client too slow: a send timed out")
                        .await;
                    return Some("too_slow");
                }
            }
        }
    }

    async fn on_message(&mut self, text: &str) -> Result<(), SendError> {
        match serde_json::from_str::<ClientMessage>(text) {
            Ok(ClientMessage::Subscribe(filter)) => self.subscribe(filter).await,
            Ok(ClientMessage::Ping) => self.send(Bytes::from_static(b"{\"type\":\"pong\"}")).await,
            Err(e) => self.error(&format!("invalid message: {e}")).await,
        }
    }

    /// Applies `filter` and sends its snapshot, or keeps it for later when the client
    /// has used up its `subscribe` messages for now.
    async fn subscribe(&mut self, filter: ClientFilter) -> Result<(), SendError> {
        if !self.subscribes.take() {
            self.wanted = Some(filter);
            return Ok(());
        }
        self.wanted = None;
        self.filter = filter;
        self.send_snapshot().await
    }

    async fn error(&mut self, message: &str) -> Result<(), SendError> {
        let text = serde_json::json!({ "type": "error", "message": message }).to_string();
        self.send(Bytes::from(text)).await
    }
}
