//! Passenger surge detection: taps per stop in a hopping window (default 5 minutes,
//! advancing 1 minute) above a threshold. The equivalent ksqlDB statement is in
//! `ksql/surge_detection.sql`.

use std::collections::HashMap;

use serde_json::json;
use streamcity_core::{Alert, AlertKind, AlertState, Id, Severity, SubjectKind, TimestampMs};

use crate::window::{Admission, ClosedWindow, HoppingCounter, HoppingSpec};

/// Surge detector settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SurgeConfig {
    /// The window taps are counted in.
    pub window: HoppingSpec,
    /// A stop surges when a window holds more taps than this.
    pub threshold: u64,
}

impl Default for SurgeConfig {
    fn default() -> Self {
        SurgeConfig {
            window: HoppingSpec { size_ms: 300_000, advance_ms: 60_000, grace_ms: 10_000 },
            threshold: 40,
        }
    }
}

/// Watches taps per stop; raises an alert when a stop's count crosses the threshold
/// and clears it once no open window of that stop is above it.
#[derive(Debug)]
pub struct SurgeDetector {
    config: SurgeConfig,
    counts: HoppingCounter<Id>,
    active: HashMap<Id, Alert>,
}

impl SurgeDetector {
    /// A detector with the given settings.
    pub fn new(config: SurgeConfig) -> Self {
        SurgeDetector { config, counts: HoppingCounter::new(config.window), active: HashMap::new() }
    }

    /// Counts a tap at `stop` at event time `ts`; appends a raised alert to `out` when
    /// the stop starts surging. Returns [`Admission::Late`] for a tap whose windows
    /// have all closed.
    pub fn on_tap(&mut self, stop: &Id, ts: TimestampMs, watermark: TimestampMs, out: &mut Vec<Alert>) -> Admission {
        let admission = self.counts.add(stop, ts, watermark);
        let Admission::Counted { max_count, start } = admission else {
            return admission;
        };
        if max_count > self.config.threshold && !self.active.contains_key(stop) {
            let alert = self.raised(stop, start, max_count, ts);
            self.active.insert(stop.clone(), alert.clone());
            out.push(alert);
        }
        admission
    }

    /// Closes windows up to the watermark, and clears the alerts of stops that have
    /// calmed down (none of their open windows above the threshold).
    pub fn on_watermark(&mut self, watermark: TimestampMs, out: &mut Vec<Alert>) {
        let mut closed: Vec<ClosedWindow<Id>> = Vec::new();
        self.counts.close_until(watermark, &mut closed);
        if closed.is_empty() || self.active.is_empty() {
            return;
        }
        let threshold = self.config.threshold;
        let counts = &self.counts;
        let calm: Vec<Id> = self
            .active
            .keys()
            .filter(|stop| counts.open_windows(stop).iter().all(|w| w.1 <= threshold))
            .cloned()
            .collect();
        for stop in calm {
            if let Some(mut alert) = self.active.remove(&stop) {
                alert.state = AlertState::Cleared;
                alert.timestamp = watermark;
                alert.message = format!("Passenger surge at {stop} is over");
                out.push(alert);
            }
        }
    }

    /// Stops surging now, with their alerts.
    pub fn active(&self) -> impl Iterator<Item = &Alert> {
        self.active.values()
    }

    /// Open windows across all stops.
    pub fn open_windows(&self) -> usize {
        self.counts.open_window_count()
    }

    fn raised(&self, stop: &Id, start: TimestampMs, taps: u64, ts: TimestampMs) -> Alert {
        let threshold = self.config.threshold;
        let ratio = taps as f64 / threshold.max(1) as f64;
        let severity = match ratio {
            r if r >= 3.0 => Severity::Critical,
            r if r >= 2.0 => Severity::High,
            _ => Severity::Moderate,
        };
        let minutes = self.config.window.size_ms as f64 / 60_000.0;
        let mut evidence = serde_json::Map::new();
        evidence.insert("taps".into(), json!(taps));
        evidence.insert("threshold".into(), json!(threshold));
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
            window_end: start + self.config.window.size_ms,
            raised_at: ts,
            timestamp: ts,
            message: format!("Passenger surge at {stop}: {taps} taps in {minutes} min (threshold {threshold})"),
            evidence,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: i64 = 1_763_884_800_000;

    #[test]
    fn raises_once_when_crossing_and_clears_when_calm() {
        let mut d = SurgeDetector::new(SurgeConfig::default());
        let stop = Id::from("S0001");
        let mut out = Vec::new();
        for i in 0..40 {
            d.on_tap(&stop, T0 + i * 100, 0, &mut out);
        }
        assert!(out.is_empty(), "40 taps is not above a threshold of 40");
        for i in 40..100 {
            d.on_tap(&stop, T0 + i * 100, 0, &mut out);
        }
        assert_eq!(out.len(), 1, "raised exactly once");
        let raised = out[0].clone();
        assert_eq!((raised.kind, raised.state), (AlertKind::Surge, AlertState::Raised));
        assert_eq!(raised.evidence["taps"], json!(41));
        assert_eq!(raised.subject_id, "S0001");
        // Four minutes later the burst is still inside open windows: no clearance.
        d.on_watermark(T0 + 240_000, &mut out);
        assert_eq!(out.len(), 1);
        // Once every window holding the burst has closed, the surge clears.
        d.on_watermark(T0 + 300_000 + 10_000 + 60_000, &mut out);
        assert_eq!(out.len(), 2);
        assert_eq!(out[1].state, AlertState::Cleared);
        assert_eq!(out[1].alert_id, raised.alert_id);
        assert_eq!(d.active().count(), 0);
    }

    #[test]
    fn late_taps_are_reported() {
        let mut d = SurgeDetector::new(SurgeConfig::default());
        let mut out = Vec::new();
        assert_eq!(d.on_tap(&Id::from("S1"), T0, T0 + 3_600_000, &mut out), Admission::Late);
    }
}
