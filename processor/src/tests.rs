//! The processor core's own tests: decoding and dead letters, event time, surges, late
//! taps, lost contact, likely causes; and the helpers the other modules' tests share.

use streamcity_core::{DeadLetter, IncidentStatus, RiderTap, Severity, TrafficIncident, decode};

use super::*;

pub(crate) const T0: i64 = 1_763_884_800_000;

pub(crate) fn tap(topics: &Topics, stop: &str, ts: i64) -> Record {
    let t = RiderTap {
        rider_id: "C1".into(),
        stop_id: stop.into(),
        route_id: None,
        timestamp: ts,
    };
    Record::new(&topics.rider_tapped_on, stop.to_owned(), encode(&t), ts)
}

/// A report of vehicle `id` of line B01, as JSON on `topic`: at one place, heading
/// for `next`, `delay_s` late.
pub(crate) fn report_on(topic: &Arc<str>, id: &str, next: &str, delay_s: i32, ts: i64) -> Record {
    let json = format!(
        r#"{{"vehicle_id":"{id}","route_id":"B01","trip_id":"t","timestamp":{ts},"lat":40.7,"lon":-74.0,"bearing":0,"speed_mps":8,"next_stop_id":"{next}","passengers":0,"capacity":80,"occupancy_status":"empty","delay_s":{delay_s},"status":"in_transit_to"}}"#
    );
    Record::new(topic, id.to_owned(), Bytes::from(json), ts)
}

#[test]
fn malformed_records_go_to_dead_letters_and_nothing_else_is_lost() {
    let topics = Topics::default();
    let mut p = Processor::new(topics.clone(), ProcessorConfig::default());
    let mut out = Vec::new();
    // The first record sets the event time the others are judged by.
    p.on_record(&tap(&topics, "S1", T0), 0, T0, &mut out);
    let bad = [
        &b"{not json"[..],
        br#"{"rider_id":"C1","timestamp":1763884800000}"#,
        br#"{"rider_id":"C1","stop_id":"S1","timestamp":99999999999999}"#,
        // An hour ahead of the stream.
        br#"{"rider_id":"C1","stop_id":"S1","timestamp":1763888400000}"#,
    ];
    for payload in bad {
        p.on_record(
            &Record::new(
                &topics.rider_tapped_on,
                "k",
                Bytes::from_static(payload),
                T0,
            ),
            0,
            T0,
            &mut out,
        );
    }
    let nan = br#"{"vehicle_id":"V1","route_id":"B01","trip_id":"t","timestamp":1763884800000,"lat":null,"lon":0,"bearing":0,"speed_mps":0,"next_stop_id":"S1","passengers":0,"capacity":80,"occupancy_status":"empty","delay_s":0,"status":"in_transit_to"}"#;
    p.on_record(
        &Record::new(&topics.vehicle_locations, "V1", Bytes::from_static(nan), T0),
        0,
        T0,
        &mut out,
    );
    assert_eq!(p.counts().dead_letters, 5);
    assert_eq!(p.counts().dead_letter_reasons, [3, 0, 1, 1, 0, 0]);
    assert_eq!(out.len(), 5);
    assert!(out.iter().all(|r| r.topic == topics.dead_letters));
    let letter: DeadLetter = decode(&out[2].payload).unwrap();
    assert!(letter.error.contains("timestamp"), "{}", letter.error);
    let letter: DeadLetter = decode(&out[3].payload).unwrap();
    assert!(
        letter.error.contains("1763888400000 out of range"),
        "{}",
        letter.error
    );
    out.clear();
    p.on_record(&tap(&topics, "S1", T0 + 1_000), 0, T0, &mut out);
    assert_eq!(p.counts().records_in, 7);
    assert!(out.is_empty());
}

#[test]
fn yesterdays_records_read_today_are_processed_like_live_ones() {
    // Nothing is judged by the processor's clock: a day-old stream read a day later
    // raises the same surge as when it was live.
    let topics = Topics::default();
    let surges = |lag: i64| {
        let mut p = Processor::new(topics.clone(), ProcessorConfig::default());
        let mut out = Vec::new();
        p.advance(T0 + lag, &mut out);
        for i in 0..200 {
            let ts = T0 + i * 50;
            p.on_record(&tap(&topics, "S0042", ts), 0, ts + lag, &mut out);
            p.advance(ts + lag, &mut out);
        }
        assert_eq!(p.counts().dead_letters + p.counts().late, 0, "lag {lag}");
        out.into_iter()
            .filter(|r| r.topic == topics.surge_alerts)
            .map(|r| r.payload)
            .collect::<Vec<_>>()
    };
    let live = surges(0);
    assert_eq!(live.len(), 1);
    assert_eq!(surges(86_400_000), live);
    assert_eq!(surges(-86_400_000), live, "or a day before it happens");
}

