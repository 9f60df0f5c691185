//! REST pull queries over the live state, and the JSON error type every endpoint uses.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::live::Live;

/// An error answered to a client as JSON `{"error": "..."}` with a fitting status.
/// Internal details are logged, never sent.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The thing asked for does not exist (404).
    #[error("{0}")]
    NotFound(String),
    /// The request's parameters are invalid (400).
    #[error("{0}")]
    BadRequest(String),
    /// Something failed inside the server (500).
    #[error("internal error")]
    Internal(String),
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = match &self {
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Internal(detail) => {
                tracing::error!(%detail, "Request failed");
                StatusCode::INTERNAL_SERVER_ERROR
            }
        };
        (status, Json(json!({ "error": self.to_string() }))).into_response()
    }
}

fn json_body(body: impl Into<axum::body::Body>) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], body.into()).into_response()
}

/// `GET /api/routes`: every route with its shape and stops.
pub async fn routes(State(live): State<Arc<Live>>) -> Response {
    json_body(live.routes_json.clone())
}

/// `GET /api/stops`: every stop.
pub async fn stops(State(live): State<Arc<Live>>) -> Response {
    json_body(live.stops_json.clone())
}

/// `GET /api/vehicles`: the live vehicle table.
pub async fn vehicles(State(live): State<Arc<Live>>) -> Response {
    json_body(live.vehicles_json())
}

/// `GET /api/alerts`: active alerts and the most recent alert records.
pub async fn alerts(State(live): State<Arc<Live>>) -> Response {
    json_body(live.alerts_json())
}

/// `GET /healthz`: the server is up.
pub async fn healthz() -> &'static str {
    "ok"
}

/// `GET /readyz`: 200 once the live vehicle table has rows, 503 before.
pub async fn readyz(State(live): State<Arc<Live>>) -> Response {
    match live.vehicle_count() {
        0 => (StatusCode::SERVICE_UNAVAILABLE, Json(json!({ "error": "no vehicle data yet" }))).into_response(),
        n => Json(json!({ "status": "ready", "vehicles": n })).into_response(),
    }
}

/// Any other `/api/...` path.
pub async fn not_found(uri: axum::http::Uri) -> ApiError {
    ApiError::NotFound(format!("no such endpoint: {}", uri.path()))
}
