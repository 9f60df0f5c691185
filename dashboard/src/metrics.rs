//! `/metrics` in the Prometheus text format: the dashboard's own counters, plus what
//! other stages in the same process report at scrape time (records per topic,
//! processing lag, alerts).

use std::sync::{Arc, Mutex, PoisonError};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::registry::Registry;
use streamcity_core::AlertKind;

type Labels = Vec<(String, String)>;

/// The dashboard's metrics, in a registry of its own (several twins in one process, as
/// in the tests, do not mix).
#[derive(Debug)]
pub struct Metrics {
    registry: Mutex<Registry>,
    /// WebSocket clients connected.
    pub ws_clients: Gauge,
    /// Messages sent to WebSocket clients.
    pub ws_messages_sent: Counter,
    /// Deltas a lagging client skipped (it got a fresh snapshot instead).
    pub ws_messages_dropped: Counter,
    /// WebSocket clients closed by the server, by reason.
    pub ws_closed: Family<Labels, Counter>,
    /// WebSocket upgrades refused because `--max-clients` were connected.
    pub ws_refused: Counter,
    /// Records the dashboard read, by topic.
    records_in: Family<Labels, Counter>,
    /// Records the dashboard could not decode.
    pub undecodable: Counter,
    /// Alerts raised, by kind.
    alerts: Family<Labels, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A fresh registry with the dashboard's metrics.
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let m = Metrics {
            ws_clients: Gauge::default(),
            ws_messages_sent: Counter::default(),
            ws_messages_dropped: Counter::default(),
            ws_closed: Family::default(),
            ws_refused: Counter::default(),
            records_in: Family::default(),
            undecodable: Counter::default(),
            alerts: Family::default(),
            registry: Mutex::new(Registry::default()),
        };
        registry.register(
            "streamcity_ws_clients",
            "WebSocket clients connected",
            m.ws_clients.clone(),
        );
        registry.register(
            "streamcity_ws_messages_sent",
            "Messages sent to WebSocket clients",
            m.ws_messages_sent.clone(),
        );
        registry.register(
            "streamcity_ws_messages_dropped",
            "Deltas skipped by lagging WebSocket clients (sent a fresh snapshot instead)",
            m.ws_messages_dropped.clone(),
        );
        registry.register(
            "streamcity_ws_closed",
            "WebSocket clients closed by the server, by reason",
            m.ws_closed.clone(),
        );
        registry.register(
            "streamcity_ws_refused",
            "WebSocket upgrades refused with 503 because the client cap was reached",
            m.ws_refused.clone(),
        );
        registry.register(
            "streamcity_dashboard_records_in",
            "Records read by the dashboard, by topic",
            m.records_in.clone(),
        );
        registry.register(
            "streamcity_dashboard_undecodable",
            "Records the dashboard could not decode",
            m.undecodable.clone(),
        );
        registry.register(
            "streamcity_alerts_raised",
            "Alerts raised, by kind",
            m.alerts.clone(),
        );
        *m.registry.lock().unwrap_or_else(PoisonError::into_inner) = registry;
        m
    }

    /// The counter of records read from `topic` (a handle: keep it, and count with it).
    pub fn records_in(&self, topic: &str) -> Counter {
        self.records_in
            .get_or_create(&vec![("topic".to_owned(), topic.to_owned())])
            .clone()
    }

    /// Counts a raised alert.
    pub fn alert_raised(&self, kind: AlertKind) {
        let kind = streamcity_core::wire_name(&kind);
        self.alerts
            .get_or_create(&vec![("kind".to_owned(), kind)])
            .inc();
    }

    /// Counts a client closed by the server for `reason`.
    pub fn closed(&self, reason: &str) {
        self.ws_closed
            .get_or_create(&vec![("reason".to_owned(), reason.to_owned())])
            .inc();
    }

    /// Adds metrics read at scrape time from elsewhere (other stages' counters).
    pub fn add_source(&self, source: impl Fn() -> Vec<Sample> + Send + Sync + 'static) {
        let collector = SourceCollector(Arc::new(source));
        self.registry
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .register_collector(Box::new(collector));
    }

    /// Everything, in the Prometheus text format.
    pub fn render(&self) -> String {
        let mut text = String::new();
        let registry = self.registry.lock().unwrap_or_else(PoisonError::into_inner);
        if let Err(e) = prometheus_client::encoding::text::encode(&mut text, &registry) {
            tracing::error!(error = %e, "Encoding metrics failed");
        }
        text
    }
}

