//! Rebalances: a partition revoked from this instance is released (its vehicles and
//! stops leave, their alerts end here as handed over), and a partition assigned to it
//! is restored from the compacted live table before anything from it is processed.

use streamcity_core::{Id, Record, TimestampMs, Validate, VehiclePosition, decode};

use crate::Processor;
use crate::detector::Handover;
use crate::table::VehicleRow;

/// How far back from the latest event time a restored live-table row may be, ms: older
/// rows are vehicles that stopped long ago, in an earlier run.
pub const RESTORE_WINDOW_MS: i64 = 15 * 60 * 1000;

impl Processor {
    /// Releases the state kept for `partition` of `topic`, which a consumer group
    /// rebalance gave to another instance: its vehicles' rows and their lines'
    /// headways, its stops' windows, and their active alerts (ended with a message
    /// saying they were handed over).
    pub fn release(&mut self, topic: &str, partition: i32, out: &mut Vec<Record>) {
        let before = out.len();
        let s = &mut self.state;
        // What the next owner reads is none of this instance's business; should the
        // partition come back, it is read from the group's commit.
        s.watermarks.forget_offsets(Some((topic, partition)));
        self.assigned.remove(&(topic.to_owned(), partition));
        let handover_vehicles: Vec<VehicleRow>;
        let handover = if *topic == *self.topics.vehicle_locations {
            let mut ids: Vec<Id> = s
                .table
                .iter()
                .filter(|(_, row)| row.partition == partition)
                .map(|(id, _)| id.clone())
                .collect();
            ids.sort();
            handover_vehicles = ids.iter().filter_map(|id| s.table.delete(id)).collect();
            Handover::Vehicles(&handover_vehicles)
        } else if *topic == *self.topics.rider_tapped_on {
            Handover::Taps(partition)
        } else {
            return;
        };
        s.each(
            &self.config,
            &self.topics.vehicle_locations,
            self.network.as_deref(),
            &mut self.alerts,
            |d, _, cx| d.release(&handover, cx),
        );
        tracing::info!(
            topic,
            partition,
            "Released the state of a revoked partition"
        );
        self.flush_alerts(out);
        self.state.counts.records_out += (out.len() - before) as u64;
    }

