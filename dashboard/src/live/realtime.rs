//! GTFS-realtime feeds of the live views: built once per sequence number, when first
//! asked for, and shared by every poller (with an ETag, so a poller that has it gets
//! `304 Not Modified`).

use std::collections::{HashMap, HashSet};
use std::hash::{Hash as _, Hasher as _};
use std::sync::{Arc, OnceLock, PoisonError};

use bytes::Bytes;
use prost::Message;
use streamcity_core::geo::LatLon;
use streamcity_core::{
    CityIncident, CityIncidentKind, Id, IncidentStatus, TrafficIncident, TransitEffect,
    VehiclePosition, decode,
};
use streamcity_realtime::proto::FeedMessage;
use streamcity_realtime::trips::{
    cancelled as cancelled_runs, entity as trip_update_entity, moving_runs, next_run,
};
use streamcity_realtime::vehicles::entity as vehicle_entity;
use streamcity_realtime::{Disruptions, Slowdown, encode_entity, encoded_feed, service_alerts};

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
    seq: (u64, u64),
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
            .get_or_init(|| {
                FeedMessage::decode(&self.protobuf[..])
                    .ok()
                    .and_then(|m| serde_json::to_vec(&m).ok())
                    .map(Bytes::from)
                    .unwrap_or_default()
            })
            .clone()
    }
}

/// Each vehicle's entities as last encoded, so that the next feeds are built from the
/// vehicles that reported since (and from all of them again when the incidents,
/// which their congestion, cancellations and skipped stops depend on, change).
#[derive(Debug, Default)]
pub(super) struct Encoded {
    incidents: u64,
    vehicles: HashMap<Id, EncodedVehicle>,
}

#[derive(Debug)]
struct EncodedVehicle {
    reported: i64,
    position: Vec<u8>,
    /// The runs' entity ids and encodings: the run it is on, the next of its block.
    updates: Vec<(String, Vec<u8>)>,
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
    /// a new one. The three are built together, from the same state of the views, so
    /// that a consumer polling them finds the same vehicles on the same runs in each.
    pub fn realtime(&self, feed: RealtimeFeed) -> Arc<BuiltFeed> {
        let state = self.read();
        // The views' version: their delta's sequence number and their incidents'.
        let seq = (state.feed.seq, state.feed.incidents_version);
        let mut built = self.realtime.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(b) = &built[feed.index()]
            && b.seq == seq
        {
            return Arc::clone(b);
        }
        let views = &state.views;
        let context = Context::of(views);
        let mut encoded = self.encoded.lock().unwrap_or_else(PoisonError::into_inner);
        let encoded = &mut *encoded;
        if encoded.incidents != context.fingerprint {
            encoded.vehicles.clear();
            encoded.incidents = context.fingerprint;
        }
        encoded
            .vehicles
            .retain(|id, _| views.vehicles.contains_key(id));
        // The vehicles that reported since their entities were last encoded, on two
        // threads.
        let stale: Vec<&VehiclePosition> = views
            .vehicles
            .values()
            .map(|v| &v.position)
            .filter(|p| {
                encoded
                    .vehicles
                    .get(&p.vehicle_id)
                    .is_none_or(|e| e.reported != p.timestamp)
            })
            .collect();
        {
            let predictor = self
                .predictor
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            let learned = &predictor.learned;
            let encode = |part: &[&VehiclePosition]| -> Vec<(Id, EncodedVehicle)> {
                part.iter()
                    .map(|p| {
                        let position = vehicle_entity(&self.network, p, &context.slowdowns);
                        let now = views.time;
                        let disruptions = &context.disruptions;
                        let updates = [
                            trip_update_entity(&self.network, learned, p, now, disruptions),
                            next_run(&self.network, learned, p, now, disruptions),
                        ]
                        .into_iter()
                        .flatten()
                        .map(|e| (e.id.clone(), encode_entity(&e)))
                        .collect();
                        let fresh = EncodedVehicle {
                            reported: p.timestamp,
                            position: encode_entity(&position),
                            updates,
                        };
                        (p.vehicle_id.clone(), fresh)
                    })
                    .collect()
            };
            let (first, second) = stale.split_at(stale.len() / 2);
            let fresh = std::thread::scope(|scope| {
                let other = scope.spawn(|| encode(second));
                let mut fresh = encode(first);
                fresh.extend(
                    other
                        .join()
                        .unwrap_or_else(|panic| std::panic::resume_unwind(panic)),
                );
                fresh
            });
            encoded.vehicles.extend(fresh);
        }

        // Vehicle positions, in vehicle-id order.
        let mut ids: Vec<&Id> = encoded.vehicles.keys().collect();
        ids.sort_unstable();
        let positions = encoded_feed(
            views.time,
            ids.iter()
                .map(|id| encoded.vehicles[*id].position.as_slice()),
        );
        // Trip updates: the runs vehicles are on and the runs cancelled, in id order.
        let moving = moving_runs(views.vehicles.values().map(|v| &v.position));
        let cancelled: Vec<(String, Vec<u8>)> =
            cancelled_runs(&self.network, views.time, &context.disruptions, &moving)
                .iter()
                .map(|e| (e.id.clone(), encode_entity(e)))
                .collect();
        let gone: HashSet<&str> = cancelled.iter().map(|(id, _)| id.as_str()).collect();
        let mut runs: Vec<(&str, &[u8])> = encoded
            .vehicles
            .values()
            .flat_map(|e| &e.updates)
            .map(|(id, bytes)| (id.as_str(), bytes.as_slice()))
            .filter(|(id, _)| !gone.contains(id))
            .chain(cancelled.iter().map(|(id, b)| (id.as_str(), b.as_slice())))
            .collect();
        runs.sort_unstable_by(|a, b| a.0.cmp(b.0).then_with(|| a.1.cmp(b.1)));
        runs.dedup_by(|a, b| a.0 == b.0);
        let updates = encoded_feed(views.time, runs.iter().map(|r| r.1));
        let alerts = self.alerts(views, &context).encode_to_vec();

        let seal = |f: RealtimeFeed, bytes: Vec<u8>| {
            Arc::new(BuiltFeed {
                seq,
                protobuf: Bytes::from(bytes),
                json: OnceLock::new(),
                etag: format!("\"{}-{}.{}-{}\"", self.epoch, seq.0, seq.1, f.index()),
            })
        };
        let all = [
            seal(RealtimeFeed::VehiclePositions, positions),
            seal(RealtimeFeed::TripUpdates, updates),
            seal(RealtimeFeed::Alerts, alerts),
        ];
        let asked = Arc::clone(&all[feed.index()]);
        *built = all.map(Some);
        asked
    }

