//! What every process shows of itself: `/metrics` (Prometheus text), `/healthz` and
//! `/readyz`. The dashboard serves them on its own port beside the map; `produce` and
//! `process`, run alone, serve them on a port of their own.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::Router;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use streamcity_core::clock::wall_clock_ms;
use streamcity_core::{CancellationToken, InvalidEvent};
use streamcity_dashboard::metrics::{Sample, render_samples};
use streamcity_processor::runner::ProcessorStats;
use streamcity_producers::runner::ProducerStats;
use tokio::net::TcpListener;

/// The producer's counters as metrics.
pub fn producer_metrics(stats: &ProducerStats) -> Vec<Sample> {
    let load = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
    let mut out = vec![
        Sample::counter(
            "streamcity_producer_records_sent",
            "Records the simulators sent",
            &[],
            load(&stats.sent),
        ),
        Sample::counter(
            "streamcity_producer_records_failed",
            "Records the bus refused",
            &[],
            load(&stats.failed),
        ),
    ];
    let sim = load(&stats.sim_time_ms);
    if sim > 0 {
        out.push(Sample::gauge(
            "streamcity_producer_simulated_time_seconds",
            "Simulated time reached, seconds since the epoch",
            &[],
            sim as f64 / 1000.0,
        ));
    }
    if let Some(speed) = stats.achieved_speed() {
        out.push(Sample::gauge(
            "streamcity_producer_achieved_speed",
            "Simulated seconds per real second the simulation achieved, when it could not keep the speed asked (then the speed asked once it keeps up again)",
            &[],
            speed,
        ));
    }
    out
}

/// A Kafka producer's delivery reports as metrics.
pub fn delivery_metrics(reports: &streamcity_kafka::DeliveryStats) -> Vec<Sample> {
    vec![
        Sample::counter(
            "streamcity_producer_records_delivered",
            "Records the brokers acknowledged",
            &[],
            reports.delivered.load(Ordering::Relaxed),
        ),
        Sample::counter(
            "streamcity_producer_records_undelivered",
            "Records the brokers did not take, after retries",
            &[],
            reports.failed.load(Ordering::Relaxed),
        ),
    ]
}

/// The processor's counters (this run's) as metrics: records, dead letters by reason,
/// late records, alerts, the watermark and how far it is behind the producer's clock.
pub fn processor_metrics(stats: &ProcessorStats) -> Vec<Sample> {
    let c = stats.counts();
    let mut out = vec![
        Sample::counter(
            "streamcity_processor_records_in",
            "Records the processor read",
            &[],
            c.records_in,
        ),
        Sample::counter(
            "streamcity_processor_records_out",
            "Records the processor published",
            &[],
            c.records_out,
        ),
        Sample::counter(
            "streamcity_processor_late_records",
            "Records after their window closed",
            &[],
            c.late,
        ),
        Sample::counter(
            "streamcity_processor_alerts_raised",
            "Alerts the processor raised",
            &[],
            c.alerts_raised,
        ),
        Sample::counter(
            "streamcity_processor_records_refused",
            "Records the bus would not take (each lost alone; the processor goes on)",
            &[],
            stats.rejected.load(Ordering::Relaxed),
        ),
        Sample::gauge(
            "streamcity_processor_open_windows",
            "Open windows",
            &[],
            stats.open_windows.load(Ordering::Relaxed) as f64,
        ),
        Sample::gauge(
            "streamcity_processor_vehicles",
            "Vehicles in the live table",
            &[],
            stats.vehicles.load(Ordering::Relaxed) as f64,
        ),
    ];
    for (reason, n) in InvalidEvent::REASONS.iter().zip(c.dead_letter_reasons) {
        out.push(Sample::counter(
            "streamcity_processor_dead_letters",
            "Records set aside on dead_letters, by reason",
            &[("reason", reason)],
            n,
        ));
    }
    out.push(Sample::gauge(
        "streamcity_processor_assigned_partitions",
        "Input partitions the consumer group gave this instance",
        &[],
        stats.assigned.load(Ordering::Relaxed) as f64,
    ));
    for (topic, partition, lag) in stats.lags() {
        out.push(Sample::gauge(
            "streamcity_processor_consumer_lag",
            "Records between the processor's position and the end of an assigned input partition",
            &[("topic", &topic), ("partition", &partition.to_string())],
            lag as f64,
        ));
    }
    out.push(Sample::counter(
        "streamcity_processor_replayed_records",
        "Records read again after a restart that the restored state already had (skipped)",
        &[],
        c.replayed,
    ));
    let seen = stats.event_time_ms.load(Ordering::Relaxed);
    if seen > 0 {
        out.push(Sample::gauge(
            "streamcity_processor_event_time_seconds",
            "The latest event time the processor has seen, seconds since the epoch",
            &[],
            seen as f64 / 1000.0,
        ));
    }
    let watermark = stats.watermark_ms.load(Ordering::Relaxed);
    if watermark > 0 {
        out.push(Sample::gauge(
            "streamcity_processor_watermark_seconds",
            "The processor's watermark, seconds since the epoch (event time)",
            &[],
            watermark as f64 / 1000.0,
        ));
        if let Some(clock) = stats.clock() {
            let lag = (clock.sim_at(wall_clock_ms()) - watermark) as f64 / 1000.0;
            out.push(Sample::gauge(
                "streamcity_processor_lag_seconds",
                "How far the watermark is behind the producer's clock, simulated seconds",
                &[],
                lag,
            ));
        }
    }
    out
}

