//! Passenger surges: taps per stop in a hopping window (default 5 minutes advancing 1
//! minute) above a threshold. Two thresholds apply, whichever is lower:
//!
//! - a fixed one (`surge.threshold`), as the seed's ksqlDB script had;
//! - an adaptive one: `adaptive_factor` times the stop's usual count for that hour of
//!   the day, learnt from its closed windows, once enough have been seen (and never
//!   below `adaptive_min_taps`). A quiet suburban stop then surges at a count that
//!   would be an ordinary morning downtown.
//!
//! The equivalent ksqlDB statement (fixed threshold only) is `ksql/surge_detection.sql`.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};
use serde_json::json;
use streamcity_core::{
    Alert, AlertKind, AlertState, Id, Severity, SubjectKind, TimestampMs, VehiclePosition,
    VehicleStatus,
};
use streamcity_network::Stop;

use crate::alerts::AlertBook;
use crate::config::SurgeConfig;
use crate::detector::{Context, Detector, Event, Handover};
use crate::table::VehicleTable;
use crate::window::{Admission, WindowResult, WindowedCount};

/// A stop's usual count of taps per window, for one hour of the day.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Baseline {
    /// Running mean of closed windows' counts.
    pub mean: f64,
    /// Windows seen.
    pub samples: u32,
}

/// Watches taps per stop and raises and clears surge alerts.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SurgeDetector {
    config: SurgeConfig,
    counts: WindowedCount<Id>,
    /// Usual counts per stop, per UTC hour of the window start.
    baselines: HashMap<Id, Vec<Baseline>>,
    /// The active surge alert of each surging stop, with the stop as people know it.
    active: BTreeMap<Id, (Id, String)>,
    /// The input partition each stop's taps come from.
    #[serde(default)]
    partitions: HashMap<Id, i32>,
    /// The crowd at each surging stop.
    #[serde(default)]
    crowds: BTreeMap<Id, Crowd>,
    /// The minute (of event time) the crowds were last looked at.
    #[serde(default)]
    crowds_checked: i64,
    /// Windows closed since the processor last took them, to publish (only with
    /// `emit_window_counts`).
    #[serde(skip)]
    closed: Vec<WindowResult<Id>>,
}

/// The riders waiting at a surging stop: counted in as they tap on, out as vehicles
/// count them boarding.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
struct Crowd {
    waiting: u64,
    last_tap: TimestampMs,
}

/// Which threshold a count is held against.
struct Limit {
    taps: u64,
    rule: &'static str,
    baseline: Option<f64>,
}

impl SurgeDetector {
    /// A detector with the given settings.
    pub fn new(config: SurgeConfig) -> Self {
        SurgeDetector {
            counts: WindowedCount::new(config.window),
            config,
            baselines: HashMap::new(),
            active: BTreeMap::new(),
            partitions: HashMap::new(),
            closed: Vec::new(),
            crowds: BTreeMap::new(),
            crowds_checked: 0,
        }
    }

    fn limit(&self, stop: &Id, window_start: TimestampMs) -> Limit {
        let fixed = Limit {
            taps: self.config.threshold,
            rule: "fixed",
            baseline: None,
        };
        let hour = (window_start.rem_euclid(86_400_000) / 3_600_000) as usize;
        let Some(slots) = self.baselines.get(stop) else {
            return fixed;
        };
        // This hour's usual count, or the previous hour's while this one's is learnt.
        let enough = |b: &&Baseline| b.samples >= self.config.baseline_samples;
        let Some(b) = slots
            .get(hour)
            .filter(enough)
            .or_else(|| slots.get((hour + 23) % 24).filter(enough))
        else {
            return fixed;
        };
        let adaptive = ((b.mean * self.config.adaptive_factor).ceil() as u64)
            .max(self.config.adaptive_min_taps);
        if adaptive < fixed.taps {
            Limit {
                taps: adaptive,
                rule: "adaptive",
                baseline: Some(b.mean),
            }
        } else {
            Limit {
                baseline: Some(b.mean),
                ..fixed
            }
        }
    }

