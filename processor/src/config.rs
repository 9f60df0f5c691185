//! Every threshold and window of the processor, with its default. A config file (TOML)
//! can set any of them; the command line sets the common ones.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use streamcity_core::Id;

use crate::window::{EmitMode, WindowSpec};

/// Processor settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProcessorConfig {
    /// How far behind the highest event time of a partition its watermark trails, ms.
    pub allowed_lateness_ms: i64,
    /// Processing time after which a quiet partition stops holding the watermark
    /// back, ms.
    pub idle_timeout_ms: i64,
    /// Records further than this ahead of the stream's event time (the latest event
    /// seen, moved on at the producer's pace since; or the producer's clock) go to
    /// `dead_letters`, ms. Never compared with the processor's own clock.
    pub max_future_ms: i64,
    /// ... unless this many in a row on one partition are that far ahead: the stream
    /// has moved on (a producer restarted later), and its time is taken from then on.
    pub jump_after: u32,
    /// A known vehicle's report further than this ahead of its previous report, of its
    /// partition's stream and of the stream as a whole goes to `dead_letters` (unless
    /// `jump_after` in a row on its partition say the stream moved on); any report
    /// further than this ahead of its partition's stream is not trusted to be the
    /// vehicle's latest, and its next report replaces it even if older, ms.
    pub max_leap_ms: i64,
    /// Records larger than this go to `dead_letters` (a report is forwarded to the live
    /// table as it is, and must fit a broker's record limit), bytes.
    pub max_record_bytes: usize,
    /// Passenger surges.
    pub surge: SurgeConfig,
    /// Delays.
    pub delay: DelayConfig,
    /// Breakdowns, stranded and silent vehicles.
    pub breakdown: BreakdownConfig,
    /// Bunching and gapping.
    pub headway: HeadwayConfig,
    /// Crowded vehicles.
    pub crowding: CrowdingConfig,
}

impl Default for ProcessorConfig {
    fn default() -> Self {
        ProcessorConfig {
            allowed_lateness_ms: 5_000,
            idle_timeout_ms: 3_000,
            max_future_ms: 300_000,
            jump_after: 10,
            max_leap_ms: 60_000,
            max_record_bytes: 900_000,
            surge: SurgeConfig::default(),
            delay: DelayConfig::default(),
            breakdown: BreakdownConfig::default(),
            headway: HeadwayConfig::default(),
            crowding: CrowdingConfig::default(),
        }
    }
}

impl ProcessorConfig {
    /// Checks the settings for values that cannot work.
    pub fn validate(&self) -> Result<(), String> {
        self.surge.window.validate()?;
        let checks = [
            (
                self.allowed_lateness_ms >= 0,
                "allowed_lateness_ms must not be negative",
            ),
            (self.idle_timeout_ms > 0, "idle_timeout_ms must be positive"),
            (self.max_future_ms > 0, "max_future_ms must be positive"),
            (self.jump_after > 0, "jump_after must be positive"),
            (self.max_leap_ms > 0, "max_leap_ms must be positive"),
            (
                self.max_record_bytes >= 1024,
                "max_record_bytes must be at least 1024",
            ),
            (
                self.surge.adaptive_factor > 1.0,
                "surge.adaptive_factor must be above 1",
            ),
            (
                self.delay.clear_below_s <= self.delay.threshold_s,
                "delay.clear_below_s must not be above delay.threshold_s",
            ),
            (
                self.breakdown.silent_ms > 0 && self.breakdown.stationary_ms > 0,
                "breakdown limits must be positive",
            ),
            (
                self.headway.bunching_ratio < 1.0 && self.headway.gapping_ratio > 1.0,
                "headway ratios must straddle 1",
            ),
            (
                self.headway.persist_ms >= 0
                    && self.headway.clear_after_ms >= 0
                    && self.headway.disturbed_ms >= 0,
                "headway durations must not be negative",
            ),
            (
                self.crowding.clear_share <= self.crowding.share,
                "crowding.clear_share must not be above crowding.share",
            ),
        ];
        match checks.iter().find(|c| !c.0) {
            Some((_, why)) => Err((*why).to_owned()),
            None => Ok(()),
        }
    }
}

/// Passenger surge detection: taps per stop in a hopping window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SurgeConfig {
    /// The window taps are counted in: 5 minutes advancing 1 minute, 10 s grace.
    pub window: WindowSpec,
    /// Fixed threshold: a window with more taps than this is a surge at any stop.
    pub threshold: u64,
    /// Adaptive threshold: a window with more than this many times the stop's usual
    /// count for that hour of the day is a surge (once the usual count is known; while
    /// an hour's is being learnt, the previous hour's stands in).
    pub adaptive_factor: f64,
    /// The adaptive rule never fires below this many taps.
    pub adaptive_min_taps: u64,
    /// Closed windows of a stop and hour needed before its usual count is trusted.
    pub baseline_samples: u32,
    /// A surge clears once taps are back to normal and no more than this many riders
    /// are still waiting (taps since it began, less those vehicles counted boarding).
    pub clear_waiting: u64,
    /// ... or once nobody has tapped on there for this long, ms: riders not seen to
    /// board have gone another way (and with several processor instances, vehicles of
    /// lines another instance follows board unseen).
    pub give_up_ms: i64,
    /// Publish every closed window's count on `stop_tap_counts` (the table behind the
    /// seed's surge query), not only the alerts they raise.
    pub emit_window_counts: bool,
}

