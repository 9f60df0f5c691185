//! The charts' series (`GET /api/series`) and the line view (`GET /api/lines/{id}`)
//! over real HTTP, fed through a bus by the ingest loop that samples them: the figures
//! are what was published, the series and the vehicles' trails stay within their
//! bounds, vehicles are ordered along their line with their headways, and reads need
//! the token when the dashboard says so.

#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use serde_json::Value;
use streamcity_core::*;
use streamcity_dashboard::auth::Access;
use streamcity_dashboard::{Live, LiveConfig, ServerLimits};
use streamcity_network::{Network, SyntheticConfig, synthetic};

const TOKEN: &str = "series-token-for-tests";

struct Dashboard {
    live: Arc<Live>,
    addr: std::net::SocketAddr,
    bus: MemoryBus,
    topics: Topics,
    network: Arc<Network>,
    _stop: StopOnDrop,
}

/// A dashboard fed from a memory bus by the ingest loop, sampling every 40 ms.
async fn dashboard(points: usize, access: Access) -> Dashboard {
    let network = Arc::new(synthetic::generate(SyntheticConfig::default()));
    let topics = Topics::default();
    let bus = MemoryBus::default();
    let config = LiveConfig {
        series_every: Duration::from_millis(40),
        series_points: points,
        ..LiveConfig::default()
    };
    let live =
        Arc::new(Live::new(Arc::clone(&network), topics.clone(), config).with_access(access));
    let stop = CancellationToken::new();
    let sub = streamcity_dashboard::live::subscribe(&bus, &live)
        .await
        .unwrap();
    tokio::spawn(streamcity_dashboard::live::run_ingest(
        sub,
        Arc::clone(&live),
        stop.clone(),
    ));
    let addr = serve_on_free_port(&live, ServerLimits::default(), &stop).await;
    Dashboard {
        live,
        addr,
        bus,
        topics,
        network,
        _stop: StopOnDrop(stop),
    }
}

impl Dashboard {
    /// GET `path` (with the token when given): (status, body as JSON).
    async fn get(&self, path: &str, token: Option<&str>) -> (u16, Value) {
        let (status, body, _) = http(self.addr, "GET", path, token, None).await;
        (status, body)
    }

    async fn publish(&self, topic: &Arc<str>, key: &str, payload: bytes::Bytes, ts: i64) {
        self.bus
            .publish(Record::new(topic, key.to_owned(), payload, ts))
            .await
            .unwrap();
    }

    /// Publishes vehicle `id`'s report, `d` metres along line `route`'s outbound path,
    /// heading for the first stop beyond it (`outbound`) or the last one before it.
    async fn report(&self, id: &str, route: &str, d: f64, ts: i64, delay_s: i32, outbound: bool) {
        let r = self.network.route(route).unwrap();
        let (x, y, _) = r.path.point_at(d, &mut 0);
        let at = self.network.projection.to_latlon(x, y);
        let next = if outbound {
            r.stop_dist.iter().position(|&s| s > d + 20.0)
        } else {
            r.stop_dist.iter().rposition(|&s| s < d - 20.0)
        }
        .unwrap();
        let mut p = position(id, route, at.lat, at.lon, ts);
        p.next_stop_id = r.stop_ids[next].clone();
        p.delay_s = delay_s;
        self.publish(&self.topics.live_vehicle_table, id, encode(&p), ts)
            .await;
    }