    /// Counts a tap at `stop` at event time `ts`; raises a surge alert when a window's
    /// count goes over the stop's threshold, named and placed after `place` (the stop
    /// in the network, when it is there). Returns [`Admission::Late`] for a tap whose
    /// windows have all closed.
    pub fn on_tap(
        &mut self,
        stop: &Id,
        ts: TimestampMs,
        watermark: TimestampMs,
        place: Option<&Stop>,
        book: &mut AlertBook,
        out: &mut Vec<Alert>,
    ) -> Admission {
        let mut ignored = Vec::new();
        let admission = self.counts.add(stop, ts, watermark, &mut ignored);
        let Admission::Counted {
            max_count,
            start,
            end,
        } = admission
        else {
            return admission;
        };
        if self.active.contains_key(stop) {
            if let Some(c) = self.crowds.get_mut(stop) {
                c.waiting += 1;
                c.last_tap = c.last_tap.max(ts);
            }
            return admission;
        }
        let limit = self.limit(stop, start);
        if max_count > limit.taps {
            let label = match place {
                Some(s) => format!("{} ({stop})", s.name),
                None => stop.to_string(),
            };
            let mut alert = self.alert(stop, &label, start, end, max_count, &limit, ts);
            if let Some(s) = place {
                (alert.lat, alert.lon) = (Some(s.lat), Some(s.lon));
            }
            self.active
                .insert(stop.clone(), (alert.alert_id.clone(), label));
            // Those who tapped on in the window are taken to be waiting still.
            self.crowds.insert(
                stop.clone(),
                Crowd {
                    waiting: max_count,
                    last_tap: ts,
                },
            );
            book.raise(alert, out);
        }
        admission
    }

    /// Closes windows up to the watermark, learns the stops' usual counts from them, and
    /// clears the alerts of stops that have calmed down (no open window above their
    /// threshold).
    pub fn on_watermark(
        &mut self,
        watermark: TimestampMs,
        book: &mut AlertBook,
        out: &mut Vec<Alert>,
    ) {
        let mut closed: Vec<WindowResult<Id>> = Vec::new();
        self.counts.close_until(watermark, &mut closed);
        if self.config.emit_window_counts {
            self.closed.extend(closed.iter().cloned());
        }
        // Surges are looked at as windows close, and once a minute while a crowd
        // waits (taps may have stopped altogether).
        let minute = watermark.div_euclid(60_000);
        let crowd_check = !self.crowds.is_empty() && minute > self.crowds_checked;
        if closed.is_empty() && !crowd_check {
            return;
        }
        self.crowds_checked = minute;
        for w in &closed {
            let hour = (w.start.rem_euclid(86_400_000) / 3_600_000) as usize;
            let slots = self
                .baselines
                .entry(w.key.clone())
                .or_insert_with(|| vec![Baseline::default(); 24]);
            let b = &mut slots[hour];
            b.samples = b.samples.saturating_add(1);
            // A running mean that keeps adapting: recent windows weigh at least 1/30.
            b.mean += (w.count as f64 - b.mean) / f64::from(b.samples.min(30));
        }
        let calm: Vec<Id> = self
            .active
            .keys()
            .filter(|stop| {
                self.counts
                    .open_windows(stop)
                    .iter()
                    .all(|w| w.count <= self.limit(stop, w.start).taps)
                    && self.crowd_gone(stop, watermark)
            })
            .cloned()
            .collect();
        for stop in calm {
            let left = self.crowds.remove(&stop).map_or(0, |c| c.waiting);
            if let Some((id, label)) = self.active.remove(&stop) {
                let still = if left > 0 {
                    format!(" ({left} may still be waiting)")
                } else {
                    String::new()
                };
                book.clear(
                    &id,
                    watermark,
                    Some(format!("Passenger surge at {label} is over{still}")),
                    out,
                );
            }
        }
    }

    /// Whether the crowd at surging `stop` has gone by `watermark`: few enough left
    /// waiting, or nobody seen tapping on for a long while.
    fn crowd_gone(&self, stop: &Id, watermark: TimestampMs) -> bool {
        self.crowds.get(stop).is_none_or(|c| {
            c.waiting <= self.config.clear_waiting
                || watermark.saturating_sub(c.last_tap) >= self.config.give_up_ms
        })
    }

    /// A vehicle report: riders it counts boarding at a surging stop leave its crowd.
    pub fn on_report(&mut self, report: &VehiclePosition, previous: Option<&VehiclePosition>) {
        if report.status != VehicleStatus::StoppedAt {
            return;
        }
        if let Some(c) = self.crowds.get_mut(&report.next_stop_id) {
            c.waiting = c
                .waiting
                .saturating_sub(u64::from(report.boarded_since(previous)));
        }
    }

    /// Notes the input partition a stop's taps come from.
    pub fn note_partition(&mut self, stop: &Id, partition: i32) {
        if self.partitions.get(stop) != Some(&partition) {
            self.partitions.insert(stop.clone(), partition);
        }
    }

