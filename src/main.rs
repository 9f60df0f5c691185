//! `streamcity`: the one binary. With no subcommand it runs the whole twin in one
//! process on the in-memory bus; `produce`, `process`, `serve` and `tail` run a single
//! stage against Kafka.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::{Parser, Subcommand, ValueEnum};
use streamcity::{Embedded, EmbeddedConfig};
use streamcity_core::clock::wall_clock_ms;
use streamcity_core::geo::LatLon;
use streamcity_producers::CityConfig;
use streamcity_producers::city::DEFAULT_FLEET;
use tracing_subscriber::EnvFilter;

/// StreamCity: a real-time digital twin of a city's public transport.
///
/// With no subcommand, runs the simulators, the processor and the dashboard in one
/// process on the embedded bus, and serves the live map at http://HOST:PORT.
#[derive(Debug, Parser)]
#[command(name = "streamcity", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,

    #[command(flatten)]
    twin: TwinArgs,

    #[command(flatten)]
    listen: ListenArgs,
}

#[derive(Debug, clap::Args)]
struct ListenArgs {
    /// Address the dashboard listens on (0.0.0.0 for every interface).
    #[arg(long, env = "STREAMCITY_HOST", default_value = "127.0.0.1", global = true)]
    host: IpAddr,

    /// Port the dashboard listens on.
    #[arg(long, env = "STREAMCITY_PORT", default_value_t = 8080, global = true)]
    port: u16,
}

#[derive(Debug, clap::Args)]
struct TwinArgs {
    /// Seed of the city and the simulation: the same seed and settings give the same events.
    #[arg(long, env = "STREAMCITY_SEED", default_value_t = 42, global = true)]
    seed: u64,