#[test]
fn a_burst_of_taps_raises_a_surge_on_both_alert_topics_named_and_placed() {
    let topics = Topics::default();
    let network = Arc::new(streamcity_network::synthetic::generate(
        streamcity_network::SyntheticConfig::default(),
    ));
    let stop = network.stop("S0042").unwrap().clone();
    let mut p = Processor::new(topics.clone(), ProcessorConfig::default()).with_network(network);
    let mut out = Vec::new();
    for i in 0..200 {
        p.on_record(&tap(&topics, "S0042", T0 + i * 50), 0, T0, &mut out);
    }
    let surge: Vec<_> = out
        .iter()
        .filter(|r| r.topic == topics.surge_alerts)
        .collect();
    let alerts: Vec<_> = out.iter().filter(|r| r.topic == topics.alerts).collect();
    assert_eq!((surge.len(), alerts.len()), (1, 1));
    assert_eq!(&surge[0].key[..], b"S0042");
    let alert: Alert = decode(&alerts[0].payload).unwrap();
    assert_eq!(
        (alert.kind, alert.state),
        (AlertKind::Surge, AlertState::Raised)
    );
    assert_eq!((alert.lat, alert.lon), (Some(stop.lat), Some(stop.lon)));
    assert!(
        alert.message.contains(&format!("{} (S0042)", stop.name)),
        "{}",
        alert.message
    );
}

#[test]
fn lost_contact_is_judged_on_the_vehicles_own_stream() {
    // V1 falls silent for 90 s and comes back within one batch, before any
    // watermark check could see it: the gap itself says contact was lost.
    let topics = Topics::default();
    let mut p = Processor::new(topics.clone(), ProcessorConfig::default());
    let mut out = Vec::new();
    let report = |ts| report_on(&topics.vehicle_locations, "V1", "S1", 0, ts);
    p.on_record(&report(T0), 0, T0, &mut out);
    p.on_record(&report(T0 + 90_000), 0, T0, &mut out);
    let alerts: Vec<Alert> = out
        .iter()
        .filter(|r| r.topic == topics.alerts)
        .map(|r| decode(&r.payload).unwrap())
        .collect();
    let states: Vec<(&str, AlertState)> = alerts
        .iter()
        .map(|a| (a.alert_id.as_str(), a.state))
        .collect();
    let id = format!("silent:V1:{T0}");
    assert_eq!(
        states,
        [
            (id.as_str(), AlertState::Raised),
            (id.as_str(), AlertState::Cleared)
        ]
    );
    assert_eq!(alerts[0].raised_at, T0 + 60_000);
}

#[test]
fn late_taps_go_to_the_side_output() {
    let topics = Topics::default();
    let mut p = Processor::new(topics.clone(), ProcessorConfig::default());
    let mut out = Vec::new();
    p.on_record(&tap(&topics, "S1", T0 + 3_600_000), 0, T0, &mut out);
    p.advance(T0, &mut out);
    p.on_record(&tap(&topics, "S1", T0), 0, T0, &mut out);
    assert_eq!(p.counts().late, 1);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].topic, topics.late_events);
}