    /// Hands the stops of a revoked partition over to another processor instance: their
    /// windows are forgotten and their active surges end here (the new owner raises its
    /// own). The stops' usual counts are kept: they are still true.
    pub fn release_partition(
        &mut self,
        partition: i32,
        ts: TimestampMs,
        book: &mut AlertBook,
        out: &mut Vec<Alert>,
    ) {
        let mut stops: Vec<Id> = self
            .partitions
            .iter()
            .filter(|(_, p)| **p == partition)
            .map(|(s, _)| s.clone())
            .collect();
        stops.sort();
        for stop in stops {
            self.partitions.remove(&stop);
            self.counts.remove_key(&stop);
            self.crowds.remove(&stop);
            if let Some((id, label)) = self.active.remove(&stop) {
                book.clear(
                    &id,
                    ts,
                    Some(format!(
                        "Passenger surge at {label}: handed over to another processor instance"
                    )),
                    out,
                );
            }
        }
    }

    /// The input has ended: closes every window still open, as the watermark reaching
    /// the last one's end (and grace) would, with no more taps meanwhile.
    pub fn finish(&mut self, book: &mut AlertBook, out: &mut Vec<Alert>) {
        if let Some(at) = self.counts.all_closed_at() {
            self.on_watermark(at, book, out);
        }
    }

    /// The windows closed since the last call, in the order they closed (by end, start
    /// and stop within one advance of the watermark); empty unless
    /// `emit_window_counts` is set.
    pub fn take_closed(&mut self) -> std::vec::Drain<'_, WindowResult<Id>> {
        self.closed.drain(..)
    }

    /// Open windows across all stops.
    pub fn open_windows(&self) -> usize {
        self.counts.open_window_count()
    }

    /// A stop's usual count for an hour of the day (UTC).
    pub fn baseline(&self, stop: &str, hour: usize) -> Option<Baseline> {
        self.baselines.get(stop).and_then(|b| b.get(hour)).copied()
    }

    #[allow(clippy::too_many_arguments)]
    fn alert(
        &self,
        stop: &Id,
        label: &str,
        start: TimestampMs,
        end: TimestampMs,
        taps: u64,
        limit: &Limit,
        ts: TimestampMs,
    ) -> Alert {
        let ratio = taps as f64 / limit.taps.max(1) as f64;
        let severity = match ratio {
            r if r >= 3.0 => Severity::Critical,
            r if r >= 2.0 => Severity::High,
            _ => Severity::Moderate,
        };
        let minutes = (end - start) as f64 / 60_000.0;
        let mut evidence = serde_json::Map::new();
        evidence.insert("taps".into(), json!(taps));
        evidence.insert("threshold".into(), json!(limit.taps));
        evidence.insert("rule".into(), json!(limit.rule));
        if let Some(b) = limit.baseline {
            evidence.insert("usual_taps".into(), json!((b * 10.0).round() / 10.0));
        }
        let usual = limit
            .baseline
            .map(|b| format!(", usually {b:.0}"))
            .unwrap_or_default();
        Alert {
            alert_id: compact_str::format_compact!("surge:{stop}:{ts}"),
            kind: AlertKind::Surge,
            state: AlertState::Raised,
            severity,
            subject_kind: SubjectKind::Stop,
            subject_id: stop.clone(),
            lat: None,
            lon: None,
            window_start: start,
            window_end: end,
            raised_at: ts,
            timestamp: ts,
            message: format!(
                "Passenger surge at {label}: {taps} taps in {minutes} min (threshold {}{usual})",
                limit.taps
            ),
            action: format!(
                "Send a vehicle with room to {label}, or hold the next one there to load."
            ),
            evidence,
            acknowledged: None,
            muted_until: None,
        }
    }
}

impl Detector for SurgeDetector {
    fn on_event(&mut self, event: &Event<'_>, cx: &mut Context<'_>) {
        if let Event::Position {
            report, previous, ..
        } = event
        {
            self.on_report(report, *previous);
            return;
        }
        let Event::Tap { tap, partition } = event else {
            return;
        };
        self.note_partition(&tap.stop_id, *partition);
        let place = cx.network.and_then(|n| n.stop(&tap.stop_id));
        let watermark = cx.watermark;
        let (book, out) = cx.book_and_out();
        if self.on_tap(&tap.stop_id, tap.timestamp, watermark, place, book, out) == Admission::Late
        {
            cx.set_late();
        }
    }

    fn on_watermark(&mut self, _table: &VehicleTable, cx: &mut Context<'_>) {
        let watermark = cx.watermark;
        let (book, out) = cx.book_and_out();
        SurgeDetector::on_watermark(self, watermark, book, out);
    }