    /// The `Alerts` feed of `views`, whose incidents `context` has read.
    fn alerts(&self, views: &super::views::Views, context: &Context) -> FeedMessage {
        service_alerts(
            &self.network,
            views.time,
            &context.traffic,
            &context.city,
            views.active.values().map(|(a, _)| a),
            |id| views.vehicles.get(id).map(|v| &v.position),
        )
    }
}

/// The incidents in force, read once for the three feeds: what they do to vehicles
/// (their congestion level), lines suspended and roads closed; and a fingerprint of
/// them all.
struct Context {
    fingerprint: u64,
    traffic: Vec<TrafficIncident>,
    city: Vec<CityIncident>,
    slowdowns: Vec<Slowdown>,
    disruptions: Disruptions,
}

impl Context {
    fn of(views: &super::views::Views) -> Context {
        let mut fingerprint = views.incidents.len() as u64;
        let (mut traffic, mut city) = (Vec::new(), Vec::new());
        for (id, i) in &views.incidents {
            let mut h = std::hash::DefaultHasher::new();
            (id, &i.raw[..]).hash(&mut h);
            fingerprint = fingerprint.rotate_left(5) ^ h.finish();
            match i.source {
                "traffic" => traffic.extend(decode::<TrafficIncident>(&i.raw).ok()),
                "city" => city.extend(decode::<CityIncident>(&i.raw).ok()),
                _ => {}
            }
        }
        let slowdowns = traffic
            .iter()
            .map(|t| Slowdown {
                at: LatLon::new(t.lat, t.lon),
                radius_m: t.radius_m,
                speed_factor: t.speed_factor,
            })
            .collect();
        let mut disruptions = Disruptions::default();
        for c in city.iter().filter(|c| c.status == IncidentStatus::Active) {
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
        Context {
            fingerprint,
            traffic,
            city,
            slowdowns,
            disruptions,
        }
    }
}
