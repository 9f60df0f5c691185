//! When riders travel: demand by the local hour of the day.

use streamcity_core::TimestampMs;

/// Relative rider demand by local hour of day: low at night, peaks around 08:15 and 17:30.
pub fn demand_factor(hour: f64) -> f64 {
    let gauss = |mu: f64, sigma: f64| (-((hour - mu) / sigma).powi(2) / 2.0).exp();
    let day =
        1.0 / (1.0 + (-(hour - 6.0) * 2.0).exp()) - 1.0 / (1.0 + (-(hour - 22.5) * 2.0).exp());
    0.2 + 0.8 * day + 1.6 * gauss(8.25, 0.9) + 1.3 * gauss(17.5, 1.1)
}

/// The local hour of day (0–24) at `ts`.
pub fn local_hour(ts: TimestampMs, utc_offset_min: i32) -> f64 {
    let secs = (ts / 1000 + utc_offset_min as i64 * 60).rem_euclid(86_400);
    secs as f64 / 3_600.0
}
