//! Topic names. The defaults follow the StreamCity seed; a prefix can be set so that
//! several twins (or several tests) share one Kafka cluster without seeing each other.

use std::sync::Arc;

/// The names of every topic the stages read or write.
///
/// Stages never hard-code a topic name: they take it from here, so a test can run a
/// whole pipeline on randomly prefixed topics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topics {
    /// The prefix before every name (empty for the plain names); consumer groups carry
    /// it too, so twins sharing a cluster never join each other's groups.
    pub prefix: Arc<str>,
    /// Vehicle position reports ([`crate::VehiclePosition`]), keyed by vehicle id.
    pub vehicle_locations: Arc<str>,
    /// Rider tap-ons ([`crate::RiderTap`]), keyed by stop id.
    pub rider_tapped_on: Arc<str>,
    /// Rider tap-offs ([`crate::RiderTap`]), keyed by stop id.
    pub rider_tapped_off: Arc<str>,
    /// Traffic incidents and their clearance ([`crate::TrafficIncident`]), keyed by incident id.
    pub traffic_incidents: Arc<str>,
    /// City incidents, emergencies and infrastructure ([`crate::CityIncident`]), keyed by event id.
    pub city_incidents: Arc<str>,
    /// The live vehicle table's changelog ([`crate::VehiclePosition`] rows; an empty
    /// payload is a tombstone), keyed by vehicle id. Compacted on Kafka.
    pub live_vehicle_table: Arc<str>,
    /// Passenger surge alerts ([`crate::Alert`] of kind `surge`), keyed by stop id.
    pub surge_alerts: Arc<str>,
    /// Every alert of every kind ([`crate::Alert`]), keyed by alert id.
    pub alerts: Arc<str>,
    /// Records that arrived after their window's grace period, as they were received.
    pub late_events: Arc<str>,
    /// Records that could not be decoded or failed validation, as they were received.
    pub dead_letters: Arc<str>,
    /// The reference data every stage shares: the transit network (key `network`, a
    /// manifest, and its parts) and the simulated clock (key `clock`). One partition,
    /// compacted on Kafka.
    pub network: Arc<str>,
    /// Operators' acknowledgements and mutes of alerts ([`crate::AlertAction`]),
    /// compacted, one partition: every dashboard reads it in full and agrees.
    pub alert_actions: Arc<str>,
    /// Taps per stop in each closed surge window (`{"stop_id", "window_start",
    /// "window_end", "taps"}`, the table behind the seed's surge query), keyed by stop
    /// id; published only when the processor is asked to (`--emit-window-counts`).
    pub stop_tap_counts: Arc<str>,
}

impl Topics {
    /// The seed's topic names, each preceded by `prefix` (empty for the plain names).
    pub fn with_prefix(prefix: &str) -> Self {
        let name = |n: &str| -> Arc<str> { Arc::from(format!("{prefix}{n}")) };
        Topics {
            prefix: Arc::from(prefix),
            vehicle_locations: name("vehicle_locations"),
            rider_tapped_on: name("rider_tapped_on"),
            rider_tapped_off: name("rider_tapped_off"),
            traffic_incidents: name("traffic_incidents"),
            city_incidents: name("city_incidents"),
            live_vehicle_table: name("live_vehicle_table"),
            surge_alerts: name("surge_alerts"),
            alerts: name("alerts"),
            late_events: name("late_events"),
            dead_letters: name("dead_letters"),
            network: name("network"),
            alert_actions: name("alert_actions"),
            stop_tap_counts: name("stop_tap_counts"),
        }
    }

    /// Renames the topic `from` (its name without the prefix, e.g.
    /// `vehicle_locations`) to `to` (taken as it is, no prefix added). Says which names
    /// exist when `from` is none of them.
    pub fn rename(&mut self, from: &str, to: &str) -> Result<(), String> {
        let prefix = Arc::clone(&self.prefix);
        let slot = match from {
            "vehicle_locations" => &mut self.vehicle_locations,
            "rider_tapped_on" => &mut self.rider_tapped_on,
            "rider_tapped_off" => &mut self.rider_tapped_off,
            "traffic_incidents" => &mut self.traffic_incidents,
            "city_incidents" => &mut self.city_incidents,
            "live_vehicle_table" => &mut self.live_vehicle_table,
            "surge_alerts" => &mut self.surge_alerts,
            "alerts" => &mut self.alerts,
            "late_events" => &mut self.late_events,
            "dead_letters" => &mut self.dead_letters,
            "network" => &mut self.network,
            "alert_actions" => &mut self.alert_actions,
            "stop_tap_counts" => &mut self.stop_tap_counts,
            _ => {
                let names: Vec<String> = self
                    .all()
                    .iter()
                    .map(|t| t.strip_prefix(&*prefix).unwrap_or(t).to_owned())
                    .collect();
                return Err(format!(
                    "no topic {from:?} to rename (the topics are: {})",
                    names.join(", ")
                ));
            }
        };
        *slot = Arc::from(to);
        Ok(())
    }

    /// A consumer group's name for these topics: `name` behind the prefix.
    pub fn group(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }

    /// Every topic, in a fixed order (for creating them on a broker).
    pub fn all(&self) -> [&Arc<str>; 13] {
        [
            &self.vehicle_locations,
            &self.rider_tapped_on,
            &self.rider_tapped_off,
            &self.traffic_incidents,
            &self.city_incidents,
            &self.live_vehicle_table,
            &self.surge_alerts,
            &self.alerts,
            &self.late_events,
            &self.dead_letters,
            &self.network,
            &self.alert_actions,
            &self.stop_tap_counts,
        ]
    }
}

impl Default for Topics {
    fn default() -> Self {
        Self::with_prefix("")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_applies_to_every_topic() {
        let t = Topics::with_prefix("t1_");
        assert!(t.all().iter().all(|n| n.starts_with("t1_")));
        assert_eq!(&*Topics::default().vehicle_locations, "vehicle_locations");
        assert_eq!(&*Topics::default().rider_tapped_on, "rider_tapped_on");
    }
}
