//! The StreamCity twin assembled: every stage in one process, on the in-memory bus or
//! on Kafka.
//!
//! [`Embedded::start`] is what `streamcity` with no subcommand runs (and what the
//! end-to-end tests start on an ephemeral port); [`Embedded::start_on`] runs the same
//! twin on another bus, as `streamcity --bus kafka` does. Every stage holds the same
//! [`Network`] by reference; on Kafka it is also published for stages running apart.

pub mod disruptions;
pub mod history;
pub mod mirror;
pub mod notify;
pub mod observe;
pub mod scenario_run;
pub mod schema_registry;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context as _;
use streamcity_core::bus::TopicStats;
use streamcity_core::{
    Bus, CancellationToken, MemoryBus, ScaledClock, SharedClock, SystemClock, Topics, clock,
};
use streamcity_dashboard::metrics::Sample;
use streamcity_dashboard::{AllowedOrigins, Live, LiveConfig, ServerLimits};
use streamcity_network::{Network, SyntheticConfig, synthetic};
use streamcity_processor::ProcessorConfig;
use streamcity_processor::runner::{ProcessorStats, RunOptions};
use streamcity_producers::runner::{Ending, Limits, ProducerStats};
use streamcity_producers::{SimConfig, Simulation};
use tokio::net::TcpListener;
use tokio::task::JoinSet;

/// Everything that configures an embedded twin.
#[derive(Debug, Clone)]
pub struct EmbeddedConfig {
    /// Where the dashboard listens (port 0 picks a free one).
    pub addr: SocketAddr,
    /// The city to build (when no GTFS feed is given).
    pub network: SyntheticConfig,
    /// An agency's GTFS feed to run instead of the built-in city.
    pub gtfs: Option<PathBuf>,
    /// The network, built already (the command line reads a feed once); then `network`
    /// and `gtfs` only describe it.
    pub built: Option<Arc<Network>>,
    /// The simulation.
    pub sim: SimConfig,
    /// Simulated seconds per real second.
    pub speed: f64,
    /// The processor.
    pub processor: ProcessorConfig,
    /// The dashboard.
    pub live: LiveConfig,
    /// The pages allowed to open the dashboard's `/ws` besides its own.
    pub origins: AllowedOrigins,
    /// Who may read and write (the API token).
    pub access: streamcity_dashboard::auth::Access,
    /// The dashboard's HTTP limits.
    pub http: ServerLimits,
    /// Topic names.
    pub topics: Topics,
    /// When the producers stop by themselves (`--max`, `--duration`); the twin then
    /// shuts down.
    pub limits: Limits,
    /// Where the processor checkpoints its state (and restores it from on start, the
    /// simulation resuming where the processor was).
    pub checkpoint: Option<PathBuf>,
    /// How often the processor checkpoints.
    pub checkpoint_every: std::time::Duration,
    /// Mirror mode: the vehicles of these GTFS-realtime feeds instead of simulated ones
    /// (the simulation then runs riders and incidents only: give it
    /// `vehicles.emit = false`).
    pub mirror: Option<mirror::MirrorConfig>,
    /// Webhook notifications of the alerts raised and cleared.
    pub notify: Option<notify::NotifyConfig>,
    /// Every topic archived to Parquet.
    pub archive: Option<streamcity_archive::ArchiveConfig>,
}

impl Default for EmbeddedConfig {
    fn default() -> Self {
        EmbeddedConfig {
            addr: SocketAddr::from(([127, 0, 0, 1], 8080)),
            network: SyntheticConfig::default(),
            gtfs: None,
            built: None,
            sim: SimConfig {
                start_ms: clock::wall_clock_ms(),
                tick_ms: SimConfig::live_tick_ms(1.0),
                ..SimConfig::default()
            },
            speed: 1.0,
            processor: ProcessorConfig::default(),
            live: LiveConfig::default(),
            origins: AllowedOrigins::same_origin(),
            access: streamcity_dashboard::auth::Access::default(),
            http: ServerLimits::default(),
            topics: Topics::default(),
            limits: Limits::default(),
            checkpoint: None,
            checkpoint_every: std::time::Duration::from_secs(30),
            mirror: None,
            notify: None,
            archive: None,
        }
    }
}