/// Whether a stage is ready: `Ok` with what it says, or `Err` with why not.
pub type Readiness = Result<String, String>;

/// Serves `/metrics` (from `metrics`), `/healthz` and `/readyz` (from `ready`) on
/// `listener` until `stop` is cancelled.
pub async fn serve(
    listener: TcpListener,
    metrics: impl Fn() -> Vec<Sample> + Send + Sync + 'static,
    ready: impl Fn() -> Readiness + Send + Sync + 'static,
    stop: CancellationToken,
) -> std::io::Result<()> {
    let metrics = Arc::new(metrics);
    let ready = Arc::new(ready);
    let app = Router::new()
        .route(
            "/metrics",
            get(move || {
                let text = render_samples(&*metrics);
                async move {
                    (
                        [(
                            header::CONTENT_TYPE,
                            "text/plain; version=0.0.4; charset=utf-8",
                        )],
                        text,
                    )
                }
            }),
        )
        .route("/healthz", get(|| async { "ok" }))
        .route(
            "/readyz",
            get(move || {
                let answer = match ready() {
                    Ok(what) => (
                        StatusCode::OK,
                        axum::Json(serde_json::json!({ "status": "ready", "detail": what })),
                    ),
                    Err(why) => (
                        StatusCode::SERVICE_UNAVAILABLE,
                        axum::Json(serde_json::json!({ "error": why })),
                    ),
                };
                async move { answer.into_response() }
            }),
        );
    streamcity_dashboard::server::serve_router(
        listener,
        app,
        streamcity_dashboard::ServerLimits::default(),
        stop,
        async {},
    )
    .await
}

/// Binds a stage's own port: `port` when given (an error if it is taken), otherwise
/// `default`, or any free port when that is taken (two processors on one machine).
pub async fn bind(
    host: IpAddr,
    port: Option<u16>,
    default: u16,
    stage: &str,
) -> anyhow::Result<TcpListener> {
    use anyhow::Context as _;
    let addr = SocketAddr::new(host, port.unwrap_or(default));
    let listener = match TcpListener::bind(addr).await {
        Ok(l) => l,
        Err(e) if port.is_none() && e.kind() == std::io::ErrorKind::AddrInUse => {
            TcpListener::bind(SocketAddr::new(host, 0)).await?
        }
        Err(e) => return Err(e).with_context(|| format!("cannot listen on {addr}")),
    };
    let at = listener.local_addr()?;
    eprintln!("{stage}: metrics on http://{at}/metrics (health: /healthz, /readyz)");
    Ok(listener)
}