#[test]
fn every_instance_names_the_likely_cause_of_a_delay() {
    let topics = Topics::default();
    let incident = |id: &str, status: IncidentStatus, end: i64| {
        let i = TrafficIncident {
            incident_id: id.into(),
            kind: streamcity_core::TrafficIncidentKind::Accident,
            status,
            lat: 40.7,
            lon: -74.0,
            radius_m: 300.0,
            severity: Severity::High,
            speed_factor: 0.3,
            started_at: end.min(T0) - 60_000,
            expected_end: end,
            timestamp: end.min(T0),
        };
        Record::new(
            &topics.traffic_incidents,
            id.to_owned(),
            encode(&i),
            i.timestamp,
        )
    };
    let late = |id: &str, ts: i64| report_on(&topics.vehicle_locations, id, "S1", 600, ts);
    let delays = |p: &mut Processor, id: &str, t: i64| -> Vec<Alert> {
        let mut out = Vec::new();
        for ts in [t, t + 61_000, t + 62_000] {
            p.on_record(&late(id, ts), 0, ts, &mut out);
        }
        out.iter()
            .filter(|r| r.topic == topics.alerts)
            .map(|r| decode(&r.payload).unwrap())
            .filter(|a: &Alert| a.kind == AlertKind::Delay)
            .collect()
    };
    // This instance reads the incident only from the feed every instance reads.
    let mut p = Processor::new(topics.clone(), ProcessorConfig::default());
    p.on_incident_area(&incident("TI-1", IncidentStatus::Active, T0 + 3_600_000));
    // One over long ago (an earlier run) is not in force.
    p.on_incident_area(&incident("TI-0", IncidentStatus::Active, T0 - 3_600_000));
    // Not decodable: ignored here (the owner sets it aside).
    p.on_incident_area(&Record::new(
        &topics.traffic_incidents,
        "TI-9",
        Bytes::from_static(b"{"),
        T0,
    ));
    assert_eq!(
        p.active_alerts().count(),
        0,
        "the owner raises the incident"
    );
    let first = delays(&mut p, "V1", T0);
    assert_eq!(first.len(), 1, "{first:?}");
    assert!(
        first[0].message.ends_with("likely cause: accident TI-1"),
        "{}",
        first[0].message
    );
    // Cleared: no longer a cause.
    p.on_incident_area(&incident("TI-1", IncidentStatus::Cleared, T0 + 3_600_000));
    let second = delays(&mut p, "V2", T0 + 100_000);
    assert_eq!(second.len(), 1, "{second:?}");
    assert!(
        !second[0].message.contains("likely cause"),
        "{}",
        second[0].message
    );
    assert_eq!(p.counts().records_in, 6, "the feed is not counted as input");
}

/// Twelve partitions of vehicle reports and taps over three minutes, every record on
/// time, plus (when `outliers`) one report and one tap 290 s ahead on every partition a
/// minute in: the outputs, the late taps, and the table's row of each outlier's vehicle.
fn run_with_outliers(outliers: bool) -> (Vec<Record>, u64, Vec<i64>) {
    let topics = Topics::default();
    let mut p = Processor::new(topics.clone(), ProcessorConfig::default());
    let mut out = Vec::new();
    for s in 0..180 {
        let now = T0 + s * 1000;
        for part in 0..12 {
            for v in 0..5 {
                let id = format!("V{part:02}{v}");
                let r = report_on(&topics.vehicle_locations, &id, "S1", 0, now);
                p.on_record(&r, part, now, &mut out);
            }
            p.on_record(&tap(&topics, &format!("S{part}"), now), part, now, &mut out);
            if outliers && s == 60 {
                let ahead = now + 290_000;
                let id = format!("V{part:02}0");
                let r = report_on(&topics.vehicle_locations, &id, "S1", 0, ahead);
                p.on_record(&r, part, now, &mut out);
                p.on_record(
                    &tap(&topics, &format!("S{part}"), ahead),
                    part,
                    now,
                    &mut out,
                );
            }
        }
        p.advance(now, &mut out);
    }
    let rows = (0..12)
        .map(|part| {
            p.vehicle(&format!("V{part:02}0"))
                .map_or(0, |r| r.timestamp)
        })
        .collect();
    (out, p.counts().late, rows)
}

#[test]
fn records_far_ahead_on_every_partition_raise_no_false_alerts_and_make_no_tap_late() {
    let (clean, clean_late, _) = run_with_outliers(false);
    let (hostile, hostile_late, rows) = run_with_outliers(true);
    let topics = Topics::default();
    let alerts = |out: &[Record]| -> Vec<Alert> {
        out.iter()
            .filter(|r| r.topic == topics.alerts)
            .map(|r| decode(&r.payload).unwrap())
            .collect()
    };
    assert_eq!(clean_late, 0);
    assert_eq!(hostile_late, 0, "on-time taps marked late");
    let (clean_alerts, hostile_alerts) = (alerts(&clean), alerts(&hostile));
    assert!(
        !hostile_alerts
            .iter()
            .any(|a| a.alert_id.starts_with("silent:")),
        "false lost-contact alerts: {hostile_alerts:?}"
    );
    assert_eq!(hostile_alerts, clean_alerts);
    // The vehicles whose clocks went wrong once are back to their real reports.
    assert_eq!(rows, vec![T0 + 179_000; 12]);
}

/// Kinds of the alerts raised among `out`.
fn raised(topics: &Topics, out: &[Record]) -> Vec<AlertKind> {
    out.iter()
        .filter(|r| r.topic == topics.alerts)
        .map(|r| decode::<Alert>(&r.payload).unwrap())
        .filter(|a| a.state == AlertState::Raised)
        .map(|a| a.kind)
        .collect()
}

