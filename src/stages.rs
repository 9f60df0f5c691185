//! The stages that run on their own against Kafka: `process`, `serve` and `tail`, as
//! docker-compose runs them. `process` and `serve` take the network and the clock from
//! the bus, where the producer published them.

use std::io::Write;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context as _;
use streamcity::observe;
use streamcity_core::{
    Bus, CancellationToken, ClockReading, StartFrom, Subscribe, Subscription, SystemClock, Topics,
};
use streamcity_dashboard::Live;
use streamcity_kafka::KafkaBus;
use streamcity_network::{Network, topic};
use streamcity_processor::runner::{ProcessorStats, RunOptions};

use crate::cli::{KafkaArgs, ListenArgs, NotifyArgs, TwinArgs};

/// Connects to Kafka, or says how to name the brokers.
pub async fn connect(kafka: &KafkaArgs, stage: &str) -> anyhow::Result<KafkaBus> {
    if kafka.bus == Some(crate::cli::BusKind::Memory) {
        anyhow::bail!("`streamcity {stage}` runs against Kafka, not with --bus memory");
    }
    let config = kafka.config().with_context(|| {
        format!(
            "`streamcity {stage}` runs against Kafka: give --brokers or set KAFKA_BOOTSTRAP_SERVERS"
        )
    })?;
    // Stoppable while it retries: a SIGTERM then is a clean stop, not a hang.
    tokio::select! {
        bus = KafkaBus::connect(config) => Ok(bus?),
        () = crate::shutdown_signal() => {
            tracing::info!("Stopped while waiting for Kafka");
            std::process::exit(0)
        }
    }
}

/// A name for this process among others of the same stage.
fn instance() -> String {
    format!(
        "{}-{}",
        std::process::id(),
        streamcity_core::clock::wall_clock_ms()
    )
}

/// The network of a stage that reads it from the bus: the producer's, waited for when
/// there is none yet, and checked against the one the stage was given, if any. `None`
/// when stopped while waiting.
async fn network_from_bus(
    bus: &KafkaBus,
    topics: &Topics,
    twin: &TwinArgs,
    stage: &str,
    stop: &CancellationToken,
) -> anyhow::Result<Option<(Arc<Network>, Option<ClockReading>)>> {
    if twin.start.is_some() || twin.speed != 1.0 {
        tracing::info!(
            "`{stage}` follows the producer's clock on the bus: --start and --speed apply to producers"
        );
    }
    let given = twin.network_given()?;
    let Some((network, clock)) = topic::wait_for(bus, topics, stage, stop).await? else {
        return Ok(None);
    };
    if let Some(given) = &given {
        topic::agree(given, &network, topics).map_err(|e| {
            anyhow::anyhow!(
                "{e}. Every stage must share the producer's network: start `{stage}` without \
                 --seed/--vehicles/--lat/--lon (it takes the network from the bus), or give the \
                 producer's settings"
            )
        })?;
    }
    tracing::info!(network = %network.describe(), "Network read from the bus");
    Ok(Some((Arc::new(network), clock)))
}

/// The consumer group `streamcity process` reads Kafka in.
#[derive(Debug, Clone)]
pub struct ProcessGroup {
    /// Its name, without the topics' prefix.
    pub name: String,
    /// Read every record kept, in a new group named after this one.
    pub from_beginning: bool,
}

impl ProcessGroup {
    /// The group to join: the one named, or with --from-beginning a new one named after
    /// it and the time (said on standard error). A checkpoint already on disk resumes
    /// where it was taken, which reading from the beginning would contradict.
    fn resolve(self, checkpoint: Option<&std::path::Path>) -> anyhow::Result<String> {
        anyhow::ensure!(!self.name.trim().is_empty(), "--group must not be empty");
        if !self.from_beginning {
            return Ok(self.name);
        }
        if let Some(path) = checkpoint.filter(|p| p.exists()) {
            anyhow::bail!(
                "--from-beginning reads everything afresh, but the checkpoint {} would resume an earlier run: remove it or give another --checkpoint",
                path.display()
            );
        }
        let name = format!("{}-{}", self.name, streamcity_core::clock::wall_clock_ms());
        eprintln!("Reading from the beginning in the new consumer group {name}");
        Ok(name)
    }
}

