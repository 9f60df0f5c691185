//! The HTTP server every StreamCity port runs on: the dashboard's and the stages'
//! `/metrics` ports. Unlike a bare `axum::serve`, it cannot be worn down by clients:
//!
//! - at most [`ServerLimits::max_connections`] open HTTP connections; one more is
//!   answered `503 Service Unavailable` at once and closed;
//! - a connection must send a request's headers within [`ServerLimits::header_timeout`]
//!   of opening, and of finishing its previous request (keep-alive), or it is closed:
//!   half-open (slowloris) and silent connections do not hold a slot;
//! - accept errors (the process out of file descriptors) are logged once per 10 s with
//!   a count, and the loop backs off briefly instead of spinning.
//!
//! WebSocket connections, once upgraded, leave the HTTP count: `/ws` has its own cap.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use streamcity_core::CancellationToken;
use streamcity_core::throttle::Throttle;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

/// Limits of one HTTP server.
#[derive(Debug, Clone, Copy)]
pub struct ServerLimits {
    /// Open HTTP connections at most (WebSocket clients not included).
    pub max_connections: usize,
    /// Time a connection has to send a request's headers, from opening or from the end
    /// of its previous response.
    pub header_timeout: Duration,
    /// On shutdown, how long open requests have to finish.
    pub drain_timeout: Duration,
}

impl Default for ServerLimits {
    fn default() -> Self {
        ServerLimits {
            max_connections: 1024,
            header_timeout: Duration::from_secs(10),
            drain_timeout: Duration::from_secs(5),
        }
    }
}

/// What a connection over the cap reads before it is closed.
const BUSY: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain; charset=utf-8\r\nretry-after: 5\r\nconnection: close\r\ncontent-length: 45\r\n\r\nserver busy: too many connections, try later\n";

/// Connections over the cap being answered at one time, at most; more are dropped.
const MAX_REFUSING: usize = 256;

/// Serves `router` on `listener` within `limits` until `stop` is cancelled; then runs
/// `on_stop`, stops accepting and gives open requests `drain_timeout` to finish.
pub async fn serve_router(
    listener: TcpListener,
    router: Router,
    limits: ServerLimits,
    stop: CancellationToken,
    on_stop: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let refusing = Arc::new(Semaphore::new(MAX_REFUSING));
    let accept_errors = Throttle::new(Duration::from_secs(10));
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout);
    loop {
        let accepted = tokio::select! {
            biased;
            () = stop.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(e) => {
                if let Some(held) = accept_errors.ready() {
                    tracing::warn!(error = %e, "cannot accept connections (and {held} more like this)");
                }
                // Out of file descriptors, typically: let some close before retrying.
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
            if let Ok(turn) = Arc::clone(&refusing).try_acquire_owned() {
                tokio::spawn(async move {
                    refuse(stream).await;
                    drop(turn);
                });
            }
            continue;
        };
        let service = TowerToHyperService::new(router.clone());
        let connection = http
            .serve_connection(TokioIo::new(stream), service)
            .with_upgrades();
        let stopping = stop.clone();
        tokio::spawn(async move {
            let mut connection = std::pin::pin!(connection);
            let ended = tokio::select! {
                ended = connection.as_mut() => ended,
                () = stopping.cancelled() => {
                    connection.as_mut().graceful_shutdown();
                    connection.await
                }
            };
            if let Err(e) = ended {
                tracing::debug!(error = %e, "HTTP connection ended with an error");
            }
            drop(slot);
        });
    }
    on_stop.await;
    drop(listener);
    // Every slot back: every connection finished.
    let all = u32::try_from(limits.max_connections.max(1)).unwrap_or(u32::MAX);
    if tokio::time::timeout(limits.drain_timeout, slots.acquire_many(all))
        .await
        .is_err()
    {
        tracing::debug!("open HTTP requests did not finish in time; closing them");
    }
    Ok(())
}

/// Answers a connection over the cap with 503 and closes it, after reading (briefly)
/// what it sent, so that the close does not reset the connection before the client
/// has read the answer.
async fn refuse(mut stream: TcpStream) {
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        stream.write_all(BUSY).await?;
        stream.shutdown().await?;
        let mut sink = [0u8; 4096];
        while stream.read(&mut sink).await? > 0 {}
        Ok::<_, std::io::Error>(())
    })
    .await;
}