/// A bus the whole twin can run on.
pub trait TwinBus: Bus {
    /// Records published so far, per topic.
    fn topic_stats(&self) -> Vec<TopicStats>;
}

impl TwinBus for MemoryBus {
    fn topic_stats(&self) -> Vec<TopicStats> {
        self.stats()
    }
}

impl TwinBus for streamcity_kafka::KafkaBus {
    fn topic_stats(&self) -> Vec<TopicStats> {
        let mut out: Vec<TopicStats> = self
            .published()
            .into_iter()
            .map(|(topic, published)| TopicStats {
                topic,
                published,
                backpressure_waits: 0,
                subscribers: 0,
            })
            .collect();
        out.sort_by(|a, b| a.topic.cmp(&b.topic));
        out
    }
}

/// A running twin: every stage in this process.
pub struct Embedded<B: TwinBus = MemoryBus> {
    /// Where the dashboard listens.
    pub addr: SocketAddr,
    /// The bus every stage runs on (tests publish to it directly).
    pub bus: B,
    /// The topic names in use.
    pub topics: Topics,
    /// The network every stage shares.
    pub network: Arc<Network>,
    /// The simulated clock.
    pub clock: SharedClock,
    /// The dashboard's live state.
    pub live: Arc<Live>,
    /// The producers' counters.
    pub producer: Arc<ProducerStats>,
    /// The processor's counters (this run's).
    pub processor: Arc<ProcessorStats>,
    stop: CancellationToken,
    tasks: JoinSet<anyhow::Result<()>>,
    producers: tokio::task::Id,
}

/// What a twin did, printed when it stops.
#[derive(Debug, Clone)]
pub struct Summary {
    /// Records published per topic.
    pub topics: Vec<TopicStats>,
    /// Alerts raised and published in this run.
    pub alerts_raised: u64,
    /// Records set aside as dead letters in this run.
    pub dead_letters: u64,
}

impl Embedded {
    /// Builds the city, binds the dashboard's port and starts every stage on a new
    /// in-memory bus: consumers first, so that nothing published is missed, then the
    /// simulators.
    pub async fn start(config: EmbeddedConfig) -> anyhow::Result<Embedded> {
        Embedded::start_on(config, MemoryBus::default()).await
    }
}

/// Where a twin started with `checkpoint` resumes its simulation: at `start_ms`, or
/// just after the latest event time the checkpointed processor saw when that is later,
/// so that the simulation's clock and the processor's state go on together. Refuses a
/// checkpoint of another network, or one that cannot be read, with what to do.
pub fn resume_at(checkpoint: &Path, network: &Network, start_ms: i64) -> anyhow::Result<i64> {
    let bytes = match std::fs::read(checkpoint) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(start_ms),
        Err(e) => return Err(e).with_context(|| format!("reading {}", checkpoint.display())),
    };
    let info = streamcity_processor::checkpoint::peek(&bytes).with_context(|| {
        format!(
            "{} cannot be resumed from; remove it to start afresh",
            checkpoint.display()
        )
    })?;
    if let Some(hash) = &info.network
        && hash != network.hash()
    {
        anyhow::bail!(
            "{} was taken with another network (hash {hash}) than this twin's {}; \
             start with the settings it was taken with, or remove it to start afresh",
            checkpoint.display(),
            network.describe()
        );
    }
    match info.event_time {
        Some(seen) if seen >= start_ms => {
            tracing::info!(
                checkpoint = %checkpoint.display(),
                resume_at = %format_hms(seen + 1),
                "Resuming the simulation where the checkpointed processor was"
            );
            Ok(seen + 1)
        }
        _ => Ok(start_ms),
    }
}

