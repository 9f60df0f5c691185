//! StreamCity's dashboard server: the live map page, `/ws` for live updates, `/api`
//! for pull queries, `/metrics`, `/healthz` and `/readyz`.
//!
//! [`app`] builds the router from shared state and is what tests call; [`serve`] runs
//! it on a listener until cancelled. [`live::run_ingest`] feeds the state from the bus.
//! The protocol is documented in `dashboard/PROTOCOL.md`.

pub mod api;
pub mod assets;
pub mod auth;
pub mod live;
pub mod metrics;
pub mod operator;
pub mod origin;
pub mod server;
pub mod ws;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use streamcity_core::CancellationToken;
use tokio::net::TcpListener;
use tower_http::compression::CompressionLayer;

pub use live::{Live, LiveConfig};
pub use origin::AllowedOrigins;
pub use server::ServerLimits;

/// The dashboard's routes over the live state.
pub fn app(live: Arc<Live>) -> Router {
    // The operator's writes: small bodies, the token checked by each.
    let writes = Router::new()
        .route("/api/alerts/{id}/ack", post(operator::ack))
        .route("/api/mutes", post(operator::mute).get(operator::mutes))
        .layer(DefaultBodyLimit::max(4096));
    let api = Router::new()
        .route("/api/status", get(api::status))
        .route("/api/routes", get(api::routes))
        .route("/api/stops", get(api::stops))
        .route("/api/stops/{id}", get(api::stop))
        .route("/api/trips/{id}", get(api::trip))
        .route(
            "/gtfs-rt/vehicle-positions",
            get(api::gtfs_rt_vehicle_positions),
        )
        .route("/gtfs-rt/trip-updates", get(api::gtfs_rt_trip_updates))
        .route("/gtfs-rt/alerts", get(api::gtfs_rt_alerts))
        .route("/api/vehicles", get(api::vehicles))
        .route("/api/vehicles/{id}", get(api::vehicle))
        .route("/api/alerts", get(api::alerts))
        .route("/api/incidents", get(api::incidents))
        .route("/api/series", get(api::series))
        .route("/api/lines/{id}", get(api::line))
        .route("/api/openapi.json", get(api::openapi))
        .merge(writes)
        .route("/api/{*rest}", get(api::not_found))
        .route("/ws", get(ws::handler))
        .route_layer(axum::middleware::from_fn_with_state(
            Arc::clone(&live),
            auth::reads,
        ));
    let open = Router::new()
        .route("/metrics", get(api::metrics))
        .fallback(assets::serve);
    Router::new()
        .route("/healthz", get(api::healthz))
        .route("/readyz", get(api::readyz))
        .merge(api.merge(open).layer(CompressionLayer::new()))
        .with_state(live)
}

/// Serves the dashboard on `listener` within `limits` until `stop` is cancelled; then
/// closes the WebSocket clients (code 1001) and finishes open requests.
pub async fn serve(
    listener: TcpListener,
    live: Arc<Live>,
    limits: ServerLimits,
    stop: CancellationToken,
) -> std::io::Result<()> {
    let closing = Arc::clone(&live);
    server::serve_router(listener, app(live), limits, stop, async move {
        closing.close_clients();
    })
    .await
}