    /// Vehicles in service.
    #[arg(long, env = "STREAMCITY_VEHICLES", default_value_t = DEFAULT_FLEET as u32,
          value_parser = clap::value_parser!(u32).range(1..=100_000), global = true)]
    vehicles: u32,

    /// Simulated seconds per real second.
    #[arg(long, env = "STREAMCITY_SPEED", default_value_t = 1.0, value_parser = parse_speed, global = true)]
    speed: f64,

    /// Simulated time of day to start at, HH:MM (UTC), e.g. 17:00 for the evening peak.
    /// Default: now.
    #[arg(long, env = "STREAMCITY_START", value_parser = parse_hhmm, global = true)]
    start: Option<u32>,

    /// Latitude of the city centre, degrees.
    #[arg(long, env = "STREAMCITY_LAT", default_value_t = 40.7128, allow_negative_numbers = true, global = true)]
    lat: f64,

    /// Longitude of the city centre, degrees.
    #[arg(long, env = "STREAMCITY_LON", default_value_t = -74.0060, allow_negative_numbers = true, global = true)]
    lon: f64,

    /// Taps at one stop within the surge window above which a surge is raised.
    #[arg(long, env = "STREAMCITY_SURGE_THRESHOLD", default_value_t = 40, global = true)]
    surge_threshold: u64,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run simulators only, publishing to Kafka.
    Produce {
        /// Which producer to run.
        #[arg(value_enum)]
        producer: ProducerKind,
    },
    /// Run the processor only, reading and writing Kafka.
    Process,
    /// Run the dashboard only, reading Kafka.
    Serve,
    /// Print the records of a topic.
    Tail {
        /// The topic to read.
        topic: String,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum ProducerKind {
    Vehicles,
    Taps,
    Traffic,
    Incidents,
    All,
}

fn parse_speed(s: &str) -> Result<f64, String> {
    let v: f64 = s.parse().map_err(|_| format!("`{s}` is not a number"))?;
    if v.is_finite() && v > 0.0 && v <= 10_000.0 {
        Ok(v)
    } else {
        Err(format!("speed must be above 0 and at most 10000, got {s}"))
    }
}

/// Minutes after midnight from `HH:MM`.
fn parse_hhmm(s: &str) -> Result<u32, String> {
    let err = || format!("expected a time of day as HH:MM (00:00 to 23:59), got `{s}`");
    let (h, m) = s.split_once(':').ok_or_else(err)?;
    let (h, m): (u32, u32) = (h.parse().map_err(|_| err())?, m.parse().map_err(|_| err())?);
    if h < 24 && m < 60 { Ok(h * 60 + m) } else { Err(err()) }
}

/// Today's date (UTC) at `minutes` after midnight, ms since the epoch.
fn today_at(minutes: u32) -> i64 {
    let now = wall_clock_ms();
    now - now.rem_euclid(86_400_000) + minutes as i64 * 60_000
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")))
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
        None => run_embedded(cli.twin, cli.listen).await,
        Some(command) => {
            let name = match command {
                Command::Produce { .. } => "produce",
                Command::Process => "process",
                Command::Serve => "serve",
                Command::Tail { .. } => "tail",
            };
            eprintln!(
                "error: `streamcity {name}` runs one stage against Kafka, and this build has no Kafka bus yet.\n\
                 Run `streamcity` with no subcommand for the whole twin in one process."
            );
            return std::process::ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run_embedded(twin: TwinArgs, listen: ListenArgs) -> anyhow::Result<()> {
    let centre = LatLon::new(twin.lat, twin.lon);
    anyhow::ensure!(centre.is_valid(), "--lat/--lon must be a valid position, got ({}, {})", twin.lat, twin.lon);
    let mut config = EmbeddedConfig {
        addr: SocketAddr::new(listen.host, listen.port),
        city: CityConfig { seed: twin.seed, centre, vehicles: twin.vehicles as usize },
        speed: twin.speed,
        ..EmbeddedConfig::default()
    };
    config.sim.seed = twin.seed;
    if let Some(minutes) = twin.start {
        config.sim.start_ms = today_at(minutes);
    }
    config.processor.surge.threshold = twin.surge_threshold;

    let mut twin_run = Embedded::start(config).await.context("starting the twin")?;
    let port = twin_run.addr.port();
    let host = if listen.host.is_unspecified() || listen.host.is_loopback() {
        "localhost".to_owned()
    } else {
        twin_run.addr.ip().to_string()
    };
    println!("StreamCity is running: open http://{host}:{port}  (live updates: ws://{host}:{port}/ws; Ctrl+C to stop)");

    let started = Instant::now();
    let mut progress = tokio::time::interval(Duration::from_secs(10));
    progress.tick().await;
    let mut last_sent = 0u64;
    let outcome = loop {
        tokio::select! {
            result = twin_run.wait() => break result,
            _ = shutdown_signal() => break Ok(()),
            _ = progress.tick() => {
                let sent = twin_run.producer.sent.load(Ordering::Relaxed);
                let sim_ms = twin_run.producer.sim_time_ms.load(Ordering::Relaxed);
                tracing::info!(
                    sim_time = %format_hms(sim_ms as i64),
                    vehicles = twin_run.live.vehicle_count(),
                    events_per_sec = (sent - last_sent) / 10,
                    alerts = twin_run.processor.alerts_raised.load(Ordering::Relaxed),
                    "Twin running"
                );
                last_sent = sent;
            }
        }
    };
    println!("Stopping: flushing every stage...");
    let summary = twin_run.shutdown().await?;
    outcome?;
    println!("Stopped after {:.0} s. Records published:", started.elapsed().as_secs_f64());
    for t in &summary.topics {
        println!("  {:<20} {:>10}", t.topic, t.published);
    }
    println!("  alerts raised: {}, dead letters: {}", summary.alerts_raised, summary.dead_letters);
    Ok(())
}

fn format_hms(ms: i64) -> String {
    let s = (ms / 1000).rem_euclid(86_400);
    format!("{:02}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
}

/// Resolves on Ctrl+C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
}
