//! Pull queries over the views, for `/api`: vehicles, alerts, stops with their live
//! activity, incidents near a point; and the network's routes and stops.

use bytes::Bytes;
use serde::Serialize;
use streamcity_core::geo::{LatLon, distance_m};
use streamcity_core::query::VehicleFilter;
use streamcity_core::{AlertKind, Id, TransportMode, wire_name};
use streamcity_network::Network;
use streamcity_network::calendar::iso8601;

use super::Live;

/// `/api/routes`: every route with its shape (`[lat, lon]` points; without a shape, its
/// stops') and its stops.
pub(super) fn routes_json(network: &Network) -> Bytes {
    #[derive(Serialize)]
    struct RouteView<'a> {
        route_id: &'a Id,
        short_name: &'a str,
        name: &'a str,
        mode: TransportMode,
        color: &'a str,
        headway_s: f64,
        vehicles: usize,
        shape: Vec<[f64; 2]>,
        stop_ids: &'a [Id],
    }
    let views: Vec<RouteView<'_>> = network
        .routes
        .iter()
        .map(|r| {
            let shape = r
                .shape_id
                .as_ref()
                .and_then(|id| network.shapes.iter().find(|s| s.shape_id == *id))
                .map(|s| s.points.clone())
                .unwrap_or_else(|| {
                    r.stops
                        .iter()
                        .map(|&s| [network.stops[s].lat, network.stops[s].lon])
                        .collect()
                });
            RouteView {
                route_id: &r.route_id,
                short_name: &r.short_name,
                name: &r.name,
                mode: r.mode,
                color: &r.color,
                headway_s: r.headway_s,
                vehicles: r.vehicles,
                shape,
                stop_ids: &r.stop_ids,
            }
        })
        .collect();
    Bytes::from(serde_json::to_vec(&views).unwrap_or_default())
}

/// `/api/stops`: every stop, with the routes calling there.
pub(super) fn stops_json(network: &Network) -> Bytes {
    #[derive(Serialize)]
    struct StopView<'a> {
        stop_id: &'a Id,
        name: &'a str,
        lat: f64,
        lon: f64,
        #[serde(skip_serializing_if = "Option::is_none")]
        parent_station: Option<&'a Id>,
        route_ids: &'a [Id],
    }
    let views: Vec<StopView<'_>> = network
        .stops
        .iter()
        .map(|s| StopView {
            stop_id: &s.stop_id,
            name: &s.name,
            lat: s.lat,
            lon: s.lon,
            parent_station: s.parent_station.as_ref(),
            route_ids: &s.route_ids,
        })
        .collect();
    Bytes::from(serde_json::to_vec(&views).unwrap_or_default())
}

impl Live {
    /// `/api/status`: the network shown, the simulated clock (from the producer's clock
    /// on the bus, or else the latest event time), and what is live.
    pub fn status_json(&self) -> serde_json::Value {
        let state = self.read();
        let views = &state.views;
        let n = &self.network;
        let wall = streamcity_core::clock::wall_clock_ms();
        let (time, speed, source) = match views.clock {
            Some(c) => (Some(c.sim_at(wall)), Some(c.speed), "producer"),
            None if views.time > 0 => (Some(views.time), None, "events"),
            None => (None, None, "none"),
        };
        let clock = time.map(|t| {
            serde_json::json!({
                "time": t,
                "time_utc": iso8601(t),
                "speed": speed,
                "running": speed.is_none_or(|s| s > 0.0),
                "service_day": n.local_date(t).to_string(),
                "utc_offset_min": n.utc_offset_at(t),
                "source": source,
            })
        });
        serde_json::json!({
            "network": {
                "name": n.name,
                "hash": n.hash(),
                "agencies": n.agencies.iter().map(|a| &a.name).collect::<Vec<_>>(),
                "routes": n.routes.len(),
                "stops": n.stops.len(),
                "trips": n.trips.len(),
            },
            "clock": clock,
            "latest_event": (views.time > 0).then_some(views.time),
            "vehicles": views.vehicles.len(),
            "active_alerts": views.active.len(),
            "alert_kinds": AlertKind::ALL.map(|k| wire_name(&k)),
        })
    }

    /// The vehicles passing `filter`, as a JSON array.
    pub fn vehicles_json(&self, filter: &VehicleFilter) -> Vec<u8> {
        let state = self.read();
        let mut text = Vec::with_capacity(2 + state.views.vehicles.len() * 340);
        state
            .views
            .splice_vehicles(&mut text, |p| filter.matches(p));
        text
    }

    /// One vehicle's latest report.
    pub fn vehicle_json(&self, id: &str) -> Option<Bytes> {
        self.read().views.vehicles.get(id).map(|v| v.raw.clone())
    }

