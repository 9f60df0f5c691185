//! REST pull queries over the live state, `/metrics`, health, and the JSON error type
//! every endpoint uses.

use std::sync::Arc;

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::json;
use streamcity_core::query::{BoundingBox, VehicleFilter};
use streamcity_core::{AlertKind, VehicleStatus, wire_name};

use crate::live::{Live, RealtimeFeed};

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
    /// The request is not allowed (403).
    #[error("{0}")]
    Forbidden(String),
    /// The server is at a limit; try again later (503, with `Retry-After`).
    #[error("{0}")]
    Busy(String),
    /// Something failed inside the server (500).
    #[error("internal error")]
    Internal(String),
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = match &self {
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::Busy(_) => {
                let body = Json(json!({ "error": self.to_string() }));
                return (
                    StatusCode::SERVICE_UNAVAILABLE,
                    [(header::RETRY_AFTER, "5")],
                    body,
                )
                    .into_response();
            }
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

/// Query parameters, or a 400 that says which one is wrong.
fn params<T: DeserializeOwned>(q: Result<Query<T>, QueryRejection>) -> Result<T, ApiError> {
    q.map(|Query(t)| t)
        .map_err(|e| ApiError::BadRequest(e.body_text()))
}

/// An enum value from its wire name (`broken_down`), or a 400 listing the valid ones
/// (`all`, by their wire names).
fn parse_enum<T: DeserializeOwned + Serialize>(
    what: &str,
    value: &str,
    all: &[T],
) -> Result<T, ApiError> {
    serde_json::from_value(json!(value)).map_err(|_| {
        let valid: Vec<String> = all.iter().map(wire_name).collect();
        ApiError::BadRequest(format!(
            "unknown {what} `{value}`; expected one of: {}",
            valid.join(", ")
        ))
    })
}

/// `GET /api/status`: the network, the simulated clock (time, speed, service day) and
/// what is live.
pub async fn status(State(live): State<Arc<Live>>) -> Response {
    Json(live.status_json()).into_response()
}

/// `GET /api/routes`: every route with its shape and stops.
pub async fn routes(State(live): State<Arc<Live>>) -> Response {
    json_body(live.routes_json.clone())
}

/// `GET /api/stops`: every stop.
pub async fn stops(State(live): State<Arc<Live>>) -> Response {
    json_body(live.stops_json.clone())
}

/// `GET /api/stops/{id}`: a stop with its live activity.
pub async fn stop(
    State(live): State<Arc<Live>>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let stop = live
        .stop_json(&id)
        .ok_or_else(|| ApiError::NotFound(format!("no stop `{id}`")))?;
    Ok(Json(stop).into_response())
}

/// `GET /api/trips/{id}`: a trip of the timetable, with its calls.
pub async fn trip(
    State(live): State<Arc<Live>>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let trip = live
        .trip_json(&id)
        .ok_or_else(|| ApiError::NotFound(format!("no trip `{id}`")))?;
    Ok(Json(trip).into_response())
}

/// Parameters of the `/gtfs-rt/` feeds.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RealtimeParams {
    format: Option<String>,
}

/// `GET /gtfs-rt/vehicle-positions[?format=json]`: the GTFS-realtime feed, protobuf (or
/// the same as JSON), with an ETag: a poller sending it back in `If-None-Match` gets
/// `304 Not Modified` until the feed changes.
pub async fn gtfs_rt_vehicle_positions(
    State(live): State<Arc<Live>>,
    headers: axum::http::HeaderMap,
    q: Result<Query<RealtimeParams>, QueryRejection>,
) -> Result<Response, ApiError> {
    realtime(&live, RealtimeFeed::VehiclePositions, &headers, q)
}

/// `GET /gtfs-rt/trip-updates[?format=json]`: as `/gtfs-rt/vehicle-positions`, the
/// trips in progress with a predicted arrival and departure at each stop to come.
pub async fn gtfs_rt_trip_updates(
    State(live): State<Arc<Live>>,
    headers: axum::http::HeaderMap,
    q: Result<Query<RealtimeParams>, QueryRejection>,
) -> Result<Response, ApiError> {
    realtime(&live, RealtimeFeed::TripUpdates, &headers, q)
}

/// `GET /gtfs-rt/alerts[?format=json]`: as `/gtfs-rt/vehicle-positions`, the service
/// alerts: incidents in force and the processor's active alerts.
pub async fn gtfs_rt_alerts(
    State(live): State<Arc<Live>>,
    headers: axum::http::HeaderMap,
    q: Result<Query<RealtimeParams>, QueryRejection>,
) -> Result<Response, ApiError> {
    realtime(&live, RealtimeFeed::Alerts, &headers, q)
}

fn realtime(
    live: &Live,
    feed: RealtimeFeed,
    headers: &axum::http::HeaderMap,
    q: Result<Query<RealtimeParams>, QueryRejection>,
) -> Result<Response, ApiError> {
    let p = params(q)?;
    let json = match p.format.as_deref() {
        None | Some("protobuf") => false,
        Some("json") => true,
        Some(other) => {
            return Err(ApiError::BadRequest(format!(
                "format `{other}`: expected protobuf or json"
            )));
        }
    };
    let built = live.realtime(feed);
    let etag = if json {
        format!("{}-json\"", built.etag.trim_end_matches('"'))
    } else {
        built.etag.clone()
    };
    let fresh = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"));
    if fresh {
        return Ok((StatusCode::NOT_MODIFIED, [(header::ETAG, etag)]).into_response());
    }
    let (kind, body) = if json {
        ("application/json", built.json())
    } else {
        ("application/x-protobuf", built.protobuf.clone())
    };
    Ok((
        [
            (header::CONTENT_TYPE, kind.to_owned()),
            (header::ETAG, etag),
        ],
        body,
    )
        .into_response())
}