    /// Restores the vehicles of `partition` of the vehicle topic, just assigned to this
    /// instance, from `rows`: what the live table keeps of the same partition (its rows
    /// are partitioned by line as the reports are, over as many partitions). Rows from
    /// the last [`RESTORE_WINDOW_MS`] before the latest event time (seen here or in
    /// `rows`) are taken, unless a newer report is held already. Nothing is published:
    /// the detectors go on from the restored rows, so a vehicle silent since before the
    /// handover still raises lost contact. Returns how many vehicles were restored.
    pub fn restore_partition(&mut self, partition: i32, rows: &[Record]) -> usize {
        let reports: Vec<VehiclePosition> = rows
            .iter()
            // A tombstone, or a row this version cannot read, is skipped.
            .filter_map(|r| decode::<VehiclePosition>(&r.payload).ok())
            .filter(|p| p.validate().is_ok())
            .collect();
        let latest = reports
            .iter()
            .map(|p| p.timestamp)
            .chain(self.state.watermarks.max_seen())
            .max()
            .unwrap_or(TimestampMs::MIN);
        let mut restored = 0;
        for p in reports {
            if p.timestamp < latest.saturating_sub(RESTORE_WINDOW_MS) {
                continue;
            }
            match self.state.table.accept(&p, partition, TimestampMs::MAX) {
                Some((_, true)) => restored += 1,
                Some((row, false)) => row.update(&p),
                None => {}
            }
        }
        restored
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use streamcity_core::{Alert, AlertKind, AlertState, Topics, decode, encode};

    use super::*;
    use crate::ProcessorConfig;
    use crate::tests::{T0, report_on, tap};

    fn position_row(topics: &Topics, id: &str, ts: i64) -> Record {
        report_on(&topics.live_vehicle_table, id, "S1", 0, ts)
    }

    #[test]
    fn an_assigned_partition_is_restored_from_the_live_table() {
        let topics = Topics::default();
        let mut p = Processor::new(topics.clone(), ProcessorConfig::default());
        let rows = [
            position_row(&topics, "V1", T0),
            // An older row of V1 (a compacted topic may still hold it): the newer wins.
            position_row(&topics, "V1", T0 - 5_000),
            // Another run's vehicle, long gone.
            position_row(&topics, "V2", T0 - RESTORE_WINDOW_MS - 1),
            Record::new(&topics.live_vehicle_table, "V3", Bytes::new(), T0),
            Record::new(
                &topics.live_vehicle_table,
                "V4",
                Bytes::from_static(b"{oops"),
                T0,
            ),
        ];
        assert_eq!(p.restore_partition(3, &rows), 1);
        let row = p.state.table.get(&"V1".into()).unwrap();
        assert_eq!((row.position.timestamp, row.partition), (T0, 3));
        assert!(p.state.table.get(&"V2".into()).is_none());
        // Restoring publishes nothing, and V1, silent since, is noticed as lost once
        // event time moves on (another vehicle keeps reporting).
        let mut out = Vec::new();
        p.advance(T0, &mut out);
        assert!(out.is_empty());
        let other = |ts| report_on(&topics.vehicle_locations, "V9", "S1", 0, ts);
        for ts in (T0..T0 + 5 * 60_000).step_by(10_000) {
            p.on_record(&other(ts), 3, ts, &mut out);
            p.advance(ts, &mut out);
        }
        let lost: Vec<Alert> = out
            .iter()
            .filter(|r| r.topic == topics.alerts)
            .map(|r| decode(&r.payload).unwrap())
            .collect();
        assert!(
            lost.iter()
                .any(|a| a.subject_id == "V1" && a.evidence["reason"] == "silent"),
            "{lost:?}"
        );
    }

    #[test]
    fn a_revoked_partition_is_released_with_its_alerts_handed_over() {
        let topics = Topics::default();
        let mut p = Processor::new(topics.clone(), ProcessorConfig::default());
        let mut out = Vec::new();
        // Full vehicles of two lines (reports are partitioned by line).
        let crowded = |id: &str, route: &str, ts: i64| {
            let v = VehiclePosition {
                vehicle_id: id.into(),
                route_id: route.into(),
                trip_id: "t".into(),
                timestamp: ts,
                lat: 40.7,
                lon: -74.0,
                bearing: 0.0,
                speed_mps: 5.0,
                next_stop_id: "S1".into(),
                passengers: 80,
                capacity: 80,
                occupancy_status: streamcity_core::OccupancyStatus::Full,
                delay_s: 0,
                status: streamcity_core::VehicleStatus::InTransitTo,
                start_date: None,
                start_time: None,
                boarded: None,
            };
            Record::new(&topics.vehicle_locations, id.to_owned(), encode(&v), ts)
        };
        p.on_record(&crowded("V1", "B01", T0), 1, T0, &mut out);
        p.on_record(&crowded("V2", "B02", T0), 2, T0, &mut out);
        for i in 0..200 {
            p.on_record(&tap(&topics, "S0042", T0 + i), 1, T0, &mut out);
        }
        assert_eq!(
            p.active_alerts().count(),
            3,
            "two crowded lines and a surge"
        );
        out.clear();
        p.release(&topics.vehicle_locations, 1, &mut out);
        p.release(&topics.rider_tapped_on, 1, &mut out);
        // V1 and S0042 were on partition 1: gone, their alerts handed over.
        assert!(p.vehicle("V1").is_none() && p.vehicle("V2").is_some());
        let cleared: Vec<Alert> = out
            .iter()
            .filter(|r| r.topic == topics.alerts)
            .map(|r| decode(&r.payload).unwrap())
            .collect();
        assert_eq!(cleared.len(), 2);
        assert!(
            cleared
                .iter()
                .all(|a| a.state == AlertState::Cleared && a.message.contains("handed over"))
        );
        assert_eq!(p.active_alerts().count(), 1);
        assert_eq!(p.open_windows(), 0);
    }

    #[test]
    fn a_revoked_partition_hands_its_lines_over_with_their_headways() {
        let topics = Topics::default();
        let mut config = ProcessorConfig::default();
        config.headway.route_headways_s = [("B01".into(), 600.0)].into_iter().collect();
        config.headway.persist_ms = 0;
        let mut p = Processor::new(topics.clone(), config);
        let mut out = Vec::new();
        let report =
            |id: &str, next: &str, ts: i64| report_on(&topics.vehicle_locations, id, next, 0, ts);
        // V1 leaves S1 for S2, V2 follows a minute later on a 10-minute line: bunched.
        for (id, t) in [("V1", T0), ("V2", T0 + 60_000)] {
            p.on_record(&report(id, "S1", t), 1, t, &mut out);
            p.on_record(&report(id, "S2", t + 1_000), 1, t + 1_000, &mut out);
        }
        let bunching = |p: &Processor| {
            p.active_alerts()
                .filter(|a| a.kind == AlertKind::Bunching)
                .count()
        };
        assert_eq!(bunching(&p), 1);
        assert_eq!(p.state.detectors.headways.lines(), 1);
        out.clear();
        // Another partition's release leaves the line alone.
        p.release(&topics.vehicle_locations, 2, &mut out);
        assert_eq!(bunching(&p), 1);
        p.release(&topics.vehicle_locations, 1, &mut out);
        assert_eq!(bunching(&p), 0);
        assert_eq!(p.state.detectors.headways.lines(), 0);
        let ended: Vec<Alert> = out
            .iter()
            .filter(|r| r.topic == topics.alerts)
            .map(|r| decode(&r.payload).unwrap())
            .filter(|a: &Alert| a.kind == AlertKind::Bunching)
            .collect();
        assert_eq!(ended.len(), 1);
        assert!(
            ended[0].message.contains("handed over"),
            "{}",
            ended[0].message
        );
        // Back on this instance later, the line starts afresh: one departure is no
        // headway yet.
        p.on_record(&report("V3", "S1", T0 + 120_000), 1, T0 + 120_000, &mut out);
        p.on_record(&report("V3", "S2", T0 + 121_000), 1, T0 + 121_000, &mut out);
        assert_eq!(bunching(&p), 0);
    }
}