#[test]
fn with_a_timetable_headways_are_judged_against_the_timetables_own_gap() {
    // The small feed's tram T1 runs every 10 minutes until 10:00, then every 15: its
    // line headway is the shorter, 600 s. Two runs timetabled 15 minutes apart leave
    // its first stop 1,000 s apart: a gap against 600 s, not against the timetable.
    let dir =
        streamcity_testkit::feeds::feed_dir("headways", &streamcity_testkit::feeds::small_feed());
    let network = Arc::new(streamcity_network::gtfs::load(&dir).unwrap().network);
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(network.route("T1").unwrap().headway_s, 600.0);
    let ten = streamcity_network::Date::from_ymd(2025, 3, 3).days() * 86_400_000 - 3_600_000
        + 10 * 3_600_000;
    let run = |timetabled: bool| -> Vec<AlertKind> {
        let topics = Topics::default();
        let mut config = ProcessorConfig::default();
        config.headway.route_headways_s = network.headways();
        config.headway.persist_ms = 0;
        let mut p = Processor::new(topics.clone(), config).with_network(Arc::clone(&network));
        let mut out = Vec::new();
        let report = |id: &str, start: &str, next: &str, ts: i64| {
            let run = if timetabled {
                format!(r#","start_date":"20250303","start_time":"{start}""#)
            } else {
                String::new()
            };
            let json = format!(
                r#"{{"vehicle_id":"{id}","route_id":"T1","trip_id":"T1-freq","timestamp":{ts},"lat":48.85,"lon":2.35,"bearing":0,"speed_mps":8,"next_stop_id":"{next}","passengers":0,"capacity":180,"occupancy_status":"empty","delay_s":0,"status":"in_transit_to"{run}}}"#
            );
            Record::new(
                &topics.vehicle_locations,
                id.to_owned(),
                Bytes::from(json),
                ts,
            )
        };
        // Each vehicle: at its first stop, then bound for the next (it has left).
        let second = ten + 1_000_000;
        for (id, start, at) in [
            ("T1@1000", "10:00:00", ten),
            ("T1@1015", "10:15:00", second),
        ] {
            p.on_record(&report(id, start, "P1", at), 0, at, &mut out);
            p.on_record(
                &report(id, start, "S3", at + 20_000),
                0,
                at + 20_000,
                &mut out,
            );
        }
        raised(&topics, &out)
    };
    assert_eq!(run(false), vec![AlertKind::Gapping]);
    assert_eq!(run(true), Vec::<AlertKind>::new());
}

#[test]
fn a_vehicle_leaving_service_leaves_the_table_and_is_never_missed() {
    let topics = Topics::default();
    let mut p = Processor::new(topics.clone(), ProcessorConfig::default());
    let mut out = Vec::new();
    let report = |id: &str, status: &str, ts: i64| {
        let json = format!(
            r#"{{"vehicle_id":"{id}","route_id":"B01","trip_id":"t","timestamp":{ts},"lat":40.7,"lon":-74.0,"bearing":0,"speed_mps":0,"next_stop_id":"S1","passengers":0,"capacity":80,"occupancy_status":"empty","delay_s":0,"status":"{status}"}}"#
        );
        Record::new(
            &topics.vehicle_locations,
            id.to_owned(),
            Bytes::from(json),
            ts,
        )
    };
    p.on_record(&report("V1", "in_transit_to", T0), 0, T0, &mut out);
    p.on_record(&report("V1", "out_of_service", T0 + 1_000), 0, T0, &mut out);
    let rows: Vec<&Record> = out
        .iter()
        .filter(|r| r.topic == topics.live_vehicle_table)
        .collect();
    assert_eq!(rows.len(), 2);
    assert!(
        rows[1].payload.is_empty(),
        "its row is deleted by a tombstone"
    );
    assert_eq!(rows[1].key_str(), "V1");
    // Another vehicle runs on for ten minutes: V1 is not lost, it is gone.
    for s in 1..=600 {
        let ts = T0 + s * 1_000;
        p.on_record(&report("V2", "in_transit_to", ts), 0, ts, &mut out);
    }
    let alerts: Vec<Alert> = out
        .iter()
        .filter(|r| r.topic == topics.alerts)
        .map(|r| decode(&r.payload).unwrap())
        .collect();
    assert!(
        alerts.iter().all(|a| !a.alert_id.contains("V1")),
        "{:?}",
        alerts.iter().map(|a| &a.alert_id).collect::<Vec<_>>()
    );
}

/// The delay alerts published in `out`.
fn alerts_in(topics: &Topics, out: &[Record]) -> Vec<Alert> {
    out.iter()
        .filter(|r| r.topic == topics.alerts)
        .map(|r| decode::<Alert>(&r.payload).unwrap())
        .filter(|a| a.kind == AlertKind::Delay)
        .collect()
}

#[test]
fn late_vehicles_of_a_line_are_one_alert_that_names_them_and_clears_when_all_recover() {
    let topics = Topics::default();
    let mut p = Processor::new(topics.clone(), ProcessorConfig::default());
    let mut out = Vec::new();
    let feed =
        |p: &mut Processor, out: &mut Vec<Record>, id: &str, delay: i32, from: i64, secs: i64| {
            for s in 0..secs {
                let ts = from + s * 1_000;
                p.on_record(
                    &report_on(&topics.vehicle_locations, id, "S1", delay, ts),
                    0,
                    ts,
                    out,
                );
            }
        };
    // One vehicle 6 minutes late for two minutes: everyday running, no alert.
    feed(&mut p, &mut out, "V1", 360, T0, 120);
    assert!(alerts_in(&topics, &out).is_empty());
    // A second one late: one alert for the line, naming both.
    feed(&mut p, &mut out, "V2", 400, T0 + 120_000, 90);
    let a = alerts_in(&topics, &out);
    assert_eq!(a.len(), 1, "{a:?}");
    assert_eq!(
        (a[0].kind, a[0].state),
        (AlertKind::Delay, AlertState::Raised)
    );
    assert_eq!(a[0].subject_id, "B01");
    assert_eq!(a[0].evidence["vehicle_count"], 2);
    assert_eq!(a[0].evidence["vehicles"], serde_json::json!(["V1", "V2"]));
    assert!(!a[0].action.is_empty());
    // A third joins: the same alert, updated.
    out.clear();
    feed(&mut p, &mut out, "V3", 330, T0 + 210_000, 70);
    let a = alerts_in(&topics, &out);
    assert_eq!(a.len(), 1, "{a:?}");
    assert_eq!(a[0].state, AlertState::Updated);
    assert_eq!(a[0].evidence["vehicle_count"], 3);
    // They recover; V3 flickers late again within the clearing time: no new alert.
    out.clear();
    let back = T0 + 300_000;
    for id in ["V1", "V2", "V3"] {
        feed(&mut p, &mut out, id, 0, back, 1);
    }
    feed(&mut p, &mut out, "V3", 330, back + 60_000, 70);
    feed(&mut p, &mut out, "V1", 400, back + 60_000, 70);
    assert!(
        alerts_in(&topics, &out)
            .iter()
            .all(|a| a.state == AlertState::Updated),
        "{:?}",
        alerts_in(&topics, &out)
    );
    // All back on time for longer than the clearing time: cleared, once.
    out.clear();
    let calm = back + 200_000;
    for s in 0..700 {
        for id in ["V1", "V3"] {
            let ts = calm + s * 1_000;
            p.on_record(
                &report_on(&topics.vehicle_locations, id, "S1", 0, ts),
                0,
                ts,
                &mut out,
            );
        }
        p.advance(calm + s * 1_000, &mut out);
    }
    let a = alerts_in(&topics, &out);
    let cleared: Vec<&Alert> = a
        .iter()
        .filter(|a| a.state == AlertState::Cleared)
        .collect();
    assert_eq!(cleared.len(), 1, "{a:?}");
    assert!(!a.iter().any(|a| a.state == AlertState::Raised));
}

#[test]
fn bunching_is_alerted_only_once_it_persists_and_not_while_an_incident_explains_it() {
    let topics = Topics::default();
    let run = |incident: bool| -> Vec<AlertKind> {
        let mut config = ProcessorConfig::default();
        config.headway.route_headways_s = [("B01".into(), 600.0)].into_iter().collect();
        // Reported once a stop here: not silent.
        config.breakdown.silent_ms = 3_600_000;
        let mut p = Processor::new(topics.clone(), config);
        let mut out = Vec::new();
        if incident {
            let i = TrafficIncident {
                incident_id: "TI-1".into(),
                kind: streamcity_core::TrafficIncidentKind::Accident,
                status: IncidentStatus::Active,
                severity: Severity::High,
                lat: 40.7,
                lon: -74.0,
                radius_m: 300.0,
                speed_factor: 0.3,
                started_at: T0,
                expected_end: T0 + 7_200_000,
                timestamp: T0,
            };
            let r = Record::new(&topics.traffic_incidents, "TI-1", encode(&i), T0);
            p.on_record(&r, 0, T0, &mut out);
        }
        // V1 and V2 one minute apart on a 10-minute line, stop after stop.
        let mut kinds = Vec::new();
        for k in 0..8 {
            let t = T0 + k * 120_000;
            for (id, lag) in [("V1", 0), ("V2", 60_000)] {
                let ts = t + lag;
                let (from, to) = (format!("S{k}"), format!("S{}", k + 1));
                p.on_record(
                    &report_on(&topics.vehicle_locations, id, &from, 0, ts),
                    0,
                    ts,
                    &mut out,
                );
                p.on_record(
                    &report_on(&topics.vehicle_locations, id, &to, 0, ts + 1_000),
                    0,
                    ts + 1_000,
                    &mut out,
                );
            }
            let now: Vec<AlertKind> = raised(&topics, &out)
                .into_iter()
                .filter(|k| *k != AlertKind::Incident)
                .collect();
            if k == 1 {
                // Two minutes in: bunched, but not for long enough yet.
                assert!(now.is_empty(), "{now:?}");
            }
            kinds.extend(now);
            out.clear();
        }
        kinds
    };
    assert_eq!(
        run(false),
        vec![AlertKind::Bunching],
        "raised once it has lasted 5 min"
    );
    assert_eq!(
        run(true),
        Vec::<AlertKind>::new(),
        "the incident's alert explains it"
    );
}

#[test]
fn a_surge_clears_only_once_its_crowd_has_boarded() {
    let topics = Topics::default();
    let mut p = Processor::new(topics.clone(), ProcessorConfig::default());
    let mut out = Vec::new();
    for i in 0..200 {
        p.on_record(&tap(&topics, "S0042", T0 + i * 50), 0, T0, &mut out);
    }
    let stopped = |id: &str, boarded: u32, ts: i64| {
        let json = format!(
            r#"{{"vehicle_id":"{id}","route_id":"B01","trip_id":"t-{id}","timestamp":{ts},"lat":40.7,"lon":-74.0,"bearing":0,"speed_mps":0,"next_stop_id":"S0042","passengers":{boarded},"capacity":120,"occupancy_status":"empty","delay_s":0,"status":"stopped_at","boarded":{boarded}}}"#
        );
        Record::new(
            &topics.vehicle_locations,
            id.to_owned(),
            Bytes::from(json),
            ts,
        )
    };
    let surge = |out: &[Record]| -> Vec<AlertState> {
        out.iter()
            .filter(|r| r.topic == topics.surge_alerts)
            .map(|r| decode::<Alert>(&r.payload).unwrap().state)
            .collect()
    };
    // Ten quiet minutes: taps are back to normal but 200 riders are still there.
    let at = std::cell::Cell::new(T0);
    let quiet = |p: &mut Processor, out: &mut Vec<Record>, minutes: i64| {
        for _ in 0..minutes * 60 {
            at.set(at.get() + 1_000);
            let at = at.get();
            p.on_record(
                &report_on(&topics.vehicle_locations, "V0", "S1", 0, at),
                1,
                at,
                out,
            );
            p.advance(at, out);
        }
    };
    quiet(&mut p, &mut out, 10);
    assert_eq!(surge(&out), [AlertState::Raised], "200 riders still wait");
    // A vehicle takes 80: 120 still wait.
    p.on_record(&stopped("V1", 80, at.get() + 1), 2, at.get(), &mut out);
    quiet(&mut p, &mut out, 3);
    assert_eq!(surge(&out), [AlertState::Raised], "120 riders still wait");
    // Another takes 100 (its next report at the same call counts nobody twice): 20
    // left, the crowd has gone.
    p.on_record(&stopped("V2", 100, at.get() + 1), 3, at.get(), &mut out);
    p.on_record(&stopped("V2", 100, at.get() + 2), 3, at.get(), &mut out);
    quiet(&mut p, &mut out, 2);
    assert_eq!(surge(&out), [AlertState::Raised, AlertState::Cleared]);
    let cleared: Alert = decode(
        &out.iter()
            .rfind(|r| r.topic == topics.surge_alerts)
            .unwrap()
            .payload,
    )
    .unwrap();
    assert!(
        cleared.message.contains("20 may still be waiting"),
        "{}",
        cleared.message
    );
}