/// `streamcity process`: the processor alone on Kafka, in the consumer group that
/// splits the partitions among instances, with its own /metrics, /healthz, /readyz.
pub async fn process(
    twin: &TwinArgs,
    listen: &ListenArgs,
    kafka: &KafkaArgs,
    group: ProcessGroup,
    emit_window_counts: bool,
    stop: CancellationToken,
) -> anyhow::Result<()> {
    let group = group.resolve(twin.checkpoint.as_deref())?;
    let bus = connect(kafka, "process").await?;
    let topics = kafka.topics();
    bus.ensure_topics(&topics).await?;
    let mut config = twin.processor()?;
    config.surge.emit_window_counts |= emit_window_counts;
    let stats = Arc::new(ProcessorStats::default());
    let running = Arc::new(AtomicBool::new(false));
    let listener = observe::bind(listen.host, listen.port, 9102, "process").await?;
    let observer = tokio::spawn(observe::serve(
        listener,
        {
            let stats = Arc::clone(&stats);
            move || observe::processor_metrics(&stats)
        },
        {
            let (running, stats) = (Arc::clone(&running), Arc::clone(&stats));
            move || match (running.load(Ordering::Relaxed), stats.problem()) {
                (false, _) => Err("waiting for the network on the bus".to_owned()),
                (true, Some(problem)) => Err(problem),
                (true, None) => Ok("processing".to_owned()),
            }
        },
        stop.clone(),
    ));
    // Joins the consumer group first, so that instances started together settle on a
    // split of the partitions while they wait for the network. After a long wait it
    // joins afresh: a member that has not read for minutes has been dropped.
    let waiting = std::time::Instant::now();
    let mut sub = streamcity_processor::runner::subscribe(&bus, &topics, &group).await?;
    let Some((network, clock)) = network_from_bus(&bus, &topics, twin, "process", &stop).await?
    else {
        return Ok(());
    };
    if waiting.elapsed() > Duration::from_secs(60) {
        drop(sub);
        sub = streamcity_processor::runner::subscribe(&bus, &topics, &group).await?;
    }
    let options = RunOptions {
        topics,
        config: streamcity::processor_config(config, &network),
        network,
        speed: clock.map_or(1.0, |c| c.speed),
        checkpoint: twin.checkpoint.clone(),
        checkpoint_every: Duration::from_secs(twin.checkpoint_interval),
        group,
    };
    let mut task = tokio::spawn(streamcity_processor::runner::run(
        bus,
        sub,
        options,
        Arc::new(SystemClock),
        stop.clone(),
        Arc::clone(&stats),
    ));
    running.store(true, Ordering::Relaxed);
    eprintln!("Processing; Ctrl+C stops after committing what was processed");
    let mut progress = tokio::time::interval(Duration::from_secs(10));
    progress.tick().await;
    let counts = loop {
        tokio::select! {
            done = &mut task => break done??,
            _ = progress.tick() => {
                let c = stats.counts();
                eprintln!(
                    "Processed {} records, published {}, alerts raised {}, dead letters {}",
                    c.records_in, c.records_out, c.alerts_raised, c.dead_letters,
                );
            }
        }
    };
    stop.cancel();
    let _ = observer.await;
    eprintln!(
        "Done: processed {} records, published {}, alerts raised {}, late {}, dead letters {}",
        counts.records_in,
        counts.records_out,
        counts.alerts_raised,
        counts.late,
        counts.dead_letters
    );
    Ok(())
}

/// `streamcity serve`: the dashboard alone, building its picture from Kafka.
pub async fn serve(
    twin: &TwinArgs,
    listen: &ListenArgs,
    kafka: &KafkaArgs,
    stop: CancellationToken,
) -> anyhow::Result<()> {
    let bus = connect(kafka, "serve").await?;
    let topics = kafka.topics();
    bus.ensure_topics(&topics).await?;
    let Some((network, _)) = network_from_bus(&bus, &topics, twin, "serve", &stop).await? else {
        return Ok(());
    };
    let live = Arc::new(
        Live::new(network, topics, listen.live())
            .with_allowed_origins(listen.origins()?)
            .with_access(listen.access()?),
    );
    let (actions, to_publish) = tokio::sync::mpsc::channel(64);
    live.take_actions_through(actions);
    let publisher = tokio::spawn(streamcity_dashboard::live::publish_actions(
        bus.clone(),
        to_publish,
        stop.clone(),
    ));
    let sub = streamcity_dashboard::live::subscribe_replaying(&bus, &live, &instance()).await?;
    let addr = SocketAddr::new(listen.host, listen.dashboard_port());
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))?;
    let port = listener.local_addr()?.port();
    say!(
        "StreamCity dashboard: open http://localhost:{port}  (live updates: ws://localhost:{port}/ws; Ctrl+C to stop)"
    );
    let ingest = tokio::spawn(streamcity_dashboard::live::run_ingest(
        sub,
        Arc::clone(&live),
        stop.clone(),
    ));
    streamcity_dashboard::serve(listener, live, listen.http_limits(), stop.clone()).await?;
    stop.cancel();
    ingest.await??;
    publisher.await?;
    Ok(())
}