/// `samples` alone in the Prometheus text format (a stage's own `/metrics`).
pub fn render_samples(source: &(dyn Fn() -> Vec<Sample> + Send + Sync)) -> String {
    let samples = source();
    let mut registry = Registry::default();
    registry.register_collector(Box::new(SourceCollector(Arc::new(move || samples.clone()))));
    let mut text = String::new();
    if let Err(e) = prometheus_client::encoding::text::encode(&mut text, &registry) {
        tracing::error!(error = %e, "Encoding metrics failed");
    }
    text
}

/// Whether a sample is a counter or a gauge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SampleKind {
    /// Only goes up.
    Counter,
    /// Goes up and down.
    Gauge,
}

/// One value read at scrape time.
#[derive(Debug, Clone)]
pub struct Sample {
    /// Metric name (a counter's without `_total`).
    pub name: &'static str,
    /// Help text.
    pub help: &'static str,
    /// Counter or gauge.
    pub kind: SampleKind,
    /// Labels.
    pub labels: Vec<(String, String)>,
    /// The value.
    pub value: f64,
}

impl Sample {
    /// A counter's value.
    pub fn counter(
        name: &'static str,
        help: &'static str,
        labels: &[(&str, &str)],
        value: u64,
    ) -> Self {
        Sample {
            name,
            help,
            kind: SampleKind::Counter,
            labels: owned(labels),
            value: value as f64,
        }
    }

    /// A gauge's value.
    pub fn gauge(
        name: &'static str,
        help: &'static str,
        labels: &[(&str, &str)],
        value: f64,
    ) -> Self {
        Sample {
            name,
            help,
            kind: SampleKind::Gauge,
            labels: owned(labels),
            value,
        }
    }
}

fn owned(labels: &[(&str, &str)]) -> Vec<(String, String)> {
    labels
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

type Source = Arc<dyn Fn() -> Vec<Sample> + Send + Sync>;

struct SourceCollector(Source);

impl std::fmt::Debug for SourceCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SourceCollector")
    }
}

impl Collector for SourceCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let mut samples = (self.0)();
        samples.sort_by(|a, b| a.name.cmp(b.name));
        for group in samples.chunk_by(|a, b| a.name == b.name) {
            let first = &group[0];
            let metric_type = match first.kind {
                SampleKind::Counter => ConstCounter::new(0u64).metric_type(),
                SampleKind::Gauge => ConstGauge::new(0.0f64).metric_type(),
            };
            let mut family =
                encoder.encode_descriptor(first.name, first.help, None, metric_type)?;
            if first.labels.is_empty() {
                // An unlabelled metric has one sample: `name value`, not `name{} value`.
                match first.kind {
                    SampleKind::Counter => ConstCounter::new(first.value as u64).encode(family)?,
                    SampleKind::Gauge => ConstGauge::new(first.value).encode(family)?,
                }
                continue;
            }
            for s in group {
                let labelled = family.encode_family(&s.labels)?;
                match s.kind {
                    SampleKind::Counter => ConstCounter::new(s.value as u64).encode(labelled)?,
                    SampleKind::Gauge => ConstGauge::new(s.value).encode(labelled)?,
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_own_and_sourced_metrics() {
        let m = Metrics::new();
        m.ws_clients.set(3);
        m.records_in("alerts").inc();
        m.alert_raised(AlertKind::Surge);
        m.add_source(|| {
            vec![
                Sample::counter(
                    "streamcity_bus_published",
                    "Records published",
                    &[("topic", "a")],
                    7,
                ),
                Sample::counter(
                    "streamcity_bus_published",
                    "Records published",
                    &[("topic", "b")],
                    9,
                ),
                Sample::gauge("streamcity_processor_lag_seconds", "Lag", &[], 1.5),
            ]
        });
        let text = m.render();
        for line in [
            "streamcity_ws_clients 3",
            "streamcity_dashboard_records_in_total{topic=\"alerts\"} 1",
            "streamcity_alerts_raised_total{kind=\"surge\"} 1",
            "streamcity_bus_published_total{topic=\"a\"} 7",
            "streamcity_bus_published_total{topic=\"b\"} 9",
            "streamcity_processor_lag_seconds 1.5",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing `{line}` in\n{text}"
            );
        }
        assert_eq!(
            text.matches("# TYPE streamcity_bus_published counter")
                .count(),
            1
        );
    }
}
