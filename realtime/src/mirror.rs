//! Mirror mode: an agency's own GTFS-realtime feeds turned into the twin's vehicle
//! reports, so the processor, the dashboard and the twin's own feeds run on the real
//! vehicles of the static feed's city.
//!
//! A `VehiclePositions` entity becomes a [`VehiclePosition`]: its trip (which must be
//! one of the static feed's), service day and start, position, next stop (named, by
//! sequence, or the trip's stop nearest the vehicle), status, occupancy and delay
//! (from a `TripUpdates` feed read alongside, else against the timetable where the
//! vehicle is). A vehicle's report is handed on only when it is newer than the last
//! one handed on, so a feed polled again unchanged adds nothing. Whatever cannot be
//! used (a feed that does not decode, an entity without a position, a trip the static
//! feed does not have) is counted, never fatal.

use std::collections::HashMap;
use std::io::Read as _;

use prost::Message as _;
use streamcity_core::geo::{LatLon, distance_m};
use streamcity_core::{Id, OccupancyStatus, Validate as _, VehiclePosition, VehicleStatus};
use streamcity_network::calendar::service_time;
use streamcity_network::model::Trip;
use streamcity_network::{Date, Network};

use crate::proto::{self, vehicle_position as vp};

/// How long a vehicle or a trip's delay is remembered without news, ms.
const FORGET_AFTER_MS: i64 = 3 * 3_600_000;
/// The largest feed accepted, bytes (decompressed).
pub const MAX_FEED_BYTES: usize = 64 << 20;

/// Why a feed was not used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FeedError {
    /// Not a GTFS-realtime `FeedMessage`.
    #[error("not a GTFS-realtime feed: {0}")]
    Undecodable(String),
    /// Larger than [`MAX_FEED_BYTES`].
    #[error("feed larger than {MAX_FEED_BYTES} bytes")]
    TooLarge,
}

/// What the mirror has taken in, for `/metrics` and the logs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MirrorCounts {
    /// Feeds decoded.
    pub feeds: u64,
    /// Feeds that could not be decoded.
    pub undecodable: u64,
    /// Vehicle entities read.
    pub vehicles: u64,
    /// Trip updates read (their delays go on the vehicles' reports).
    pub trip_updates: u64,
    /// Reports handed on.
    pub reports: u64,
    /// Vehicle entities no newer than the vehicle's last report (a feed polled again).
    pub unchanged: u64,
    /// Entities whose trip is not in the static feed (or that name none).
    pub unknown_trip: u64,
    /// Vehicle entities without a usable position, or otherwise invalid.
    pub invalid: u64,
}

/// The state of a mirror: what it last handed on, the delays trip updates gave.
#[derive(Debug, Default)]
pub struct Mirror {
    last: HashMap<Id, i64>,
    delays: HashMap<Id, (i32, i64)>,
    /// What it has taken in.
    pub counts: MirrorCounts,
}

/// `bytes` as a feed message: gzip-compressed or not.
pub fn decode(bytes: &[u8]) -> Result<proto::FeedMessage, FeedError> {
    let plain;
    let bytes = if bytes.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(bytes)
            .take(MAX_FEED_BYTES as u64 + 1)
            .read_to_end(&mut out)
            .map_err(|e| FeedError::Undecodable(format!("gzip: {e}")))?;
        plain = out;
        &plain[..]
    } else {
        bytes
    };
    if bytes.len() > MAX_FEED_BYTES {
        return Err(FeedError::TooLarge);
    }
    let feed =
        proto::FeedMessage::decode(bytes).map_err(|e| FeedError::Undecodable(e.to_string()))?;
    if feed.header.gtfs_realtime_version.is_empty() {
        return Err(FeedError::Undecodable(
            "the header has no gtfs_realtime_version".to_owned(),
        ));
    }
    Ok(feed)
}

impl Mirror {
    /// Takes in one fetched feed (received at `received_ms`): the vehicle reports it
    /// brings that are new. A feed that does not decode is counted and returned as an
    /// error; nothing else of it is used.
    pub fn take(
        &mut self,
        network: &Network,
        bytes: &[u8],
        received_ms: i64,
    ) -> Result<Vec<VehiclePosition>, FeedError> {
        let feed = match decode(bytes) {
            Ok(feed) => feed,
            Err(e) => {
                self.counts.undecodable += 1;
                return Err(e);
            }
        };
        self.counts.feeds += 1;
        let header_ms = feed
            .header
            .timestamp
            .and_then(seconds_to_ms)
            .unwrap_or(received_ms);
        // Delays first: a feed may carry trip updates and vehicles together.
        for e in &feed.entity {
            if let Some(tu) = &e.trip_update {
                self.take_trip_update(network, tu, header_ms);
            }
        }
        let mut out = Vec::new();
        for e in &feed.entity {
            let Some(v) = &e.vehicle else { continue };
            self.counts.vehicles += 1;
            match self.report(network, &e.id, v, header_ms) {
                Some(p) => {
                    self.last.insert(p.vehicle_id.clone(), p.timestamp);
                    self.counts.reports += 1;
                    out.push(p);
                }
                None => continue,
            }
        }
        // Vehicles and delays without news for hours are let go.
        let cutoff = received_ms - FORGET_AFTER_MS;
        self.last.retain(|_, &mut t| t > cutoff);
        self.delays.retain(|_, &mut (_, t)| t > cutoff);
        Ok(out)
    }