impl<B: TwinBus> Embedded<B> {
    /// [`Embedded::start`] on the given bus (whose topics exist already). On a bus that
    /// keeps records (Kafka), the network is published for stages running apart, and
    /// the twin refuses to start when the bus holds another one.
    pub async fn start_on(config: EmbeddedConfig, bus: B) -> anyhow::Result<Embedded<B>> {
        let network = match (&config.built, &config.gtfs) {
            (Some(built), _) => Arc::clone(built),
            (None, Some(feed)) => Arc::new(load_gtfs(feed)?),
            (None, None) => Arc::new(synthetic::generate(config.network)),
        };
        // The archiver subscribes first: on the memory bus it sees only what is
        // published after, and it keeps everything, the network included.
        let archive_spec = streamcity_core::Subscribe::new(
            config.topics.group(streamcity_archive::archiver::GROUP),
            &config.topics.all(),
        )
        .from(streamcity_core::StartFrom::Earliest);
        let archive_sub = match &config.archive {
            Some(_) => Some(bus.subscribe(archive_spec.clone()).await?),
            None => None,
        };
        streamcity_network::topic::offer(&bus, &config.topics, &network)
            .await
            .context(
                "this twin's network cannot go on the bus; use another --topic-prefix to run another city on it",
            )?;
        let mut sim_config = config.sim.clone();
        if config.mirror.is_some() {
            // The vehicles are the mirrored feeds' own.
            sim_config.vehicles.emit = false;
        }
        if let Some(path) = &config.checkpoint {
            sim_config.start_ms = resume_at(path, &network, sim_config.start_ms)?;
        }
        let listener = TcpListener::bind(config.addr)
            .await
            .with_context(|| format!("cannot listen on {}", config.addr))?;
        let addr = listener.local_addr()?;
        let clock = clock_for(sim_config.start_ms, config.speed);
        let topics = config.topics.clone();
        let stop = CancellationToken::new();
        let mut tasks = JoinSet::new();

        let live = Arc::new(
            Live::new(Arc::clone(&network), topics.clone(), config.live)
                .with_allowed_origins(config.origins.clone())
                .with_access(config.access.clone()),
        );
        // Operators' actions go out on the bus and come back through the ingest.
        let (actions, to_publish) = tokio::sync::mpsc::channel(64);
        live.take_actions_through(actions);
        let publisher =
            streamcity_dashboard::live::publish_actions(bus.clone(), to_publish, stop.clone());
        tasks.spawn(async move {
            publisher.await;
            Ok(())
        });
        // A dashboard of its own that replays what the bus keeps (nothing, on the
        // memory bus), so twins sharing a Kafka cluster each see everything.
        let instance = format!("{}-{}", std::process::id(), clock::wall_clock_ms());
        let dash_sub =
            streamcity_dashboard::live::subscribe_replaying(&bus, &live, &instance).await?;
        tasks.spawn(ingest(dash_sub, Arc::clone(&live), stop.clone()));
        tasks.spawn(serve(
            listener,
            Arc::clone(&live),
            config.http,
            stop.clone(),
        ));

        let processor = Arc::new(ProcessorStats::default());
        let group = streamcity_processor::runner::GROUP;
        let proc_sub = streamcity_processor::runner::subscribe(&bus, &topics, group).await?;
        let options = RunOptions {
            topics: topics.clone(),
            config: processor_config(config.processor.clone(), &network),
            network: Arc::clone(&network),
            speed: config.speed,
            checkpoint: config.checkpoint.clone(),
            checkpoint_every: config.checkpoint_every,
            group: group.to_owned(),
        };
        let run = streamcity_processor::runner::run(
            bus.clone(),
            proc_sub,
            options,
            Arc::new(SystemClock),
            stop.clone(),
            Arc::clone(&processor),
        );
        tasks.spawn(async move {
            run.await.context("processor")?;
            Ok(())
        });

        let producer = Arc::new(ProducerStats::default());
        let sim = Simulation::new(Arc::clone(&network), sim_config);
        let run = streamcity_producers::runner::run(
            sim,
            bus.clone(),
            topics.clone(),
            Arc::clone(&clock),
            config.limits,
            true,
            stop.clone(),
            Arc::clone(&producer),
        );
        let producers = tasks
            .spawn(async move {
                let ending = run.await.context("producers")?;
                if ending != Ending::Stopped {
                    tracing::info!(?ending, "Producers reached their limit");
                }
                Ok(())
            })
            .id();
        if let Some(mirror) = config.mirror.clone() {
            let stats = Arc::new(mirror::MirrorStats::default());
            live.metrics.add_source({
                let stats = Arc::clone(&stats);
                move || mirror::mirror_metrics(&stats)
            });
            let run = mirror::run(
                mirror,
                Arc::clone(&network),
                bus.clone(),
                topics.clone(),
                stats,
                stop.clone(),
            );
            tasks.spawn(async move { run.await.context("mirror") });
        }

        if let Some(notify) = config.notify.clone() {
            let stats = Arc::new(notify::NotifyStats::default());
            live.metrics.add_source({
                let stats = Arc::clone(&stats);
                move || stats.metrics()
            });
            let spec =
                streamcity_core::Subscribe::new(topics.group(notify::GROUP), &[&topics.alerts])
                    .from(streamcity_core::StartFrom::Earliest);
            let run = {
                let (bus, stop) = (bus.clone(), stop.clone());
                async move { notify::run(&bus, spec, notify, stats, stop).await }
            };
            tasks.spawn(async move { run.await.context("notify") });
        }

        if let (Some(archive), Some(sub)) = (config.archive.clone(), archive_sub) {
            let stats = Arc::new(streamcity_archive::ArchiveStats::default());
            live.metrics.add_source({
                let stats = Arc::clone(&stats);
                move || history::archive_metrics(&stats)
            });
            let run = {
                let (bus, topics, stop) = (bus.clone(), topics.clone(), stop.clone());
                async move {
                    streamcity_archive::archiver::run(
                        &bus,
                        archive_spec,
                        sub,
                        topics,
                        archive,
                        stats,
                        stop,
                    )
                    .await
                }
            };
            tasks.spawn(async move { run.await.context("archive") });
        }

        live.metrics.add_source({
            let bus = bus.clone();
            let (producer, processor) = (Arc::clone(&producer), Arc::clone(&processor));
            move || {
                let mut out = bus_metrics(&bus);
                out.extend(observe::producer_metrics(&producer));
                out.extend(observe::processor_metrics(&processor));
                out
            }
        });

        Ok(Embedded {
            addr,
            bus,
            topics,
            network,
            clock,
            live,
            producer,
            processor,
            stop,
            tasks,
            producers,
        })
    }