    /// Waits until the ingest loop has applied vehicle `id`'s report of `ts`, then
    /// for two more samples (so one was taken after it).
    async fn sampled_after(&self, id: &str, ts: i64) {
        within(10, "the report to be applied and sampled", async {
            loop {
                let seen = self
                    .live
                    .vehicle_json(id)
                    .and_then(|raw| serde_json::from_slice::<Value>(&raw).ok())
                    .is_some_and(|v| v["timestamp"] == ts);
                if seen {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            let before = self.samples().await;
            while self.samples().await < before + 2 {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await;
    }

    /// Samples taken so far (by the series' own count while it is not full).
    async fn samples(&self) -> usize {
        self.live.series_len()
    }
}

#[tokio::test]
async fn the_series_samples_what_was_published_and_keeps_only_its_last_points() {
    let d = dashboard(5, Access::default()).await;
    // Three vehicles, one of them 400 s late; a surge; 7 riders tapping on at a stop.
    d.report("B07-001", "B07", 300.0, T0, 0, true).await;
    d.report("B07-002", "B07", 900.0, T0, 30, true).await;
    d.report("B07-003", "B07", 1500.0, T0, 400, true).await;
    for i in 0..7 {
        let tap = RiderTap {
            rider_id: format!("C{i:08}").into(),
            stop_id: d.network.stops[3].stop_id.clone(),
            route_id: None,
            timestamp: T0 + i,
        };
        d.publish(
            &d.topics.rider_tapped_on,
            &tap.stop_id,
            encode(&tap),
            T0 + i,
        )
        .await;
    }
    let surge = Alert {
        alert_id: "surge:S0003:1".into(),
        kind: AlertKind::Surge,
        state: AlertState::Raised,
        severity: Severity::High,
        subject_kind: SubjectKind::Stop,
        subject_id: "S0003".into(),
        lat: Some(40.7),
        lon: Some(-74.0),
        window_start: T0,
        window_end: T0,
        raised_at: T0,
        timestamp: T0,
        message: "test".into(),
        action: "send a vehicle".into(),
        evidence: Default::default(),
        acknowledged: None,
        muted_until: None,
    };
    d.publish(&d.topics.alerts, "surge:S0003:1", encode(&surge), T0)
        .await;
    d.sampled_after("B07-003", T0).await;
    // Wait for a full series, and a few samples more.
    within(10, "five samples", async {
        while d.samples().await < 5 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    tokio::time::sleep(Duration::from_millis(200)).await;

    let (status, s) = d.get("/api/series", None).await;
    assert_eq!(status, 200, "{s}");
    let n = s["wall_ms"].as_array().unwrap().len();
    assert_eq!(n, 5, "the series keeps its last 5 points: {s}");
    for column in [
        "sim_ms",
        "vehicles",
        "on_time_share",
        "riders_waiting",
        "events_per_s",
    ] {
        assert_eq!(s[column].as_array().unwrap().len(), n, "{column}: {s}");
    }
    for kind in AlertKind::ALL {
        assert_eq!(
            s["alerts"][wire_name(&kind)].as_array().unwrap().len(),
            n,
            "{kind:?}"
        );
    }
    assert_eq!(s["capacity"], 5);
    assert!((s["every_s"].as_f64().unwrap() - 0.04).abs() < 1e-9, "{s}");
    // Wall time ascends, sampled about every 40 ms; simulated time is the latest event
    // time (no producer's clock here).
    let wall: Vec<i64> = s["wall_ms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_i64().unwrap())
        .collect();
    assert!(wall.windows(2).all(|w| w[1] > w[0]), "{wall:?}");
    assert_eq!(s["sim_ms"][n - 1], T0);
    let last = |c: &str| s[c][n - 1].clone();
    assert_eq!(last("vehicles"), 3);
    let share = last("on_time_share").as_f64().unwrap();
    assert!((share - 2.0 / 3.0).abs() < 1e-9, "{share}");
    assert_eq!(s["alerts"]["surge"][n - 1], 1);
    assert_eq!(s["alerts"]["delay"][n - 1], 0);
    assert_eq!(last("riders_waiting"), 7);
    // Nothing was published since: no events per second in the last samples.
    assert_eq!(last("events_per_s").as_f64().unwrap(), 0.0, "{s}");
    assert!(d.live.series_len() <= 5);
}

#[tokio::test]
async fn events_per_second_count_what_the_dashboard_read() {
    let d = dashboard(1000, Access::default()).await;
    d.report("B07-001", "B07", 100.0, T0, 0, true).await;
    d.sampled_after("B07-001", T0).await;
    // 200 reports between two samples: some sample saw them at a rate above zero.
    for i in 1..=200 {
        d.report("B07-001", "B07", 100.0 + i as f64, T0 + i * 1000, 0, true)
            .await;
    }
    d.sampled_after("B07-001", T0 + 200_000).await;
    let (_, s) = d.get("/api/series", None).await;
    let rates: Vec<f64> = s["events_per_s"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    let most = rates.iter().copied().fold(0.0, f64::max);
    assert!(
        most > 100.0,
        "200 records within a few 40 ms samples: {rates:?}"
    );
}

#[tokio::test]
async fn the_line_view_orders_vehicles_along_the_line_with_their_headways() {
    let d = dashboard(1000, Access::default()).await;
    let route = d.network.route("B07").unwrap();
    let scheduled = route.headway_s;
    assert!(scheduled > 0.0);
    // The leader runs from 300 m to 1,500 m in 120 s, past the follower's 400 m
    // (10 s in); a third vehicle runs the other way; another line's is not listed.
    d.report("B07-001", "B07", 300.0, T0, 0, true).await;
    d.report("B07-002", "B07", 100.0, T0, 0, true).await;
    d.report("B07-003", "B07", 3000.0, T0, 0, false).await;
    d.report("B01-001", "B01", 500.0, T0, 0, true).await;
    d.sampled_after("B01-001", T0).await;
    d.report("B07-001", "B07", 1500.0, T0 + 120_000, 0, true)
        .await;
    d.report("B07-002", "B07", 400.0, T0 + 120_000, 200, true)
        .await;
    d.report("B07-003", "B07", 2500.0, T0 + 120_000, 0, false)
        .await;
    d.sampled_after("B07-003", T0 + 120_000).await;

    let (status, line) = d.get("/api/lines/B07", None).await;
    assert_eq!(status, 200, "{line}");
    assert_eq!(line["route_id"], "B07");
    assert_eq!(line["scheduled_headway_s"].as_f64().unwrap(), scheduled);
    assert_eq!(line["time"], T0 + 120_000);
    assert_eq!(
        line["stops"].as_array().unwrap().len(),
        route.stop_ids.len()
    );
    let vehicles = line["vehicles"].as_array().unwrap();
    let order: Vec<(&str, u64)> = vehicles
        .iter()
        .map(|v| {
            (
                v["vehicle_id"].as_str().unwrap(),
                v["direction"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        order,
        [("B07-002", 0), ("B07-001", 0), ("B07-003", 1)],
        "{line}"
    );
    let follower = &vehicles[0];
    assert_eq!(follower["ahead"], "B07-001");
    assert_eq!(follower["delay_s"], 200);
    assert!(
        (follower["dist_m"].as_f64().unwrap() - 400.0).abs() < 1.0,
        "{follower}"
    );
    assert!(
        (follower["gap_m"].as_f64().unwrap() - 1100.0).abs() < 2.0,
        "{follower}"
    );
    // The leader passed 400 m 10 s after T0, 110 s before now.
    assert_eq!(follower["headway_from"], "trail", "{follower}");
    let headway = follower["headway_s"].as_f64().unwrap();
    assert!((headway - 110.0).abs() < 1.0, "{follower}");
    let ratio = follower["headway_ratio"].as_f64().unwrap();
    assert!((ratio - headway / scheduled).abs() < 0.01, "{follower}");
    // The front vehicles of each direction have no one ahead.
    for front in [&vehicles[1], &vehicles[2]] {
        assert!(
            front["ahead"].is_null() && front["headway_s"].is_null(),
            "{front}"
        );
    }
    // The string lines: each vehicle's distance at each sample kept, aligned.
    let times = line["string_lines"]["sim_ms"].as_array().unwrap().len();
    let dist = line["string_lines"]["dist_m"].as_object().unwrap();
    let mut ids: Vec<&String> = dist.keys().collect();
    ids.sort();
    assert_eq!(ids, ["B07-001", "B07-002", "B07-003"]);
    let leader: Vec<f64> = dist["B07-001"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_f64)
        .collect();
    assert_eq!(dist["B07-001"].as_array().unwrap().len(), times);
    assert!(
        (leader[0] - 300.0).abs() < 1.0 && (leader[leader.len() - 1] - 1500.0).abs() < 1.0,
        "{leader:?}"
    );

    // Unknown lines: 404 with a JSON error.
    let (status, err) = d.get("/api/lines/NOPE", None).await;
    assert_eq!(status, 404);
    assert!(err["error"].as_str().unwrap().contains("NOPE"), "{err}");
}

#[tokio::test]
async fn trails_are_kept_for_a_bounded_number_of_vehicles_per_line() {
    let d = dashboard(3, Access::default()).await;
    let per_line = streamcity_dashboard::live::MAX_TRACKED_PER_LINE;
    for i in 0..per_line + 50 {
        d.report(&format!("B07-{i:04}"), "B07", 100.0 + i as f64, T0, 0, true)
            .await;
    }
    let last = format!("B07-{:04}", per_line + 49);
    d.sampled_after(&last, T0).await;
    assert_eq!(d.live.tracked_vehicles(), per_line);
    let (_, line) = d.get("/api/lines/B07", None).await;
    assert_eq!(line["vehicles"].as_array().unwrap().len(), per_line + 50);
    assert_eq!(
        line["string_lines"]["dist_m"].as_object().unwrap().len(),
        per_line
    );
    assert!(line["string_lines"]["sim_ms"].as_array().unwrap().len() <= 3);
    // Once they are gone (their reports removed), their trails age out with the samples.
    for i in 0..per_line + 50 {
        let id = format!("B07-{i:04}");
        d.publish(&d.topics.live_vehicle_table, &id, bytes::Bytes::new(), T0)
            .await;
    }
    within(10, "the trails to age out", async {
        while d.live.tracked_vehicles() > 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
}

#[tokio::test]
async fn the_series_and_the_line_view_need_the_token_when_reads_do() {
    let d = dashboard(10, Access::new(Some(TOKEN.into()), true)).await;
    for path in ["/api/series", "/api/lines/B07"] {
        let (status, body) = d.get(path, None).await;
        assert_eq!(status, 401, "{path}: {body}");
        let (status, body) = d.get(path, Some(TOKEN)).await;
        assert_eq!(status, 200, "{path}: {body}");
        let (status, _) = d.get(&format!("{path}?access_token={TOKEN}"), None).await;
        assert_eq!(status, 200, "{path}");
    }
}