    /// `{"active": [...], "recent": [...]}`, optionally of one kind only.
    pub fn alerts_json(&self, kind: Option<AlertKind>) -> Vec<u8> {
        let state = self.read();
        let mut text = b"{\"active\":".to_vec();
        state.views.splice_alerts(&mut text, "recent", |k, _| {
            kind.is_none_or(|want| want == k)
        });
        text.push(b'}');
        text
    }

    /// A trip of the timetable: where it goes and its calls, with the stops' names and
    /// times as `HH:MM:SS` of the service day (past 24:00 after midnight).
    pub fn trip_json(&self, id: &str) -> Option<serde_json::Value> {
        let n = &self.network;
        let trip = n.trip(id)?;
        let hms = streamcity_network::calendar::service_time;
        let calls: Vec<serde_json::Value> = trip
            .stop_times
            .iter()
            .map(|st| {
                serde_json::json!({
                    "stop_id": st.stop_id,
                    "stop_name": n.stop(&st.stop_id).map_or("", |s| s.name.as_str()),
                    "arrival_time": hms(st.arrival_s),
                    "departure_time": hms(st.departure_s),
                })
            })
            .collect();
        let frequencies: Vec<serde_json::Value> = trip
            .frequencies
            .iter()
            .map(|f| {
                serde_json::json!({
                    "start_time": hms(f.start_s),
                    "end_time": hms(f.end_s),
                    "headway_s": f.headway_s,
                    "exact_times": f.exact_times,
                })
            })
            .collect();
        Some(serde_json::json!({
            "trip_id": trip.trip_id,
            "route_id": trip.route_id,
            "service_id": trip.service_id,
            "direction_id": trip.direction_id,
            "headsign": trip.headsign,
            "block_id": trip.block_id,
            "shape_id": trip.shape_id,
            "stop_times": calls,
            "frequencies": frequencies,
        }))
    }

    /// A stop with its live activity: waiting riders (estimated), recent tap-ons and
    /// its active surge.
    pub fn stop_json(&self, id: &str) -> Option<serde_json::Value> {
        let stop = self.network.stop(id)?;
        let state = self.read();
        let activity = state.views.stops.get(id).cloned().unwrap_or_default();
        let since = state.views.time - 300_000;
        let taps_5 = activity.taps.iter().filter(|t| t.0 >= since).count();
        let recent: Vec<serde_json::Value> = activity
            .taps
            .iter()
            .rev()
            .take(10)
            .map(|(ts, card)| serde_json::json!({ "rider_id": card, "timestamp": ts }))
            .collect();
        let surge = state
            .views
            .active
            .values()
            .find(|(a, _)| a.kind == AlertKind::Surge && a.subject_id == id)
            .and_then(|(_, raw)| serde_json::from_slice::<serde_json::Value>(raw).ok());
        Some(serde_json::json!({
            "stop_id": stop.stop_id,
            "name": stop.name,
            "lat": stop.lat,
            "lon": stop.lon,
            "route_ids": stop.route_ids,
            "waiting_estimate": activity.waiting,
            "taps_last_5_min": taps_5,
            "recent_taps": recent,
            "active_surge": surge,
        }))
    }

    /// Incidents in force: near a point (inside their area, widened by `margin_m`), in
    /// a district, of a kind. Each is its record plus `"source"` (`traffic` or `city`).
    pub fn incidents_json(
        &self,
        near: Option<(f64, f64)>,
        margin_m: f64,
        area: Option<&str>,
        kind: Option<&str>,
    ) -> String {
        let state = self.read();
        let items = state.views.incidents.values().filter(|i| {
            near.is_none_or(|(lat, lon)| {
                distance_m(LatLon::new(lat, lon), LatLon::new(i.lat, i.lon))
                    <= i.radius_m + margin_m
            }) && area.is_none_or(|a| i.area.as_deref().is_some_and(|x| x.eq_ignore_ascii_case(a)))
                && kind.is_none_or(|k| i.kind == k)
        });
        let mut text = String::from("[");
        for (n, i) in items.enumerate() {
            if n > 0 {
                text.push(',');
            }
            // {"source":"city", ...the record's fields}: records are non-empty objects.
            let body = std::str::from_utf8(&i.raw).unwrap_or("{}").trim();
            text.push_str(&format!("{{\"source\":\"{}\"", i.source));
            match body.strip_prefix('{').map(str::trim_start) {
                Some(rest) if rest != "}" => {
                    text.push(',');
                    text.push_str(rest);
                }
                _ => text.push('}'),
            }
        }
        text.push(']');
        text
    }
}
