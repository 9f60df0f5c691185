//! What a `/ws` client asks for: topics, lines, a bounding box, alert kinds.

use std::collections::HashSet;

use serde::Deserialize;
use streamcity_core::query::BoundingBox;
use streamcity_core::{AlertKind, Id};

/// What a `/ws` client wants; every field left out means "everything".
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientFilter {
    /// Topics: `vehicles`, `alerts` (both when left out).
    #[serde(default)]
    pub topics: Option<HashSet<ClientTopic>>,
    /// Only these lines' vehicles.
    #[serde(default)]
    pub lines: Option<HashSet<Id>>,
    /// Only vehicles and placed alerts inside `[min_lat, min_lon, max_lat, max_lon]`.
    #[serde(default, deserialize_with = "bbox_from_array")]
    pub bbox: Option<BoundingBox>,
    /// Only these kinds of alert.
    #[serde(default)]
    pub alert_kinds: Option<HashSet<AlertKind>>,
}

/// What a client can subscribe to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClientTopic {
    /// Vehicle positions.
    Vehicles,
    /// Alerts.
    Alerts,
}

fn bbox_from_array<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<BoundingBox>, D::Error> {
    let Some(v) = Option::<Vec<f64>>::deserialize(d)? else {
        return Ok(None);
    };
    let text = v.iter().map(f64::to_string).collect::<Vec<_>>().join(",");
    BoundingBox::parse(&text)
        .map(Some)
        .map_err(serde::de::Error::custom)
}

impl ClientFilter {
    /// True when nothing is filtered out.
    pub fn is_everything(&self) -> bool {
        *self == ClientFilter::default()
    }

    pub(super) fn wants(&self, topic: ClientTopic) -> bool {
        self.topics.as_ref().is_none_or(|t| t.contains(&topic))
    }

    pub(super) fn inside(&self, at: Option<(f64, f64)>) -> bool {
        match (self.bbox, at) {
            (Some(b), Some((lat, lon))) => b.contains(lat, lon),
            _ => true,
        }
    }

    /// Whether a vehicle of line `route` at `at` passes.
    pub(super) fn vehicle(&self, route: Option<&Id>, at: Option<(f64, f64)>) -> bool {
        self.wants(ClientTopic::Vehicles)
            && self
                .lines
                .as_ref()
                .is_none_or(|l| route.is_some_and(|r| l.contains(r)))
            && self.inside(at)
    }

    /// Whether an alert of `kind` at `at` passes.
    pub(super) fn alert(&self, kind: Option<AlertKind>, at: Option<(f64, f64)>) -> bool {
        self.wants(ClientTopic::Alerts)
            && self
                .alert_kinds
                .as_ref()
                .is_none_or(|k| kind.is_some_and(|kind| k.contains(&kind)))
            && self.inside(at)
    }
}
