//! GTFS-realtime feeds of the live views: built once per sequence number, when first
//! asked for, and shared by every poller (with an ETag, so a poller that has it gets
//! `304 Not Modified`).

use std::sync::{Arc, OnceLock, PoisonError};

use bytes::Bytes;
use prost::Message;
use streamcity_core::geo::LatLon;
use streamcity_core::{
    CityIncident, CityIncidentKind, IncidentStatus, TrafficIncident, TransitEffect, decode,
};
use streamcity_realtime::proto::FeedMessage;
use streamcity_realtime::{Disruptions, Slowdown, service_alerts, trip_updates, vehicle_positions};

use super::Live;
use crate::metrics::Sample;
use streamcity_realtime::predict::Predictor;

/// The feeds served under `/gtfs-rt/`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RealtimeFeed {
    /// `VehiclePositions`.
    VehiclePositions,
    /// `TripUpdates`.
    TripUpdates,
    /// `Alerts`.
    Alerts,
}

impl RealtimeFeed {
    fn index(self) -> usize {
        match self {
            RealtimeFeed::VehiclePositions => 0,
            RealtimeFeed::TripUpdates => 1,
            RealtimeFeed::Alerts => 2,
        }
    }
}

/// A feed as built for one sequence number of the views.
#[derive(Debug)]
pub struct BuiltFeed {
    seq: u64,
    message: FeedMessage,
    /// The protobuf encoding.
    pub protobuf: Bytes,
    json: OnceLock<Bytes>,
    /// Names this version of the feed (a strong validator: the same bytes).
    pub etag: String,
}

impl BuiltFeed {
    /// The same feed as JSON, made once when first asked for.
    pub fn json(&self) -> Bytes {
        self.json
            .get_or_init(|| Bytes::from(serde_json::to_vec(&self.message).unwrap_or_default()))
            .clone()
    }
}

/// The predictions' errors by horizon, for `/metrics`: the median and 90th percentile
/// absolute error of the twin's predictions and of the naive constant delay, and how
/// many predictions were checked.
pub(super) fn accuracy_samples(
    predictor: Arc<std::sync::Mutex<Predictor>>,
) -> impl Fn() -> Vec<Sample> + Send + Sync + 'static {
    move || {
        let rows = predictor
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .ledger
            .accuracy();
        let mut out = Vec::new();
        for row in rows {
            let horizon = format!("{}-{}", row.horizon.0, row.horizon.1);
            out.push(Sample::gauge(
                "streamcity_prediction_checked",
                "Arrival predictions checked against the arrival (the latest kept), by how many minutes ahead they were made",
                &[("horizon_min", &horizon)],
                row.samples as f64,
            ));
            for (predictor, (p50, p90)) in [("twin", row.model), ("naive", row.naive)] {
                for (quantile, value) in [("0.5", p50), ("0.9", p90)] {
                    out.push(Sample::gauge(
                        "streamcity_prediction_error_seconds",
                        "Absolute error of arrival predictions, seconds: the twin's model and the naive constant delay, by horizon",
                        &[
                            ("horizon_min", &horizon),
                            ("predictor", predictor),
                            ("quantile", quantile),
                        ],
                        value,
                    ));
                }
            }
        }
        out
    }
}

/// The feeds built for the latest sequence number each was asked at.
pub(super) type Built = [Option<Arc<BuiltFeed>>; 3];

impl Live {
    /// `feed` as the views are now: the one built already for this sequence number, or
    /// a new one.
    pub fn realtime(&self, feed: RealtimeFeed) -> Arc<BuiltFeed> {
        let state = self.read();
        let seq = state.feed.seq;
        let mut built = self.realtime.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(b) = &built[feed.index()]
            && b.seq == seq
        {
            return Arc::clone(b);
        }
        // All three from the same views, so that a consumer polling them together
        // finds the same vehicles on the same trips in each.
        let build = |f: RealtimeFeed| {
            let message = self.message(f, &state.views);
            let protobuf = Bytes::from(message.encode_to_vec());
            let etag = format!("\"{}-{seq}-{}\"", self.epoch, f.index());
            Arc::new(BuiltFeed {
                seq,
                message,
                protobuf,
                json: OnceLock::new(),
                etag,
            })
        };
        let asked = build(feed);
        for f in [
            RealtimeFeed::VehiclePositions,
            RealtimeFeed::TripUpdates,
            RealtimeFeed::Alerts,
        ] {
            built[f.index()] = Some(if f.index() == feed.index() {
                Arc::clone(&asked)
            } else {
                build(f)
            });
        }
        asked
    }

    /// `feed` of `views`.
    fn message(&self, feed: RealtimeFeed, views: &super::views::Views) -> FeedMessage {
        match feed {
            RealtimeFeed::VehiclePositions => {
                let slowdowns: Vec<Slowdown> = views
                    .incidents
                    .values()
                    .filter(|i| i.source == "traffic")
                    .filter_map(|i| decode::<TrafficIncident>(&i.raw).ok())
                    .map(|t| Slowdown {
                        at: LatLon::new(t.lat, t.lon),
                        radius_m: t.radius_m,
                        speed_factor: t.speed_factor,
                    })
                    .collect();
                vehicle_positions(
                    &self.network,
                    views.time,
                    views.vehicles.values().map(|v| &v.position),
                    &slowdowns,
                )
            }
            RealtimeFeed::TripUpdates => {
                // Lines suspended and roads closed by the city incidents in force.
                let mut disruptions = Disruptions::default();
                let city = views
                    .incidents
                    .values()
                    .filter(|i| i.source == "city")
                    .filter_map(|i| decode::<CityIncident>(&i.raw).ok())
                    .filter(|c| c.status == IncidentStatus::Active);
                for c in city {
                    if c.transit_effect == TransitEffect::Suspension {
                        let until = c.estimated_restoration.or(c.expires_at);
                        disruptions
                            .suspended
                            .extend(c.affected_routes.iter().map(|r| (r.clone(), until)));
                    }
                    if c.kind == CityIncidentKind::RoadClosure {
                        disruptions
                            .closed
                            .push((LatLon::new(c.lat, c.lon), c.radius_m));
                    }
                }
                trip_updates(
                    &self.network,
                    &self
                        .predictor
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .learned,
                    views.time,
                    views.vehicles.values().map(|v| &v.position),
                    &disruptions,
                )
            }
            RealtimeFeed::Alerts => {
                let traffic: Vec<TrafficIncident> = views
                    .incidents
                    .values()
                    .filter(|i| i.source == "traffic")
                    .filter_map(|i| decode(&i.raw).ok())
                    .collect();
                let city: Vec<CityIncident> = views
                    .incidents
                    .values()
                    .filter(|i| i.source == "city")
                    .filter_map(|i| decode(&i.raw).ok())
                    .collect();
                service_alerts(
                    &self.network,
                    views.time,
                    &traffic,
                    &city,
                    views.active.values().map(|(a, _)| a),
                    |id| views.vehicles.get(id).map(|v| &v.position),
                )
            }
        }
    }
}