    /// Waits until a stage fails (an error), the producers reach their limits (Ok), or
    /// the twin is stopped (Ok). Call [`Embedded::shutdown`] afterwards.
    pub async fn wait(&mut self) -> anyhow::Result<()> {
        let Some(done) = self.tasks.join_next_with_id().await else {
            return Ok(());
        };
        let (id, result) = done.context("a stage panicked")?;
        result?;
        if id == self.producers || self.stop.is_cancelled() {
            return Ok(());
        }
        anyhow::bail!("a stage stopped unexpectedly")
    }

    /// Stops every stage, lets them flush what they have in flight, and returns what
    /// the twin did.
    pub async fn shutdown(mut self) -> anyhow::Result<Summary> {
        self.stop.cancel();
        let mut first_error = None;
        while let Some(done) = self.tasks.join_next().await {
            if let Err(e) = done.context("a stage panicked").and_then(|r| r) {
                first_error.get_or_insert(e);
            }
        }
        if let Some(e) = first_error {
            return Err(e);
        }
        Ok(self.summary())
    }

    /// Counters of this run so far.
    pub fn summary(&self) -> Summary {
        let counts = self.processor.counts();
        Summary {
            topics: self.bus.topic_stats(),
            alerts_raised: counts.alerts_raised,
            dead_letters: counts.dead_letters,
        }
    }
}