    fn release(&mut self, handover: &Handover<'_>, cx: &mut Context<'_>) {
        if let Handover::Taps(partition) = handover {
            let ts = cx.watermark.max(0);
            let (book, out) = cx.book_and_out();
            self.release_partition(*partition, ts, book, out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: i64 = 1_763_884_800_000; // 08:00 UTC

    fn taps(
        d: &mut SurgeDetector,
        book: &mut AlertBook,
        stop: &Id,
        from: i64,
        n: i64,
        every: i64,
        out: &mut Vec<Alert>,
    ) {
        for i in 0..n {
            d.on_tap(stop, from + i * every, 0, None, book, out);
        }
    }

    #[test]
    fn raises_once_when_crossing_and_clears_when_calm() {
        let mut d = SurgeDetector::new(SurgeConfig {
            threshold: 40,
            // Whoever still waits: the taps alone decide here (the crowd's own rule is
            // the processor's test `a_surge_clears_only_once_its_crowd_has_boarded`).
            clear_waiting: u64::MAX,
            ..SurgeConfig::default()
        });
        let mut book = AlertBook::default();
        let stop = Id::from("S0001");
        let mut out = Vec::new();
        taps(&mut d, &mut book, &stop, T0, 40, 100, &mut out);
        assert!(out.is_empty(), "40 taps is not above a threshold of 40");
        taps(&mut d, &mut book, &stop, T0 + 4_000, 60, 100, &mut out);
        assert_eq!(out.len(), 1, "raised exactly once");
        let raised = out[0].clone();
        assert_eq!(
            (raised.kind, raised.state),
            (AlertKind::Surge, AlertState::Raised)
        );
        assert_eq!(raised.evidence["taps"], json!(41));
        assert_eq!(raised.evidence["rule"], json!("fixed"));
        d.on_watermark(T0 + 240_000, &mut book, &mut out);
        assert_eq!(out.len(), 1, "the burst is still inside open windows");
        d.on_watermark(T0 + 300_000 + 10_000 + 60_000, &mut book, &mut out);
        assert_eq!(out.len(), 2);
        assert_eq!(
            (out[1].state, &out[1].alert_id),
            (AlertState::Cleared, &raised.alert_id)
        );
        assert!(book.is_empty());
    }

    #[test]
    fn a_quiet_stop_surges_at_a_multiple_of_its_usual_count() {
        let mut d = SurgeDetector::new(SurgeConfig {
            threshold: 40,
            adaptive_min_taps: 15,
            ..SurgeConfig::default()
        });
        let mut book = AlertBook::default();
        let stop = Id::from("S0002");
        let mut out = Vec::new();
        // Half an hour of a tap every 30 s: 10 per 5-minute window.
        taps(&mut d, &mut book, &stop, T0, 60, 30_000, &mut out);
        d.on_watermark(T0 + 1_800_000, &mut book, &mut out);
        let b = d.baseline("S0002", 8).unwrap();
        assert!(b.samples >= 10 && (b.mean - 10.0).abs() < 1.5, "{b:?}");
        assert!(out.is_empty());
        // 31 taps in a window is under the fixed 40 but over 3 × 10: an adaptive surge.
        taps(
            &mut d,
            &mut book,
            &stop,
            T0 + 1_830_000,
            31,
            1_000,
            &mut out,
        );
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].evidence["rule"], json!("adaptive"));
        assert_eq!(out[0].evidence["threshold"], json!(30));
    }

    #[test]
    fn the_previous_hours_usual_count_stands_in_while_this_hours_is_learnt() {
        let mut d = SurgeDetector::new(SurgeConfig {
            threshold: 1_000,
            adaptive_min_taps: 5,
            ..SurgeConfig::default()
        });
        let mut book = AlertBook::default();
        let stop = Id::from("S0005");
        let mut out = Vec::new();
        // 07:00-08:00: a tap a minute, 5 per window.
        taps(
            &mut d,
            &mut book,
            &stop,
            T0 - 3_600_000,
            60,
            60_000,
            &mut out,
        );
        d.on_watermark(T0 + 400_000, &mut book, &mut out);
        assert!(d.baseline("S0005", 8).is_none_or(|b| b.samples < 10));
        // At 08:10, 16 taps in a minute: over 3 x 5 by 07:00's count.
        taps(&mut d, &mut book, &stop, T0 + 600_000, 16, 3_000, &mut out);
        assert_eq!(out.len(), 1, "{out:?}");
        assert_eq!(out[0].evidence["rule"], json!("adaptive"));
    }

    #[test]
    fn late_taps_are_reported() {
        let mut d = SurgeDetector::new(SurgeConfig::default());
        let mut out = Vec::new();
        let admission = d.on_tap(
            &Id::from("S1"),
            T0,
            T0 + 3_600_000,
            None,
            &mut AlertBook::default(),
            &mut out,
        );
        assert_eq!(admission, Admission::Late);
    }
}
