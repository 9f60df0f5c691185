//! The operator's write endpoints: acknowledging an alert and muting a line or a kind
//! of alert for a while (`POST /api/alerts/{id}/ack`, `POST /api/mutes`), and the
//! mutes in force (`GET /api/mutes`). Each needs the bearer token ([`crate::auth`]);
//! each is published on the `alert_actions` topic and answered `202 Accepted` once the
//! bus has it: every dashboard shows it when it reads it back.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;
use streamcity_core::{Acknowledgement, AlertAction, AlertKind, Id, MuteScope, clock};

use crate::api::ApiError;
use crate::live::{ActionError, Live};

/// The longest mute, minutes (a day).
pub const MAX_MUTE_MINUTES: i64 = 24 * 60;

/// `POST /api/alerts/{id}/ack`'s optional body.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AckBody {
    /// Who acknowledges (at most 100 bytes; default `operator`).
    #[serde(default)]
    pub by: Option<String>,
}

/// `POST /api/mutes`'s body: a line or a kind, for how long.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MuteBody {
    /// The line (route id) to mute.
    #[serde(default)]
    pub line: Option<Id>,
    /// The kind of alert to mute.
    #[serde(default)]
    pub kind: Option<AlertKind>,
    /// For how long, minutes (0 lifts the mute; at most a day).
    pub minutes: i64,
    /// Who mutes (at most 100 bytes; default `operator`).
    #[serde(default)]
    pub by: Option<String>,
}

fn who(by: Option<String>) -> Result<String, ApiError> {
    let by = by.unwrap_or_else(|| "operator".into());
    if by.is_empty() || by.len() > 100 {
        return Err(ApiError::BadRequest(
            "by: give who you are in 1 to 100 bytes".into(),
        ));
    }
    Ok(by)
}

fn taken(result: Result<(), ActionError>, what: serde_json::Value) -> Response {
    match result {
        Ok(()) => (StatusCode::ACCEPTED, Json(what)).into_response(),
        Err(ActionError::Unavailable) => {
            ApiError::Busy(ActionError::Unavailable.to_string()).into_response()
        }
        Err(e) => ApiError::Busy(e.to_string()).into_response(),
    }
}

/// `POST /api/alerts/{id}/ack`: acknowledges an active alert.
pub async fn ack(
    State(live): State<Arc<Live>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    uri: Uri,
    body: axum::body::Bytes,
) -> Response {
    if let Err(refused) = live.access().check_write(&headers, uri.query()) {
        return refused.into_response();
    }
    // The body is optional: `{"by": "..."}`.
    let body: AckBody = if body.iter().all(u8::is_ascii_whitespace) {
        AckBody::default()
    } else {
        match serde_json::from_slice(&body) {
            Ok(b) => b,
            Err(e) => return ApiError::BadRequest(format!("the body: {e}")).into_response(),
        }
    };
    if !live.alert_is_active(&id) {
        return ApiError::NotFound(format!("no active alert {id}")).into_response();
    }
    let by = match who(body.by) {
        Ok(by) => by,
        Err(e) => return e.into_response(),
    };
    let at = clock::wall_clock_ms();
    let action = AlertAction::Ack {
        alert_id: Id::from(id.as_str()),
        ack: Acknowledgement { by: by.clone(), at },
    };
    taken(
        live.publish_action(&action).await,
        json!({ "acknowledged": id, "by": by, "at": at }),
    )
}

/// `POST /api/mutes`: mutes a line or a kind for a while (0 minutes lifts it).
pub async fn mute(
    State(live): State<Arc<Live>>,
    headers: HeaderMap,
    uri: Uri,
    body: axum::body::Bytes,
) -> Response {
    if let Err(refused) = live.access().check_write(&headers, uri.query()) {
        return refused.into_response();
    }
    let body: MuteBody = match serde_json::from_slice(&body) {
        Ok(b) => b,
        Err(e) => return ApiError::BadRequest(format!("the body: {e}")).into_response(),
    };
    let scope = match (body.line, body.kind) {
        (Some(line), None) if live.network.route(&line).is_some() => MuteScope::Line(line),
        (Some(line), None) => {
            return ApiError::NotFound(format!("no line {line}")).into_response();
        }
        (None, Some(kind)) => MuteScope::Kind(kind),
        _ => {
            return ApiError::BadRequest("give either a line or a kind".into()).into_response();
        }
    };
    if !(0..=MAX_MUTE_MINUTES).contains(&body.minutes) {
        return ApiError::BadRequest(format!("minutes: 0 to {MAX_MUTE_MINUTES}")).into_response();
    }
    let by = match who(body.by) {
        Ok(by) => by,
        Err(e) => return e.into_response(),
    };
    let at = clock::wall_clock_ms();
    let until = at + body.minutes * 60_000;
    let answer = json!({ "muted": scope, "until": until, "by": by });
    let action = AlertAction::Mute {
        scope,
        until,
        by,
        at,
    };
    taken(live.publish_action(&action).await, answer)
}

/// `GET /api/mutes`: the mutes in force.
pub async fn mutes(State(live): State<Arc<Live>>) -> Response {
    Json(live.mutes_json()).into_response()
}