/// Loads an agency's GTFS feed, saying what it holds and what was left out.
pub fn load_gtfs(feed: &Path) -> anyhow::Result<Network> {
    let loaded = streamcity_network::gtfs::load(feed)
        .with_context(|| format!("loading the GTFS feed {}", feed.display()))?;
    tracing::info!(network = %loaded.network.describe(), "GTFS feed loaded");
    for (kind, (count, example)) in &loaded.report.warnings {
        tracing::warn!(count, example = %example, "GTFS feed: {kind}");
    }
    Ok(loaded.network)
}

/// Which day of `network`'s timetable the simulation starting at `start_ms` runs, for
/// people; an error when that day has no service (a run would show an empty city).
pub fn service_day(network: &Network, start_ms: i64) -> anyhow::Result<String> {
    use streamcity_network::Date;
    let day = network.local_date(start_ms);
    let weekday = |d: Date| format!("{:?}", d.weekday());
    let Some((first, last)) = network.service_range() else {
        anyhow::bail!("the feed's calendar has no day of service");
    };
    let Some(feed_day) = network.timetable_day(day) else {
        anyhow::bail!("the feed's calendar has no day of service");
    };
    let trips = network.trips_on(feed_day).len();
    anyhow::ensure!(
        trips > 0,
        "no trip of the feed runs on {} ({}): its calendar runs from {} to {}; choose another --date",
        feed_day.iso(),
        weekday(feed_day),
        first.iso(),
        last.iso()
    );
    Ok(if feed_day == day {
        format!(
            "Service day {} ({}): {trips} trips",
            day.iso(),
            weekday(day)
        )
    } else {
        format!(
            "Service day {} ({}) is outside the feed's calendar ({} to {}): running the timetable of {}, the nearest {} inside it ({trips} trips)",
            day.iso(),
            weekday(day),
            first.iso(),
            last.iso(),
            feed_day.iso(),
            weekday(feed_day)
        )
    })
}

/// The processor's settings for `network`: bunching and gapping are judged against its
/// timetable's headways unless the settings name their own.
pub fn processor_config(mut config: ProcessorConfig, network: &Network) -> ProcessorConfig {
    if config.headway.route_headways_s.is_empty() {
        config.headway.route_headways_s = network.headways();
    }
    config
}

/// The clock a run uses: real time when it starts now at speed 1, otherwise simulated
/// time from `start_ms` at `speed`.
pub fn clock_for(start_ms: i64, speed: f64) -> SharedClock {
    if speed == 1.0 && (start_ms - clock::wall_clock_ms()).abs() < 1_000 {
        Arc::new(SystemClock)
    } else {
        Arc::new(ScaledClock::new(start_ms, speed))
    }
}

/// `HH:MM:SS` of a time, UTC.
pub fn format_hms(ms: i64) -> String {
    let s = (ms / 1000).rem_euclid(86_400);
    format!("{:02}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
}

/// Records published per topic, and waits for slow subscribers, on `bus`.
fn bus_metrics<B: TwinBus>(bus: &B) -> Vec<Sample> {
    let mut out = Vec::new();
    for t in bus.topic_stats() {
        let topic = [("topic", &*t.topic)];
        out.push(Sample::counter(
            "streamcity_bus_records",
            "Records published to the bus, by topic",
            &topic,
            t.published,
        ));
        out.push(Sample::counter(
            "streamcity_bus_backpressure_waits",
            "Times a publisher waited for a slow subscriber, by topic",
            &topic,
            t.backpressure_waits,
        ));
    }
    out
}

async fn ingest(
    sub: impl streamcity_core::Subscription,
    live: Arc<Live>,
    stop: CancellationToken,
) -> anyhow::Result<()> {
    streamcity_dashboard::live::run_ingest(sub, live, stop)
        .await
        .context("dashboard ingest")
}

async fn serve(
    listener: TcpListener,
    live: Arc<Live>,
    limits: ServerLimits,
    stop: CancellationToken,
) -> anyhow::Result<()> {
    streamcity_dashboard::serve(listener, live, limits, stop)
        .await
        .context("dashboard server")
}