    fn take_trip_update(&mut self, network: &Network, tu: &proto::TripUpdate, header_ms: i64) {
        self.counts.trip_updates += 1;
        let Some(trip_id) = tu
            .trip
            .trip_id
            .as_deref()
            .filter(|t| network.trip(t).is_some())
        else {
            self.counts.unknown_trip += 1;
            return;
        };
        let delay = tu.delay.or_else(|| {
            tu.stop_time_update.iter().find_map(|u| {
                u.arrival
                    .as_ref()
                    .and_then(|a| a.delay)
                    .or_else(|| u.departure.as_ref().and_then(|d| d.delay))
            })
        });
        if let Some(delay) = delay {
            let at = tu.timestamp.and_then(seconds_to_ms).unwrap_or(header_ms);
            self.delays.insert(Id::from(trip_id), (delay, at));
        }
    }

    /// The report of one vehicle entity, or `None` (counted) when it cannot be used or
    /// is not new.
    fn report(
        &mut self,
        network: &Network,
        entity_id: &str,
        v: &proto::VehiclePosition,
        header_ms: i64,
    ) -> Option<VehiclePosition> {
        let descriptor = v.trip.as_ref();
        let Some((trip, descriptor)) =
            descriptor.and_then(|d| Some((network.trip(d.trip_id.as_deref()?)?, d)))
        else {
            self.counts.unknown_trip += 1;
            return None;
        };
        let (Some(position), Some(route)) = (&v.position, network.route(&trip.route_id)) else {
            self.counts.invalid += 1;
            return None;
        };
        let at = LatLon::new(f64::from(position.latitude), f64::from(position.longitude));
        let vehicle_id = v
            .vehicle
            .as_ref()
            .and_then(|d| d.id.clone().or_else(|| d.label.clone()))
            .filter(|id| !id.is_empty())
            .unwrap_or_else(|| entity_id.to_owned());
        let timestamp = v.timestamp.and_then(seconds_to_ms).unwrap_or(header_ms);
        if self
            .last
            .get(vehicle_id.as_str())
            .is_some_and(|&t| t >= timestamp)
        {
            self.counts.unchanged += 1;
            return None;
        }
        let (start_date, start_time) = run_of(network, trip, descriptor, timestamp);
        let Some(base) = network.run_base_ms(&trip.trip_id, &start_date, &start_time) else {
            // A start time that is not HH:MM:SS: the run cannot be placed.
            self.counts.invalid += 1;
            return None;
        };
        let next = next_stop(network, trip, v, at);
        let status = match v.current_status {
            Some(s) if s == vp::VehicleStopStatus::StoppedAt as i32 => VehicleStatus::StoppedAt,
            _ => VehicleStatus::InTransitTo,
        };
        let delay_s = match self.delays.get(trip.trip_id.as_str()) {
            Some(&(delay, _)) => delay,
            None => timetable_delay_s(network, trip, base, next, status, at, timestamp),
        };
        let capacity = route.capacity;
        let passengers = match (v.occupancy_percentage, v.occupancy_status) {
            (Some(pct), _) => (u64::from(pct.min(200)) * u64::from(capacity) / 100) as u32,
            (None, Some(s)) => (typical_share(s) * f64::from(capacity)).round() as u32,
            (None, None) => 0,
        };
        let report = VehiclePosition {
            vehicle_id: Id::from(vehicle_id),
            route_id: trip.route_id.clone(),
            trip_id: trip.trip_id.clone(),
            timestamp,
            lat: at.lat,
            lon: at.lon,
            bearing: position.bearing.filter(|b| b.is_finite()).unwrap_or(0.0),
            speed_mps: position
                .speed
                .filter(|s| s.is_finite() && *s >= 0.0)
                .unwrap_or(0.0),
            next_stop_id: trip.stop_times[next].stop_id.clone(),
            passengers,
            capacity,
            occupancy_status: OccupancyStatus::from_load(passengers, capacity),
            delay_s,
            status,
            start_date: Some(start_date.into()),
            start_time: Some(start_time.into()),
            boarded: None,
        };
        if report.validate().is_err() {
            self.counts.invalid += 1;
            return None;
        }
        Some(report)
    }
}

/// Seconds since the epoch as ms, when plausible.
fn seconds_to_ms(s: u64) -> Option<i64> {
    i64::try_from(s)
        .ok()
        .filter(|&s| s < 1 << 40)
        .map(|s| s * 1000)
}