/// `streamcity notify`: POSTs each alert raised and cleared to the webhook, signed, at
/// least once (its consumer group's offsets say what was sent).
pub async fn notify(
    args: &NotifyArgs,
    listen: &ListenArgs,
    kafka: &KafkaArgs,
    stop: CancellationToken,
) -> anyhow::Result<()> {
    let Some(config) = args.config()? else {
        anyhow::bail!("notify needs --webhook URL (or STREAMCITY_WEBHOOK)");
    };
    let bus = connect(kafka, "notify").await?;
    let topics = kafka.topics();
    bus.ensure_topics(&topics).await?;
    let stats = Arc::new(streamcity::notify::NotifyStats::default());
    let listener = observe::bind(listen.host, listen.port, 9103, "notify").await?;
    let observer = tokio::spawn(observe::serve(
        listener,
        {
            let stats = Arc::clone(&stats);
            move || stats.metrics()
        },
        || Ok("notifying".to_owned()),
        stop.clone(),
    ));
    let spec = Subscribe::new(topics.group(streamcity::notify::GROUP), &[&topics.alerts])
        .from(StartFrom::Earliest);
    eprintln!(
        "Notifying {} of alerts raised and cleared; Ctrl+C stops",
        config.webhook
    );
    streamcity::notify::run(&bus, spec, config, stats, stop.clone()).await?;
    stop.cancel();
    observer.await??;
    Ok(())
}

/// `streamcity archive`: writes every topic to Parquet files; commits offsets only once
/// the files are on disk (its consumer group's offsets say what is archived).
pub async fn archive(
    config: streamcity_archive::ArchiveConfig,
    listen: &ListenArgs,
    kafka: &KafkaArgs,
    stop: CancellationToken,
) -> anyhow::Result<()> {
    let bus = connect(kafka, "archive").await?;
    let topics = kafka.topics();
    bus.ensure_topics(&topics).await?;
    let stats = Arc::new(streamcity_archive::ArchiveStats::default());
    let listener = observe::bind(listen.host, listen.port, 9104, "archive").await?;
    let observer = tokio::spawn(observe::serve(
        listener,
        {
            let stats = Arc::clone(&stats);
            move || streamcity::history::archive_metrics(&stats)
        },
        || Ok("archiving".to_owned()),
        stop.clone(),
    ));
    let spec = Subscribe::new(
        topics.group(streamcity_archive::archiver::GROUP),
        &topics.all(),
    )
    .from(StartFrom::Earliest);
    let sub = bus.subscribe(spec.clone()).await?;
    eprintln!(
        "Archiving every topic to {} (Parquet, by topic, date and hour); Ctrl+C stops",
        config.dir.display()
    );
    streamcity_archive::archiver::run(&bus, spec, sub, topics, config, stats, stop.clone()).await?;
    stop.cancel();
    observer.await??;
    Ok(())
}

/// `streamcity replay`: publishes archived records back onto Kafka in event-time
/// order, then exits.
pub async fn replay(
    config: streamcity_archive::ReplayConfig,
    listen: &ListenArgs,
    kafka: &KafkaArgs,
    stop: CancellationToken,
) -> anyhow::Result<()> {
    let bus = connect(kafka, "replay").await?;
    let topics = kafka.topics();
    bus.ensure_topics(&topics).await?;
    let stats = Arc::new(streamcity_archive::ReplayStats::default());
    let listener = observe::bind(listen.host, listen.port, 9105, "replay").await?;
    let observer = tokio::spawn(observe::serve(
        listener,
        {
            let stats = Arc::clone(&stats);
            move || streamcity::history::replay_metrics(&stats)
        },
        || Ok("replaying".to_owned()),
        stop.clone(),
    ));
    eprintln!(
        "Replaying {} from {} onto {} at {}x",
        config.topics.join(", "),
        config.dir.display(),
        kafka.brokers.as_deref().unwrap_or_default(),
        config.speed
    );
    let published = streamcity_archive::replay::replay(&bus, &topics, &config, &stats, &stop).await;
    stop.cancel();
    observer.await??;
    let published = published?;
    eprintln!("Replayed {published} records");
    Ok(())
}

/// `streamcity tail`: prints a topic's records as JSON lines.
pub async fn tail(
    kafka: &KafkaArgs,
    topic: &str,
    count: Option<u64>,
    from_beginning: bool,
    key: Option<&str>,
    stop: CancellationToken,
) -> anyhow::Result<()> {
    let bus = connect(kafka, "tail").await?;
    let topic: Arc<str> = Arc::from(topic);
    let start = if from_beginning {
        StartFrom::Earliest
    } else {
        StartFrom::Latest
    };
    // A group of its own, committing nothing: tailing never moves anyone's offsets.
    let mut sub = bus
        .subscribe(Subscribe::new(format!("streamcity-tail-{}", instance()), &[&topic]).from(start))
        .await?;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let mut printed = 0u64;
    let mut batch = Vec::new();
    while count.is_none_or(|n| printed < n) {
        tokio::select! {
            got = sub.recv_many(&mut batch, 1000) => { got?; }
            _ = stop.cancelled() => break,
        }
        for d in batch.drain(..) {
            if key.is_some_and(|k| d.record.key != k.as_bytes())
                || count.is_some_and(|n| printed >= n)
            {
                continue;
            }
            if crate::jsonl::write_record(&mut out, &d.record).is_err() {
                return Ok(()); // the reader went away (| head)
            }
            printed += 1;
        }
        if out.flush().is_err() {
            return Ok(());
        }
    }
    Ok(())
}