impl Default for SurgeConfig {
    fn default() -> Self {
        SurgeConfig {
            window: WindowSpec::hopping(300_000, 60_000, 10_000).emit(EmitMode::Final),
            threshold: 150,
            adaptive_factor: 3.0,
            adaptive_min_taps: 30,
            baseline_samples: 10,
            clear_waiting: 30,
            give_up_ms: 1_800_000,
            emit_window_counts: false,
        }
    }
}

/// Delay detection.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DelayConfig {
    /// A vehicle later than this is delayed, seconds.
    pub threshold_s: i32,
    /// ... once it has been for this long, ms (event time).
    pub sustain_ms: i64,
    /// A vehicle leaves its line's delay alert when its delay falls below this, seconds.
    pub clear_below_s: i32,
    /// The alert clears once none of its vehicles has been late for this long, ms.
    pub clear_after_ms: i64,
    /// A vehicle that ran through an incident's area this recently still owes its
    /// delay to it, ms.
    pub cause_memory_ms: i64,
    /// A line's delay alert (per cause) is raised once this many of its vehicles are
    /// late, or one is `alone_s` late: one bus a few minutes behind is everyday
    /// running, shown on the map, not an alert.
    pub group_min_vehicles: usize,
    /// ... or once one vehicle is this late, seconds.
    pub alone_s: i32,
    /// An active incident within this distance of its area is named as the likely
    /// cause, metres.
    pub cause_radius_m: f64,
}

impl Default for DelayConfig {
    fn default() -> Self {
        DelayConfig {
            threshold_s: 300,
            sustain_ms: 60_000,
            clear_below_s: 180,
            clear_after_ms: 600_000,
            cause_memory_ms: 1_800_000,
            group_min_vehicles: 2,
            alone_s: 600,
            cause_radius_m: 500.0,
        }
    }
}

/// Breakdowns: reported, inferred from standing still, or lost contact.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BreakdownConfig {
    /// A vehicle in transit (not at a stop) standing still this long is stranded, ms.
    pub stationary_ms: i64,
    /// "Standing still": within this distance of where it stopped, metres.
    pub stationary_radius_m: f64,
    /// A vehicle not heard from for this long (event time) has lost contact, ms.
    pub silent_ms: i64,
}

impl Default for BreakdownConfig {
    fn default() -> Self {
        BreakdownConfig {
            stationary_ms: 180_000,
            stationary_radius_m: 25.0,
            silent_ms: 60_000,
        }
    }
}

/// Bunching and gapping: the time between consecutive vehicles of a line passing a
/// stop, against the line's scheduled headway.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HeadwayConfig {
    /// Closer than this share of the headway is bunching.
    pub bunching_ratio: f64,
    /// Farther than this share of the headway is gapping.
    pub gapping_ratio: f64,
    /// Recent passages per line that decide whether it is bunched or gapped now.
    pub recent: usize,
    /// A line is alerted only once it has been bunched (or gapped) this long without a
    /// break, ms (event time): a pair of vehicles drifting close for a stop or two is
    /// not worth an operator's attention.
    pub persist_ms: i64,
    /// Its alert clears once the line has been back to its headway this long, ms: a line
    /// that flickers in and out stays under one alert.
    pub clear_after_ms: i64,
    /// A line some of whose vehicles ran through an incident's area, or broke down, is
    /// under that incident's alert for this long afterwards, ms: its bunching and
    /// gapping are the incident's consequences and are not alerted on their own.
    pub disturbed_ms: i64,
    /// Scheduled headway per route id, seconds (from the timetable; lines without one
    /// are not checked).
    pub route_headways_s: HashMap<Id, f64>,
}

impl Default for HeadwayConfig {
    fn default() -> Self {
        HeadwayConfig {
            bunching_ratio: 0.75,
            gapping_ratio: 1.5,
            recent: 4,
            persist_ms: 300_000,
            clear_after_ms: 600_000,
            disturbed_ms: 1_200_000,
            route_headways_s: HashMap::new(),
        }
    }
}

/// Crowded vehicles.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CrowdingConfig {
    /// Fuller than this share of capacity is crowded.
    pub share: f64,
    /// A vehicle leaves its line's crowding alert below this share.
    pub clear_share: f64,
    /// The alert clears once none of its vehicles has been crowded for this long, ms.
    pub clear_after_ms: i64,
    /// A line's crowding alert is raised once this many of its vehicles are crowded,
    /// or one is full.
    pub group_min_vehicles: usize,
}

impl Default for CrowdingConfig {
    fn default() -> Self {
        CrowdingConfig {
            share: 0.9,
            clear_share: 0.75,
            clear_after_ms: 1_800_000,
            group_min_vehicles: 2,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_a_partial_file_keeps_the_rest() {
        assert_eq!(ProcessorConfig::default().validate(), Ok(()));
        let c: ProcessorConfig =
            serde_json::from_str(r#"{"delay": {"threshold_s": 120, "clear_below_s": 60}}"#)
                .unwrap();
        assert_eq!(c.delay.threshold_s, 120);
        assert_eq!(c.delay.sustain_ms, 60_000);
        assert_eq!(c.surge, SurgeConfig::default());
        assert!(
            serde_json::from_str::<ProcessorConfig>(r#"{"dealy": {}}"#).is_err(),
            "typos are errors"
        );
        let bad = ProcessorConfig {
            crowding: CrowdingConfig {
                share: 0.5,
                clear_share: 0.8,
                ..Default::default()
            },
            ..Default::default()
        };
        assert!(bad.validate().is_err());
    }

    #[test]
    fn the_example_file_states_exactly_the_defaults() {
        let text = include_str!("../processor.example.toml");
        let c: ProcessorConfig = toml::from_str(text).unwrap();
        assert_eq!(c, ProcessorConfig::default());
    }
}
