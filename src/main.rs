//! `streamcity`: the one binary. With no subcommand it runs the whole twin in one
//! process on the in-memory bus; `produce`, `process`, `serve` and `tail` run a single
//! stage.

/// Prints a line on stdout; a reader that went away (`streamcity | head`) is no error.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

mod avro_events;
mod cli;
mod jsonl;
mod process_file;
mod produce;
mod produce_scenario;
mod stages;

use std::io::Write;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::Parser;
use cli::{BusKind, Cli, Command, KafkaArgs, ListenArgs, PaceArgs, ProducerKind, TwinArgs};
use streamcity::{Embedded, EmbeddedConfig, TwinBus, format_hms, observe};
use streamcity_core::CancellationToken;
use streamcity_producers::runner::ProducerStats;
use tracing_subscriber::EnvFilter;

/// mimalloc rather than the system allocator: records are allocated on one thread and
/// freed on another (a producer's payload, dropped by the dashboard's history), which
/// glibc's per-thread arenas serve with locks and consolidation passes.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .init();
    // Settings may come from a .env file, as the seeds' producers read theirs.
    let dotenv = dotenvy::dotenv();
    let cli = Cli::parse();
    if let Err(e) = dotenv
        .as_ref()
        .map(|_| ())
        .or_else(|e| if e.not_found() { Ok(()) } else { Err(e) })
    {
        eprintln!("error: reading .env: {e}");
        return ExitCode::FAILURE;
    }
    let result = match cli.command {
        None => {
            run_embedded(
                cli.twin,
                cli.listen,
                cli.pace,
                &cli.kafka,
                &cli.notify,
                &cli.archive,
            )
            .await
        }
        Some(Command::Produce {
            producer,
            scenario,
            list_scenarios,
            output,
            renames,
            no_pacing,
            format,
            schema_registry,
        }) => {
            let options = produce_scenario::Options {
                output,
                renames,
                no_pacing,
                format,
                schema_registry,
            };
            match (list_scenarios, scenario, producer) {
                (true, ..) => produce_scenario::list(),
                (false, Some(scenario), _) => {
                    produce_scenario::run(
                        &scenario,
                        options,
                        &cli.twin,
                        &cli.pace,
                        &cli.kafka,
                        stop_on_signal(),
                    )
                    .await
                }
                (false, None, Some(producer)) => {
                    run_produce(
                        producer,
                        options,
                        &cli.twin,
                        &cli.listen,
                        &cli.pace,
                        &cli.kafka,
                    )
                    .await
                }
                (false, None, None) => Err(anyhow::anyhow!(
                    "produce needs a producer (vehicles, taps, traffic, incidents, all) or --scenario"
                )),
            }
        }
        Some(Command::Gtfs {
            action: cli::GtfsAction::Inspect { feed },
        }) => gtfs_inspect(&feed),
        Some(Command::Gtfs {
            action: cli::GtfsAction::Export { out },
        }) => gtfs_export(&cli.twin, &out),
        Some(Command::Process {
            inputs,
            output,
            expect,
            emit_window_counts,
            group,
            from_beginning,
        }) => {
            if inputs.is_empty() {
                let group = stages::ProcessGroup {
                    name: group.unwrap_or_else(|| streamcity_processor::runner::GROUP.to_owned()),
                    from_beginning,
                };
                stages::process(
                    &cli.twin,
                    &cli.listen,
                    &cli.kafka,
                    group,
                    emit_window_counts,
                    stop_on_signal(),
                )
                .await
            } else {
                let files = process_file::Files {
                    inputs,
                    output,
                    expect,
                };
                process_file::run(&cli.twin, &cli.kafka, &files, emit_window_counts)
            }
        }
        Some(Command::Serve) => {
            stages::serve(&cli.twin, &cli.listen, &cli.kafka, stop_on_signal()).await
        }
        Some(Command::Notify) => {
            stages::notify(&cli.notify, &cli.listen, &cli.kafka, stop_on_signal()).await
        }
        Some(Command::Archive { dir }) => {
            let config = cli.archive.config(dir, true);
            stages::archive(config, &cli.listen, &cli.kafka, stop_on_signal()).await
        }
        Some(Command::Replay {
            dir,
            from,
            to,
            speed,
            topics,
            source_prefix,
        }) => {
            let config = streamcity_archive::ReplayConfig {
                dir,
                from,
                to,
                speed,
                topics: if topics.is_empty() {
                    streamcity_archive::replay::INPUT_TOPICS
                        .iter()
                        .map(|t| (*t).to_owned())
                        .collect()
                } else {
                    topics
                },
                source_prefix: source_prefix.unwrap_or_else(|| cli.kafka.topic_prefix.clone()),
            };
            stages::replay(config, &cli.listen, &cli.kafka, stop_on_signal()).await
        }
        Some(Command::Tail {
            topic,
            count,
            from_beginning,
            key,
        }) => {
            stages::tail(
                &cli.kafka,
                &topic,
                count,
                from_beginning,
                key.as_deref(),
                stop_on_signal(),
            )
            .await
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// A token cancelled on Ctrl+C or SIGTERM.
fn stop_on_signal() -> CancellationToken {
    let stop = CancellationToken::new();
    let token = stop.clone();
    let signal = shutdown_signal();
    tokio::spawn(async move {
        signal.await;
        token.cancel();
    });
    stop
}

/// `streamcity gtfs export`: the built-in city as a GTFS zip, written beside `out` and
/// renamed into place, so that a failed write leaves no half feed.
fn gtfs_export(twin: &cli::TwinArgs, out: &std::path::Path) -> anyhow::Result<()> {
    anyhow::ensure!(
        twin.gtfs.is_none(),
        "gtfs export writes the built-in city; --gtfs names a feed already"
    );
    let network = streamcity_network::synthetic::generate(twin.network()?);
    let partial = out.with_extension("zip.partial");
    let file = std::fs::File::create(&partial)
        .with_context(|| format!("cannot create {}", partial.display()))?;
    let written = streamcity_network::export::write_gtfs(&network, std::io::BufWriter::new(file))
        .with_context(|| format!("writing {}", partial.display()))?;
    written
        .into_inner()
        .map_err(|e| e.into_error())
        .and_then(|f| f.sync_all())
        .with_context(|| format!("writing {}", partial.display()))?;
    std::fs::rename(&partial, out)
        .with_context(|| format!("cannot move the feed to {}", out.display()))?;
    say!(
        "Wrote {}: {} ({} routes, {} stops, {} trips)",
        out.display(),
        network.name,
        network.routes.len(),
        network.stops.len(),
        network.trips.len()
    );
    Ok(())
}

/// `streamcity gtfs inspect`: what the feed holds and what will run.
fn gtfs_inspect(feed: &std::path::Path) -> anyhow::Result<()> {
    use std::fmt::Write as _;
    let loaded = streamcity_network::gtfs::load(feed)
        .with_context(|| format!("loading the GTFS feed {}", feed.display()))?;
    let n = &loaded.network;
    let mut out = String::new();
    let _ = writeln!(out, "{}", n.describe());
    let _ = writeln!(
        out,
        "centre {:.5}, {:.5}; UTC offset {} min",
        n.centre.lat, n.centre.lon, n.utc_offset_min
    );
    let _ = writeln!(out, "\nrows read:");
    for (file, rows) in &loaded.report.rows {
        let _ = writeln!(out, "  {file:<20} {rows:>9}");
    }
    let called: std::collections::HashSet<&str> = n
        .trips
        .iter()
        .flat_map(|t| t.stop_times.iter().map(|s| s.stop_id.as_str()))
        .collect();
    let stations: std::collections::HashSet<&str> = n
        .stops
        .iter()
        .filter_map(|s| s.parent_station.as_deref())
        .collect();
    let _ = writeln!(
        out,
        "\nwill run: {} routes, {} stops called at, {} stations, {} trips, {} stop times, {} services, {} shapes",
        n.routes.len(),
        called.len(),
        stations.len(),
        n.trips.len(),
        n.trips.iter().map(|t| t.stop_times.len()).sum::<usize>(),
        n.services.len(),
        n.shapes.len()
    );
    if let (Some(first), Some(last)) = (
        n.services.iter().map(|s| s.start_date).min(),
        n.services.iter().map(|s| s.end_date).max(),
    ) {
        let _ = writeln!(out, "service days: {} to {}", first.0, last.0);
    }
    let _ = writeln!(out, "\nroutes:");
    for r in &n.routes {
        let _ = writeln!(
            out,
            "  {:<12} {:<8} {:?} {} stops, every {:.0} s, {} vehicles: {}",
            r.route_id,
            r.short_name,
            r.mode,
            r.stop_ids.len(),
            r.headway_s,
            r.vehicles,
            r.name
        );
    }
    let report = &loaded.report;
    let _ = writeln!(out, "\nwarnings: {}", report.warning_count());
    for (kind, (count, example)) in &report.warnings {
        let _ = writeln!(out, "  {count:>6} {kind} (e.g. {example})");
    }
    say!("{}", out.trim_end());
    Ok(())
}

async fn run_produce(
    producer: ProducerKind,
    options: produce_scenario::Options,
    twin: &TwinArgs,
    listen: &ListenArgs,
    pace: &PaceArgs,
    kafka: &KafkaArgs,
) -> anyhow::Result<()> {
    anyhow::ensure!(
        !options.no_pacing,
        "--no-pacing is for scenarios; the twin's producers follow --speed"
    );
    let avro = options.format == cli::ValueFormat::Avro;
    anyhow::ensure!(
        avro || options.schema_registry.is_none(),
        "--schema-registry goes with --format avro"
    );
    let network = Arc::new(twin.build_network()?);
    let (sim, limits) = cli::simulation(twin, pace, producer, &network)?;
    let every = Duration::from_secs(5);
    let mut topics = kafka.topics();
    for (from, to) in &options.renames {
        topics
            .rename(from, to)
            .map_err(|e| anyhow::anyhow!("--topic {from}={to}: {e}"))?;
    }
    if avro {
        eprintln!(
            "Values of {}, {}, {}, {} and {} in Avro, for your own consumers: the twin's stages (process, serve) read JSON",
            topics.vehicle_locations,
            topics.rider_tapped_on,
            topics.rider_tapped_off,
            topics.traffic_incidents,
            topics.city_incidents
        );
    }
    if avro && options.output.is_none() && kafka.bus_kind() != BusKind::Kafka {
        anyhow::bail!(
            "Avro is binary: give --output DIR (one container file per topic) or --brokers with --schema-registry"
        );
    }
    if let (true, Some(dir)) = (avro, &options.output) {
        anyhow::ensure!(
            kafka.bus_kind() != BusKind::Kafka,
            "--output writes files instead of Kafka: leave out --brokers, or --output"
        );
        let bus = avro_events::AvroFilesBus::new(dir, avro_events::EventAvro::new(&topics)?)?;
        return produce_to_file(bus, topics, network, sim, twin.speed, limits, every).await;
    }
    if let Some(path) = &options.output {
        anyhow::ensure!(
            kafka.bus_kind() != BusKind::Kafka,
            "--output writes a file instead of Kafka: leave out --brokers, or --output"
        );
        let bus = produce_scenario::output_bus(path)?;
        return produce_to_file(bus, topics, network, sim, twin.speed, limits, every).await;
    }
    let stats = Arc::new(ProducerStats::default());
    let stop = stop_on_signal();
    let mirror = twin
        .mirror()?
        .map(|m| (m, Arc::new(streamcity::mirror::MirrorStats::default())));
    let mirror_stats = mirror.as_ref().map(|(_, s)| Arc::clone(s));
    if kafka.bus_kind() == BusKind::Kafka {
        let registry = match (avro, &options.schema_registry) {
            (true, None) => anyhow::bail!(
                "Avro to Kafka needs --schema-registry URL: the records carry their schema's id (Confluent's wire format)"
            ),
            (_, url) => url.clone(),
        };
        let bus = stages::connect(kafka, "produce").await?;
        bus.ensure_topics(&topics).await?;
        let reports = Arc::clone(bus.stats());
        let listener = observe::bind(listen.host, listen.port, 9101, "produce").await?;
        let observer = tokio::spawn(observe::serve(
            listener,
            {
                let (stats, reports) = (Arc::clone(&stats), Arc::clone(&reports));
                move || {
                    let mut out = observe::producer_metrics(&stats);
                    out.extend(observe::delivery_metrics(&reports));
                    if let Some(m) = &mirror_stats {
                        out.extend(streamcity::mirror::mirror_metrics(m));
                    }
                    out
                }
            },
            || Ok("producing".to_owned()),
            stop.clone(),
        ));
        let reference = {
            let (bus, topic) = (bus.clone(), Arc::clone(&topics.network));
            Box::new(move || {
                bus.published()
                    .iter()
                    .find(|(t, _)| *t == topic)
                    .map_or(0, |(_, n)| *n)
            }) as Box<dyn Fn() -> u64 + Send>
        };
        // Avro when asked: each input topic's schema registered, values re-encoded.
        let schemas = match registry {
            Some(url) => {
                let mut schemas = avro_events::EventAvro::new(&topics)?;
                let client = reqwest::Client::new();
                for (topic, t) in schemas.topics_mut() {
                    let id = streamcity::schema_registry::register(&client, &url, topic, &t.json)
                        .await?;
                    eprintln!("Schema of {topic} registered at {url}: id {id}");
                    t.id = Some(id);
                }
                Some(schemas)
            }
            None => None,
        };
        let out = produce::Output {
            bus: avro_events::AvroBus::new(bus, schemas),
            topics,
            reports: Some((reports, reference)),
            share: true,
        };
        let result = produce::run(
            out,
            network,
            sim,
            twin.speed,
            limits,
            stats,
            stop.clone(),
            every,
            mirror,
        )
        .await;
        stop.cancel();
        let _ = observer.await;
        return result;
    }
    let out: Box<dyn Write + Send> = Box::new(std::io::BufWriter::with_capacity(
        1 << 16,
        std::io::stdout(),
    ));
    let out = produce::Output {
        bus: jsonl::JsonLinesBus::new(out),
        topics,
        reports: None,
        share: false,
    };
    produce::run(
        out, network, sim, twin.speed, limits, stats, stop, every, mirror,
    )
    .await
}

/// The twin's producers to a file (JSON lines or Avro containers): nothing shared.
async fn produce_to_file<B: streamcity_core::Bus>(
    bus: B,
    topics: streamcity_core::Topics,
    network: Arc<streamcity_network::Network>,
    sim: streamcity_producers::SimConfig,
    speed: f64,
    limits: streamcity_producers::runner::Limits,
    every: Duration,
) -> anyhow::Result<()> {
    let out = produce::Output {
        bus,
        topics,
        reports: None,
        share: false,
    };
    let stats = Arc::new(ProducerStats::default());
    produce::run(
        out,
        network,
        sim,
        speed,
        limits,
        stats,
        stop_on_signal(),
        every,
        None,
    )
    .await
}

async fn run_embedded(
    twin: TwinArgs,
    listen: ListenArgs,
    pace: PaceArgs,
    kafka: &KafkaArgs,
    notify: &cli::NotifyArgs,
    archive: &cli::ArchiveArgs,
) -> anyhow::Result<()> {
    let network = Arc::new(twin.build_network()?);
    let on_kafka = kafka.bus_kind() == BusKind::Kafka;
    let (sim, limits) = cli::simulation(&twin, &pace, ProducerKind::All, &network)?;
    let config = EmbeddedConfig {
        addr: SocketAddr::new(listen.host, listen.dashboard_port()),
        network: twin.network()?,
        gtfs: twin.gtfs.clone(),
        built: Some(network),
        sim,
        speed: twin.speed,
        limits,
        processor: twin.processor()?,
        checkpoint: twin.checkpoint.clone(),
        checkpoint_every: std::time::Duration::from_secs(twin.checkpoint_interval),
        live: listen.live(),
        origins: listen.origins()?,
        access: listen.access()?,
        notify: notify.config()?,
        archive: archive
            .archive
            .clone()
            .map(|dir| archive.config(dir, on_kafka)),
        http: listen.http_limits(),
        mirror: twin.mirror()?,
        ..EmbeddedConfig::default()
    };

    match kafka.bus_kind() {
        BusKind::Memory => {
            let twin_run = Embedded::start(config).await.context("starting the twin")?;
            drive(twin_run, &listen, "the in-memory bus").await
        }
        BusKind::Kafka => {
            let bus = stages::connect(kafka, "--bus kafka").await?;
            let topics = kafka.topics();
            bus.ensure_topics(&topics).await?;
            let config = EmbeddedConfig { topics, ..config };
            let twin_run = Embedded::start_on(config, bus)
                .await
                .context("starting the twin")?;
            let on = format!("Kafka at {}", kafka.brokers.as_deref().unwrap_or_default());
            drive(twin_run, &listen, &on).await
        }
    }
}

/// Runs a started twin until its limits, Ctrl+C or a failure, with progress every 10 s,
/// then stops it and prints what it did.
async fn drive<B: TwinBus>(
    mut twin_run: Embedded<B>,
    listen: &ListenArgs,
    on: &str,
) -> anyhow::Result<()> {
    let port = twin_run.addr.port();
    let host = if listen.host.is_unspecified() || listen.host.is_loopback() {
        "localhost".to_owned()
    } else {
        twin_run.addr.ip().to_string()
    };
    // Stoppable from the moment it says it runs.
    let stop = stop_on_signal();
    say!(
        "StreamCity is running: open http://{host}:{port}  (live updates: ws://{host}:{port}/ws; Ctrl+C to stop)"
    );
    tracing::info!("The twin runs on {on}");

    let started = Instant::now();
    let mut progress = tokio::time::interval(Duration::from_secs(10));
    progress.tick().await;
    let mut last_sent = 0u64;
    let outcome = loop {
        tokio::select! {
            result = twin_run.wait() => break result,
            _ = stop.cancelled() => break Ok(()),
            _ = progress.tick() => {
                let sent = twin_run.producer.sent.load(Ordering::Relaxed);
                let sim_ms = twin_run.producer.sim_time_ms.load(Ordering::Relaxed);
                tracing::info!(
                    sim_time = %format_hms(sim_ms as i64),
                    vehicles = twin_run.live.vehicle_count(),
                    events_per_sec = (sent - last_sent) / 10,
                    alerts = twin_run.processor.counts().alerts_raised,
                    "Twin running"
                );
                last_sent = sent;
            }
        }
    };
    say!("Stopping: flushing every stage...");
    let summary = twin_run.shutdown().await;
    outcome?;
    let summary = summary?;
    say!(
        "Stopped after {:.0} s. Records published:",
        started.elapsed().as_secs_f64()
    );
    for t in &summary.topics {
        say!("  {:<20} {:>10}", t.topic, t.published);
    }
    say!(
        "  alerts raised: {}, dead letters: {}",
        summary.alerts_raised,
        summary.dead_letters
    );
    Ok(())
}

/// Resolves on Ctrl+C or SIGTERM. The handlers are installed when it is called, not
/// when first polled: a signal from then on is a clean stop, even one that comes before
/// the caller waits (a test stopping the twin as soon as it says where it listens).
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    let (mut term, mut int) = {
        use tokio::signal::unix::{SignalKind, signal};
        (
            signal(SignalKind::terminate()).ok(),
            signal(SignalKind::interrupt()).ok(),
        )
    };
    async move {
        #[cfg(unix)]
        {
            let recv = |s: &mut Option<tokio::signal::unix::Signal>| {
                let s = s.take();
                async move {
                    match s {
                        Some(mut s) => {
                            s.recv().await;
                        }
                        None => std::future::pending::<()>().await,
                    }
                }
            };
            tokio::select! {
                _ = recv(&mut term) => {}
                _ = recv(&mut int) => {}
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