/// Filters of `/api/vehicles`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VehicleParams {
    line: Option<String>,
    status: Option<String>,
    bbox: Option<String>,
}

/// `GET /api/vehicles?line=&status=&bbox=`: the live vehicle table, filtered.
pub async fn vehicles(
    State(live): State<Arc<Live>>,
    q: Result<Query<VehicleParams>, QueryRejection>,
) -> Result<Response, ApiError> {
    let p = params(q)?;
    let filter = VehicleFilter {
        route: p.line.map(Into::into),
        status: p
            .status
            .map(|s| parse_enum("status", &s, &VehicleStatus::ALL))
            .transpose()?,
        bbox: p
            .bbox
            .map(|b| {
                BoundingBox::parse(&b).map_err(|e| ApiError::BadRequest(format!("bad bbox: {e}")))
            })
            .transpose()?,
    };
    Ok(json_body(live.vehicles_json(&filter)))
}

/// `GET /api/vehicles/{id}`: one vehicle's latest report.
pub async fn vehicle(
    State(live): State<Arc<Live>>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    live.vehicle_json(&id)
        .map(json_body)
        .ok_or_else(|| ApiError::NotFound(format!("no vehicle `{id}`")))
}

/// Filters of `/api/alerts`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertParams {
    kind: Option<String>,
}

/// `GET /api/alerts?kind=`: active alerts and the most recent alert records.
pub async fn alerts(
    State(live): State<Arc<Live>>,
    q: Result<Query<AlertParams>, QueryRejection>,
) -> Result<Response, ApiError> {
    let kind = params(q)?
        .kind
        .map(|k| parse_enum("kind", &k, &AlertKind::ALL))
        .transpose()?;
    Ok(json_body(live.alerts_json(kind)))
}

/// Filters of `/api/incidents`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IncidentParams {
    /// `lat,lon`: incidents whose area covers this point.
    near: Option<String>,
    /// Widen each area by this much, metres (with `near`).
    radius_m: Option<f64>,
    /// District name, e.g. `Eastside`.
    area: Option<String>,
    /// Kind, e.g. `power_outage` or `accident`.
    kind: Option<String>,
}

/// `GET /api/incidents?near=lat,lon&radius_m=&area=&kind=`: incidents in force, e.g.
/// "is the power out in my area?".
pub async fn incidents(
    State(live): State<Arc<Live>>,
    q: Result<Query<IncidentParams>, QueryRejection>,
) -> Result<Response, ApiError> {
    let p = params(q)?;
    let near = match &p.near {
        None => None,
        Some(s) => {
            let bad = || ApiError::BadRequest(format!("bad near `{s}`: expected lat,lon"));
            let (lat, lon) = s.split_once(',').ok_or_else(bad)?;
            let (lat, lon): (f64, f64) = (
                lat.trim().parse().map_err(|_| bad())?,
                lon.trim().parse().map_err(|_| bad())?,
            );
            if !streamcity_core::geo::LatLon::new(lat, lon).is_valid() {
                return Err(bad());
            }
            Some((lat, lon))
        }
    };
    let margin = p.radius_m.unwrap_or(0.0);
    if !(margin.is_finite() && margin >= 0.0) {
        return Err(ApiError::BadRequest(
            "radius_m must be a non-negative number".into(),
        ));
    }
    if p.radius_m.is_some() && near.is_none() {
        return Err(ApiError::BadRequest("radius_m needs near=lat,lon".into()));
    }
    Ok(json_body(live.incidents_json(
        near,
        margin,
        p.area.as_deref(),
        p.kind.as_deref(),
    )))
}

/// `GET /api/series`: the last hour's figures (on-time share, active alerts by kind,
/// riders waiting, events per second), sampled every `series_every` of wall time.
pub async fn series(State(live): State<Arc<Live>>) -> Response {
    Json(live.series_json()).into_response()
}

/// `GET /api/lines/{route_id}`: a line's vehicles in order along it with their
/// headways, and its string lines.
pub async fn line(
    State(live): State<Arc<Live>>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let line = live
        .line_json(&id)
        .ok_or_else(|| ApiError::NotFound(format!("no line `{id}`")))?;
    Ok(Json(line).into_response())
}

/// `GET /api/openapi.json`: the API's OpenAPI description.
pub async fn openapi() -> Response {
    json_body(include_str!("../openapi.json"))
}

/// `GET /metrics`: Prometheus text format.
pub async fn metrics(State(live): State<Arc<Live>>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        live.metrics.render(),
    )
        .into_response()
}

/// `GET /healthz`: the server is up.
pub async fn healthz() -> &'static str {
    "ok"
}

/// `GET /readyz`: 200 once the live vehicle table has rows, 503 before.
pub async fn readyz(State(live): State<Arc<Live>>) -> Response {
    match live.vehicle_count() {
        0 => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "error": "no vehicle data yet" })),
        )
            .into_response(),
        n => Json(json!({ "status": "ready", "vehicles": n })).into_response(),
    }
}

/// Any other `/api/...` path.
pub async fn not_found(uri: axum::http::Uri) -> ApiError {
    ApiError::NotFound(format!("no such endpoint: {}", uri.path()))
}