/// The run a vehicle is on: the descriptor's service day and start when it gives
/// them; otherwise the service day (today's or, past midnight, yesterday's) whose run
/// of the trip is nearest `ts`, starting at the trip's first departure.
fn run_of(
    network: &Network,
    trip: &Trip,
    descriptor: &proto::TripDescriptor,
    ts: i64,
) -> (String, String) {
    let first = trip.start_s();
    let last = trip.stop_times.last().map_or(0, |st| st.arrival_s);
    let start_time = descriptor
        .start_time
        .clone()
        .filter(|t| t.len() == 8)
        .unwrap_or_else(|| service_time(first));
    let given = descriptor
        .start_date
        .as_deref()
        .filter(|d| d.len() == 8 && d.parse::<u32>().is_ok_and(|n| Date(n).is_valid()));
    let date = given.map(ToOwned::to_owned).unwrap_or_else(|| {
        let today = network.local_date(ts);
        let away = |d: Date| {
            let base = network.service_day_start_ms(d);
            let (from, to) = (
                base + i64::from(first) * 1000,
                base + i64::from(last) * 1000,
            );
            if ts < from {
                from - ts
            } else {
                (ts - to).max(0)
            }
        };
        let yesterday = Date::from_days(today.days() - 1);
        let day = if away(yesterday) < away(today) {
            yesterday
        } else {
            today
        };
        format!("{:08}", day.0)
    });
    (date, start_time)
}

/// Where stop `id` is.
fn stop_at(network: &Network, id: &str) -> Option<LatLon> {
    network.stop(id).map(|s| LatLon::new(s.lat, s.lon))
}

/// The index of the vehicle's next call: the stop named (the first such call), else
/// the call with the sequence named, else the trip's stop nearest the vehicle (or the
/// one after it, when the vehicle is past it).
fn next_stop(network: &Network, trip: &Trip, v: &proto::VehiclePosition, at: LatLon) -> usize {
    let calls = &trip.stop_times;
    if let Some(k) = v
        .stop_id
        .as_deref()
        .and_then(|id| calls.iter().position(|st| st.stop_id == id))
    {
        return k;
    }
    if let Some(seq) = v.current_stop_sequence
        && let Some(k) = calls
            .iter()
            .enumerate()
            .position(|(k, st)| st.sequence.unwrap_or(k as u32 + 1) == seq)
    {
        return k;
    }
    let away =
        |k: usize| stop_at(network, &calls[k].stop_id).map_or(f64::INFINITY, |s| distance_m(at, s));
    let Some(nearest) = (0..calls.len()).min_by(|&a, &b| away(a).total_cmp(&away(b))) else {
        return 0;
    };
    // Past the nearest stop: nearer the one after than that stop is.
    if nearest + 1 < calls.len()
        && let (Some(here), Some(then)) = (
            stop_at(network, &calls[nearest].stop_id),
            stop_at(network, &calls[nearest + 1].stop_id),
        )
        && distance_m(at, then) < distance_m(here, then)
    {
        return nearest + 1;
    }
    nearest
}

/// How late the vehicle is, seconds, against the timetable where it is: at a stop,
/// between its arrival and departure there; between two, in proportion to its
/// distances from them.
fn timetable_delay_s(
    network: &Network,
    trip: &Trip,
    base: i64,
    next: usize,
    status: VehicleStatus,
    at: LatLon,
    ts: i64,
) -> i32 {
    let calls = &trip.stop_times;
    let time = |s: u32| base + i64::from(s) * 1000;
    let (arrive, leave) = (time(calls[next].arrival_s), time(calls[next].departure_s));
    let scheduled = if status == VehicleStatus::StoppedAt || next == 0 {
        ts.clamp(arrive, leave)
    } else {
        let from = &calls[next - 1];
        let done = match (
            stop_at(network, &from.stop_id),
            stop_at(network, &calls[next].stop_id),
        ) {
            (Some(a), Some(b)) => {
                let (da, db) = (distance_m(at, a), distance_m(at, b));
                if da + db > 0.0 { da / (da + db) } else { 1.0 }
            }
            _ => 1.0,
        };
        let left = time(from.departure_s);
        left + ((arrive - left) as f64 * done) as i64
    };
    ((ts - scheduled) / 1000).clamp(i64::from(i32::MIN), i64::from(i32::MAX)) as i32
}

/// The share of places taken a status stands for (the middle of its range, as
/// [`OccupancyStatus::from_load`] draws them).
fn typical_share(status: i32) -> f64 {
    match vp::OccupancyStatus::try_from(status) {
        Ok(vp::OccupancyStatus::Empty) => 0.0,
        Ok(vp::OccupancyStatus::ManySeatsAvailable) => 0.12,
        Ok(vp::OccupancyStatus::FewSeatsAvailable) => 0.37,
        Ok(vp::OccupancyStatus::StandingRoomOnly) => 0.7,
        Ok(vp::OccupancyStatus::CrushedStandingRoomOnly) => 0.95,
        Ok(vp::OccupancyStatus::Full | vp::OccupancyStatus::NotAcceptingPassengers) => 1.0,
        _ => 0.0,
    }
}
