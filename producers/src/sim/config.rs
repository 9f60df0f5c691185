//! A simulation run's settings: the event streams (pace, bursts, whether emitted), the
//! tick, the start, breakdowns and GPS dropouts, scripted crowds.

use streamcity_core::{Id, TimestampMs};

use crate::arrivals::{Burst, Gaps};

/// One discrete event stream's settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StreamConfig {
    /// Whether its events are emitted (the simulation runs either way, so the twin
    /// behaves the same whichever streams are watched).
    pub emit: bool,
    /// Gaps between events (for taps: city-wide, at a demand factor of 1).
    pub gaps: Gaps,
    /// Bursts of several events at once.
    pub burst: Burst,
}

/// A scripted crowd: riders pouring into one stop (a stadium or concert letting out).
#[derive(Debug, Clone, PartialEq)]
pub struct CrowdEvent {
    /// The stop they arrive at.
    pub stop_id: Id,
    /// When they start arriving, ms since the epoch.
    pub start_ms: TimestampMs,
    /// Over how long they arrive, ms.
    pub duration_ms: i64,
    /// How many riders.
    pub riders: u32,
}

/// Settings of a simulation run.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// Seed for everything random: the same seed and settings give the same events.
    pub seed: u64,
    /// Simulated time at the start, ms since the epoch.
    pub start_ms: TimestampMs,
    /// Offset of the city's local time from UTC, minutes (for the time-of-day demand curve);
    /// [`crate::Simulation::new`] takes it from the network.
    pub utc_offset_min: i32,
    /// Simulation tick, simulated ms: what happens within one tick comes out together,
    /// stamped with the tick's end. A live run sets it with [`SimConfig::live_tick_ms`].
    pub tick_ms: i64,
    /// Vehicle position reports: whether emitted, and the gap between two reports of
    /// one vehicle (bursts do not apply).
    pub vehicles: StreamConfig,
    /// Rider tap-ons and tap-offs; the gaps are city-wide at a demand factor of 1 and
    /// follow the time of day; a burst is a group arriving together.
    pub taps: StreamConfig,
    /// Traffic incidents.
    pub traffic: StreamConfig,
    /// City incidents (emergencies and infrastructure).
    pub incidents: StreamConfig,
    /// Breakdowns per vehicle per hour in service.
    pub breakdowns_per_vehicle_hour: f64,
    /// GPS dropouts per vehicle per hour.
    pub dropouts_per_vehicle_hour: f64,
    /// Scripted crowds.
    pub crowds: Vec<CrowdEvent>,
    /// How full vehicles of the built-in city start, against its usual loads (1): a
    /// warm start whose riders match the tap rate asked (`produce taps --rate`), so
    /// that their tap-offs do not outnumber the tap-ons it paces.
    pub initial_load: f64,
}

/// The tick of a run that is not paced (tests, benchmarks, batch generation), ms.
pub const DEFAULT_TICK_MS: i64 = 200;

/// Real time between two ticks of a live run, ms, so that an event waits at most this
/// long to come out (see [`SimConfig::live_tick_ms`]).
pub const LIVE_TICK_REAL_MS: f64 = 10.0;

impl SimConfig {
    /// The tick of a run paced at `speed` simulated seconds per real second: about
    /// [`LIVE_TICK_REAL_MS`] of real time, so events come out fresh, in small batches;
    /// but at most [`DEFAULT_TICK_MS`] of simulated time, so that at a high speed-up
    /// reports do not bunch up (a vehicle reports at most once per tick).
    pub fn live_tick_ms(speed: f64) -> i64 {
        let ms = if speed.is_finite() && speed > 0.0 {
            LIVE_TICK_REAL_MS * speed
        } else {
            LIVE_TICK_REAL_MS
        };
        (ms.round() as i64).clamp(1, DEFAULT_TICK_MS)
    }
}

/// City-wide rider arrivals per second at midday, by default.
pub const DEFAULT_TAP_RATE: f64 = 8.0;

impl Default for SimConfig {
    fn default() -> Self {
        let stream = |gaps| StreamConfig {
            emit: true,
            gaps,
            burst: Burst::NONE,
        };
        SimConfig {
            seed: 42,
            start_ms: 1_763_884_800_000, // 2025-11-23T08:00:00Z
            utc_offset_min: 0,
            tick_ms: DEFAULT_TICK_MS,
            vehicles: stream(Gaps::Uniform {
                min_s: 1.0,
                max_s: 1.0,
            }),
            taps: stream(Gaps::rate(DEFAULT_TAP_RATE)),
            traffic: stream(Gaps::Poisson { mean_s: 600.0 }),
            incidents: stream(Gaps::Poisson { mean_s: 900.0 }),
            breakdowns_per_vehicle_hour: 0.01,
            dropouts_per_vehicle_hour: 0.02,
            crowds: Vec::new(),
            initial_load: 1.0,
        }
    }
}
