//! The command line: every option with its environment variable, and its conversion
//! into the stages' settings. Bad values are refused here with a clear message.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context as _, bail, ensure};
use clap::{Parser, Subcommand, ValueEnum};
use streamcity_core::clock::wall_clock_ms;
use streamcity_core::geo::LatLon;
use streamcity_core::{Id, TimestampMs};
use streamcity_network::SyntheticConfig;
use streamcity_processor::ProcessorConfig;
use streamcity_producers::arrivals::{Burst, Gaps};
use streamcity_producers::runner::Limits;
use streamcity_producers::sim::{CrowdEvent, DEFAULT_TAP_RATE, SimConfig};

/// StreamCity: a real-time digital twin of a city's public transport.
///
/// With no subcommand, runs the simulators, the processor and the dashboard in one
/// process on the embedded bus, and serves the live map at http://HOST:PORT.
#[derive(Debug, Parser)]
#[command(name = "streamcity", version, about, long_about = None)]
pub struct Cli {
    /// What to run; nothing runs the whole twin.
    #[command(subcommand)]
    pub command: Option<Command>,

    /// Where the dashboard listens.
    #[command(flatten)]
    pub listen: ListenArgs,

    /// The city and its simulation.
    #[command(flatten)]
    pub twin: TwinArgs,

    /// Producer pacing and limits.
    #[command(flatten)]
    pub pace: PaceArgs,

    /// Where the bus is.
    #[command(flatten)]
    pub kafka: KafkaArgs,

    /// Webhook notifications.
    #[command(flatten)]
    pub notify: NotifyArgs,

    /// Archiving to Parquet.
    #[command(flatten)]
    pub archive: ArchiveArgs,
}

/// Archiving every topic to Parquet (`archive`, or beside the all-in-one twin).
#[derive(Debug, Clone, clap::Args)]
pub struct ArchiveArgs {
    /// Also archive every topic to Parquet files under this folder (the all-in-one
    /// twin; `streamcity archive --dir` does it on Kafka).
    #[arg(
        long = "archive",
        value_name = "DIR",
        env = "STREAMCITY_ARCHIVE",
        global = true
    )]
    pub archive: Option<PathBuf>,

    /// Write the records gathered into files at least this often, minutes.
    #[arg(long, default_value_t = 5.0, value_parser = parse_roll_minutes, global = true)]
    pub roll_minutes: f64,

    /// Write the records gathered into files once a partition has this many.
    #[arg(long, default_value_t = 100_000, value_parser = clap::value_parser!(u64).range(1..=10_000_000), global = true)]
    pub roll_records: u64,
}

impl ArchiveArgs {
    /// The archiver's settings for `dir`, on a bus that keeps records or not.
    pub fn config(&self, dir: PathBuf, keeps_records: bool) -> streamcity_archive::ArchiveConfig {
        let mut config = streamcity_archive::ArchiveConfig::new(dir, keeps_records);
        config.roll_every = Duration::from_secs_f64(self.roll_minutes * 60.0);
        config.roll_records = usize::try_from(self.roll_records).unwrap_or(usize::MAX);
        config
    }
}

fn parse_roll_minutes(s: &str) -> Result<f64, String> {
    let m: f64 = s
        .parse()
        .map_err(|_| format!("{s} is not a number of minutes"))?;
    if m.is_finite() && (0.01..=1440.0).contains(&m) {
        Ok(m)
    } else {
        Err("a roll lasts from 0.01 to 1440 minutes".into())
    }
}

fn parse_replay_speed(s: &str) -> Result<f64, String> {
    let x: f64 = s.parse().map_err(|_| format!("{s} is not a speed"))?;
    if x.is_finite() && (0.0..=1_000_000.0).contains(&x) {
        Ok(x)
    } else {
        Err("the speed is from 0 (as fast as possible) to 1000000".into())
    }
}

/// A moment: ms since the epoch, or UTC as `YYYY-MM-DDTHH:MM[:SS][Z]`.
pub fn parse_moment(s: &str) -> Result<TimestampMs, String> {
    let s = s.trim();
    if let Ok(ms) = s.parse::<TimestampMs>() {
        return Ok(ms);
    }
    let bad = || format!("{s}: give ms since the epoch or UTC as 2026-12-01T07:00:00Z");
    let s = s.strip_suffix('Z').unwrap_or(s);
    let (date, time) = s.split_once(['T', ' ']).ok_or_else(bad)?;
    let mut d = date.splitn(3, '-').map(str::parse::<u32>);
    let (Some(Ok(y)), Some(Ok(m)), Some(Ok(day))) = (d.next(), d.next(), d.next()) else {
        return Err(bad());
    };
    let date = streamcity_network::Date::from_ymd(y, m, day);
    if !date.is_valid() {
        return Err(bad());
    }
    let mut t = time.splitn(3, ':').map(str::parse::<u32>);
    let (Some(Ok(h)), Some(Ok(min))) = (t.next(), t.next()) else {
        return Err(bad());
    };
    let sec = match t.next() {
        None => 0,
        Some(Ok(sec)) => sec,
        Some(Err(_)) => return Err(bad()),
    };
    if h > 23 || min > 59 || sec > 59 {
        return Err(bad());
    }
    Ok(date.days() * 86_400_000 + i64::from(h * 3600 + min * 60 + sec) * 1000)
}

/// Webhook notifications of alerts raised and cleared (`notify`, or beside the
/// all-in-one twin).
#[derive(Debug, Clone, clap::Args)]
pub struct NotifyArgs {
    /// POST each alert raised and cleared to this URL as JSON, signed (see
    /// --webhook-secret). `notify` needs it; the twin sends them too when given.
    #[arg(long, env = "STREAMCITY_WEBHOOK", global = true)]
    pub webhook: Option<String>,

    /// The shared secret each body is signed with (HMAC-SHA256, header
    /// `X-StreamCity-Signature: sha256=<hex>`). Needed with --webhook.
    #[arg(
        long,
        env = "STREAMCITY_WEBHOOK_SECRET",
        hide_env_values = true,
        global = true
    )]
    pub webhook_secret: Option<String>,

    /// Only these kinds of alert (comma-separated: surge, delay, breakdown, bunching,
    /// gapping, crowding, incident); all by default.
    #[arg(
        long,
        env = "STREAMCITY_NOTIFY_KINDS",
        value_delimiter = ',',
        global = true
    )]
    pub kinds: Vec<String>,

    /// Only alerts at least this severe: low, moderate, high or critical.
    #[arg(
        long,
        env = "STREAMCITY_NOTIFY_MIN_SEVERITY",
        default_value = "low",
        global = true
    )]
    pub min_severity: String,

    /// The longest wait between two attempts to deliver, seconds (from 1 s, doubling).
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=3600), global = true)]
    pub webhook_max_backoff: u64,

    /// How long a notification is retried before it is given up (a dead letter),
    /// seconds.
    #[arg(long, default_value_t = 3600, value_parser = clap::value_parser!(u64).range(1..=604_800), global = true)]
    pub webhook_give_up_after: u64,

    /// A notifier starting afresh reads the alerts topic from its beginning: alerts more
    /// than this many minutes (event time) older than the newest alert there are not
    /// sent.
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..=100_000), global = true)]
    pub webhook_max_age_minutes: u64,
}

impl NotifyArgs {
    /// The notifier's settings, when a webhook is given; or what is wrong with them.
    pub fn config(&self) -> anyhow::Result<Option<streamcity::notify::NotifyConfig>> {
        let Some(url) = &self.webhook else {
            return Ok(None);
        };
        let webhook = reqwest::Url::parse(url).with_context(|| format!("--webhook {url}"))?;
        ensure!(
            matches!(webhook.scheme(), "http" | "https"),
            "--webhook {url}: an http or https URL"
        );
        let secret = match self.webhook_secret.as_deref() {
            Some(s) if s.len() >= 16 => s.to_owned(),
            Some(_) => bail!("--webhook-secret: use at least 16 characters"),
            None => bail!(
                "--webhook needs --webhook-secret (or STREAMCITY_WEBHOOK_SECRET): receivers check each body's signature with it"
            ),
        };
        let mut config = streamcity::notify::NotifyConfig::new(webhook, secret);
        for kind in &self.kinds {
            let parsed = serde_json::from_value(serde_json::Value::String(kind.trim().to_owned()))
                .map_err(|_| {
                    anyhow::anyhow!(
                        "--kinds: unknown kind {kind:?}; one of surge, delay, breakdown, bunching, gapping, crowding, incident"
                    )
                })?;
            config.kinds.push(parsed);
        }
        config.min_severity = serde_json::from_value(serde_json::Value::String(
            self.min_severity.trim().to_owned(),
        ))
        .map_err(|_| {
            anyhow::anyhow!(
                "--min-severity: {:?} is not one of low, moderate, high, critical",
                self.min_severity
            )
        })?;
        config.max_backoff = Duration::from_secs(self.webhook_max_backoff);
        config.give_up_after = Duration::from_secs(self.webhook_give_up_after);
        config.max_age = Duration::from_secs(self.webhook_max_age_minutes * 60);
        Ok(Some(config))
    }
}

/// The bus: the embedded one, or Kafka.
#[derive(Debug, Clone, clap::Args)]
pub struct KafkaArgs {
    /// The bus: `memory` (one process, no infrastructure) or `kafka`. Defaults to
    /// kafka when brokers are given, memory otherwise. `produce` without Kafka writes
    /// JSON lines to stdout; `process`, `serve` and `tail` need Kafka.
    #[arg(long, env = "STREAMCITY_BUS", value_enum, global = true)]
    pub bus: Option<BusKind>,

    /// Kafka bootstrap servers, host:port[,host:port...]. Given, the stages run on Kafka.
    #[arg(long, env = "KAFKA_BOOTSTRAP_SERVERS", global = true)]
    pub brokers: Option<String>,

    /// Kafka API key: with the secret, connects with SASL_SSL and PLAIN (Confluent Cloud).
    #[arg(
        long,
        env = "KAFKA_API_KEY",
        global = true,
        hide_env_values = true,
        requires = "kafka_api_secret"
    )]
    pub kafka_api_key: Option<String>,

    /// Kafka API secret.
    #[arg(
        long,
        env = "KAFKA_API_SECRET",
        global = true,
        hide_env_values = true,
        requires = "kafka_api_key"
    )]
    pub kafka_api_secret: Option<String>,

    /// A librdkafka property, `key=value`, passed through as it is. Repeatable.
    #[arg(long = "kafka-opt", env = "STREAMCITY_KAFKA_OPTS", value_delimiter = ',', value_parser = parse_property, hide_env_values = true, global = true)]
    pub kafka_opts: Vec<(String, String)>,

    /// Replication factor of the topics created on Kafka [default: the brokers'
    /// default.replication.factor; Confluent Cloud wants 3].
    #[arg(long, env = "STREAMCITY_REPLICATION_FACTOR",
          value_parser = clap::value_parser!(i16).range(1..=32), global = true)]
    pub replication_factor: Option<i16>,

    /// A topic setting for the topics created on Kafka, `key=value` (e.g.
    /// `retention.ms=86400000`). Repeatable.
    #[arg(long = "topic-config", env = "STREAMCITY_TOPIC_CONFIG", value_delimiter = ',', value_parser = parse_property, global = true)]
    pub topic_config: Vec<(String, String)>,

    /// Partitions of the topics created on Kafka.
    #[arg(long, env = "STREAMCITY_PARTITIONS", default_value_t = 6,
          value_parser = clap::value_parser!(i32).range(1..=1000), global = true)]
    pub partitions: i32,

    /// Prefix of every topic name, so several twins can share a cluster.
    #[arg(
        long,
        env = "STREAMCITY_TOPIC_PREFIX",
        default_value = "",
        global = true
    )]
    pub topic_prefix: String,
}

fn parse_property(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_owned(), v.trim().to_owned())),
        _ => Err(format!("expected key=value, got `{s}`")),
    }
}

/// Which bus the stages run on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum BusKind {
    /// In this process: no infrastructure, nothing kept.
    Memory,
    /// Kafka, at `--brokers`.
    Kafka,
}

impl KafkaArgs {
    /// The bus chosen: `--bus`, or Kafka when brokers are given.
    pub fn bus_kind(&self) -> BusKind {
        self.bus.unwrap_or(if self.config().is_some() {
            BusKind::Kafka
        } else {
            BusKind::Memory
        })
    }

    /// The Kafka settings, when brokers are given.
    pub fn config(&self) -> Option<streamcity_kafka::KafkaConfig> {
        let brokers = self.brokers.as_ref().filter(|b| !b.trim().is_empty())?;
        let mut c = streamcity_kafka::KafkaConfig::new(brokers.trim());
        c.api_key = self.kafka_api_key.clone();
        c.api_secret = self.kafka_api_secret.clone();
        c.properties = self.kafka_opts.clone();
        c.partitions = self.partitions;
        c.replication = self.replication_factor;
        c.topic_config = self.topic_config.clone();
        Some(c)
    }

    /// The topic names, with the prefix.
    pub fn topics(&self) -> streamcity_core::Topics {
        streamcity_core::Topics::with_prefix(&self.topic_prefix)
    }
}

/// The stages that can run on their own.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run simulators only. Without Kafka, writes the records to standard output as
    /// JSON lines: {"topic", "key", "timestamp", "value"}.
    ///
    /// With --scenario, runs a scenario instead: a shipped one by name (civicsense,
    /// user-events, retail, ridematch) or a scenario file (docs/scenarios.md).
    Produce {
        /// Which of the twin's records to produce (not with --scenario).
        #[arg(value_enum, required_unless_present_any = ["scenario", "list_scenarios"])]
        producer: Option<ProducerKind>,
        /// A scenario to run: a shipped scenario's name or a scenario file's path.
        #[arg(long, env = "STREAMCITY_SCENARIO", conflicts_with = "producer")]
        scenario: Option<String>,
        /// Lists the shipped scenarios, with their topics and rates, and exits.
        #[arg(long)]
        list_scenarios: bool,
        /// Writes the records to this file as JSON lines instead of to Kafka or
        /// standard output (the same records Kafka would get).
        #[arg(long, short = 'o')]
        output: Option<PathBuf>,
        /// Renames a topic: --topic vehicle_locations=my.topic (repeatable; names as
        /// written without --topic-prefix).
        #[arg(long = "topic", value_parser = parse_rename)]
        renames: Vec<(String, String)>,
        /// A scenario's records are made as fast as they can be written instead of at
        /// their moments (their timestamps still follow the scenario's timing).
        #[arg(long)]
        no_pacing: bool,
        /// How a scenario's values are written: JSON, or Avro with schemas derived
        /// from the scenario (to Kafka with --schema-registry, in the Confluent wire
        /// format; or with --output DIR, one object container file per topic).
        #[arg(long, value_enum, default_value_t = ValueFormat::Json)]
        format: ValueFormat,
        /// A Confluent-compatible schema registry where each topic's schema is
        /// registered (subject `<topic>-value`) before the records carry its id.
        #[arg(long, env = "STREAMCITY_SCHEMA_REGISTRY")]
        schema_registry: Option<String>,
    },
    /// Run the processor only, reading and writing Kafka (needs --brokers); or, with
    /// --input, over files of records, in event time, to the end of the input.
    Process {
        /// Read the records from this file of JSON lines in the `produce` format
        /// ({"topic", "key", "timestamp", "value"}) instead of Kafka (`-`: standard
        /// input). Given several times, the files are merged by timestamp. At the end
        /// of the input every window closes and the run ends; the same input always
        /// gives the same output, byte for byte.
        #[arg(long = "input", value_name = "FILE")]
        inputs: Vec<String>,
        /// With --input: where every output record goes, as JSON lines in the same
        /// format (`-`: standard output, the default unless --expect is given).
        #[arg(long, value_name = "FILE", requires = "inputs")]
        output: Option<String>,
        /// With --input: compare the output with this file of JSON lines (the topics
        /// it has, in order; `timestamp` when it gives one) and fail with a readable
        /// diff when they differ.
        #[arg(long, value_name = "FILE", requires = "inputs")]
        expect: Option<PathBuf>,
        /// Publish every closed window's count of taps per stop on `stop_tap_counts`
        /// (the table behind the seed's surge query), not only the surges they raise.
        #[arg(long)]
        emit_window_counts: bool,
        /// The consumer group on Kafka, behind the topic prefix (default
        /// streamcity-processor). Instances in one group split the partitions.
        #[arg(long, conflicts_with = "inputs")]
        group: Option<String>,
        /// On Kafka: read every record kept from the start, in a new consumer group
        /// named after --group and the time (printed), leaving the group's own
        /// committed offsets as they are.
        #[arg(long, conflicts_with = "inputs")]
        from_beginning: bool,
    },
    /// Run the dashboard only, reading Kafka (needs --brokers).
    Serve,
    /// POST each alert raised and cleared to --webhook, signed, at least once (needs
    /// --brokers).
    Notify,
    /// Write every topic to Parquet files under --dir, partitioned by topic, date and
    /// hour; offsets are committed only once a file is on disk (needs --brokers).
    Archive {
        /// The archive's root folder.
        #[arg(long, env = "STREAMCITY_ARCHIVE_DIR")]
        dir: PathBuf,
    },
    /// Publish archived records back onto the bus in event-time order, so that a
    /// processor and the map live through the past again.
    Replay {
        /// The archive's root folder (as `archive --dir` wrote it).
        #[arg(long)]
        dir: PathBuf,
        /// The first moment replayed: ms since the epoch, or UTC as
        /// 2026-12-01T07:00[:SS][Z]. Default: the archive's beginning.
        #[arg(long, value_parser = parse_moment)]
        from: Option<TimestampMs>,
        /// The moment the replay ends (not included), as --from. Default: the end.
        #[arg(long, value_parser = parse_moment)]
        to: Option<TimestampMs>,
        /// How many times faster than they were made records are published: 1 is
        /// real time, 60 an hour a minute, 0 as fast as the bus takes them.
        #[arg(long, default_value_t = 1.0, value_parser = parse_replay_speed)]
        speed: f64,
        /// The topics replayed, without prefix (comma-separated). Default: the inputs
        /// (vehicle_locations, rider_tapped_on, rider_tapped_off, traffic_incidents,
        /// city_incidents) and the network.
        #[arg(long, value_delimiter = ',')]
        topics: Vec<String>,
        /// The topic prefix the archived twin had (default: --topic-prefix).
        #[arg(long)]
        source_prefix: Option<String>,
    },
    /// Print the records of a Kafka topic as JSON lines (needs --brokers).
    Tail {
        /// The topic to read (its full name, prefix included).
        topic: String,
        /// Stop after this many records (default: follow until Ctrl+C).
        #[arg(short = 'n', long = "count")]
        count: Option<u64>,
        /// Start from the oldest record kept instead of new ones.
        #[arg(long)]
        from_beginning: bool,
        /// Only records with this key.
        #[arg(long)]
        key: Option<String>,
    },
    /// Work with GTFS feeds (the format transit agencies publish their networks in).
    Gtfs {
        /// What to do.
        #[command(subcommand)]
        action: GtfsAction,
    },
}

/// What `streamcity gtfs` does.
#[derive(Debug, Subcommand)]
pub enum GtfsAction {
    /// What a feed holds, what will run, and what was left out (with counts).
    Inspect {
        /// The feed: a .zip or a directory of GTFS files.
        feed: PathBuf,
    },
    /// Writes the built-in city (`--seed`, `--vehicles`, `--lat`, `--lon`) as a GTFS
    /// feed: a zip any GTFS tool reads, and `streamcity --gtfs` runs.
    Export {
        /// Where to write the zip.
        out: PathBuf,
    },
}

/// How values are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ValueFormat {
    /// JSON, one object per record.
    Json,
    /// Avro.
    Avro,
}

/// Which simulators' records a producer emits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ProducerKind {
    /// Vehicle positions (`vehicle_locations`).
    Vehicles,
    /// Rider tap-ons and tap-offs (`rider_tapped_on`, `rider_tapped_off`).
    Taps,
    /// Traffic incidents (`traffic_incidents`).
    Traffic,
    /// City incidents: emergencies and infrastructure (`city_incidents`).
    Incidents,
    /// Everything.
    All,
}

/// Where the dashboard listens.
#[derive(Debug, clap::Args)]
pub struct ListenArgs {
    /// Address the dashboard listens on (0.0.0.0 for every interface).
    #[arg(
        long,
        env = "STREAMCITY_HOST",
        default_value = "127.0.0.1",
        global = true
    )]
    pub host: IpAddr,

    /// Port the dashboard listens on [default: 8080]; for `produce` (on Kafka) and
    /// `process`, the port of their /metrics, /healthz and /readyz [default: 9101 and
    /// 9102, or any free port when that is taken].
    #[arg(long, env = "STREAMCITY_PORT", global = true)]
    pub port: Option<u16>,

    /// How often live updates go out to WebSocket clients, ms: a vehicle's reports
    /// within one interval are sent as one (its latest). Shorter is fresher and costs
    /// more messages.
    #[arg(long, env = "STREAMCITY_TICK_MS", default_value_t = 100,
          value_parser = clap::value_parser!(u64).range(5..=10_000), global = true)]
    pub tick_ms: u64,

    /// Milliseconds of wall time between the dashboard's samples for its charts and
    /// line view (GET /api/series, GET /api/lines/{id}); the last 360 are kept.
    #[arg(long, env = "STREAMCITY_SERIES_EVERY_MS", default_value_t = 10_000,
          value_parser = clap::value_parser!(u64).range(100..=600_000), global = true)]
    pub series_every_ms: u64,

    /// Live-map (WebSocket) clients served at once; one more is answered 503.
    #[arg(long, env = "STREAMCITY_MAX_CLIENTS", default_value_t = 10_000,
          value_parser = clap::value_parser!(u32).range(1..=1_000_000), global = true)]
    pub max_clients: u32,

    /// Open HTTP connections at once, per port (live-map clients not included); one
    /// more is answered 503. Each must send its request within 10 s.
    #[arg(long, env = "STREAMCITY_MAX_CONNECTIONS", default_value_t = 1024,
          value_parser = clap::value_parser!(u32).range(1..=1_000_000), global = true)]
    pub max_connections: u32,

    /// A web origin (`https://ops.example.org`) whose pages may open the live feed
    /// (`/ws`) besides the dashboard's own; `*` for any. Repeatable, or comma-separated.
    #[arg(
        long = "allowed-origin",
        env = "STREAMCITY_ALLOWED_ORIGINS",
        value_delimiter = ',',
        global = true
    )]
    pub allowed_origins: Vec<String>,

    /// The bearer token acknowledging and muting alerts need (`Authorization: Bearer
    /// <token>`; the page asks for it once). Without it, a random one is made up and
    /// printed at start.
    #[arg(
        long,
        env = "STREAMCITY_API_TOKEN",
        hide_env_values = true,
        global = true
    )]
    pub api_token: Option<String>,

    /// Reads need the token too: `/ws` (`?access_token=` from a browser), `/api` and
    /// `/gtfs-rt`. The page, `/metrics`, `/healthz` and `/readyz` stay open.
    #[arg(long, env = "STREAMCITY_REQUIRE_TOKEN_FOR_READS", global = true)]
    pub require_token_for_reads: bool,
}

/// The dashboard's port when none is given.
pub const DASHBOARD_PORT: u16 = 8080;

impl ListenArgs {
    /// The dashboard's port.
    pub fn dashboard_port(&self) -> u16 {
        self.port.unwrap_or(DASHBOARD_PORT)
    }

    /// The dashboard's settings from these flags.
    pub fn live(&self) -> streamcity_dashboard::LiveConfig {
        streamcity_dashboard::LiveConfig {
            tick: std::time::Duration::from_millis(self.tick_ms),
            max_clients: self.max_clients as usize,
            series_every: std::time::Duration::from_millis(self.series_every_ms),
            ..streamcity_dashboard::LiveConfig::default()
        }
    }

    /// The limits of every HTTP port.
    pub fn http_limits(&self) -> streamcity_dashboard::ServerLimits {
        streamcity_dashboard::ServerLimits {
            max_connections: self.max_connections as usize,
            ..streamcity_dashboard::ServerLimits::default()
        }
    }

    /// Who may read and write: the token given, or one made up and printed.
    pub fn access(&self) -> anyhow::Result<streamcity_dashboard::auth::Access> {
        let token = match self.api_token.as_deref().map(str::trim) {
            Some(t) if t.len() < 16 => {
                anyhow::bail!("--api-token: use at least 16 characters")
            }
            Some(t) => t.to_owned(),
            None => {
                let mut bytes = [0u8; 16];
                getrandom::fill(&mut bytes)
                    .map_err(|e| anyhow::anyhow!("cannot make up an API token: {e}"))?;
                let token: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
                // On stderr: the first line on stdout is where the dashboard listens.
                eprintln!(
                    "API token (acknowledging and muting alerts; choose one with --api-token): {token}"
                );
                token
            }
        };
        Ok(streamcity_dashboard::auth::Access::new(
            Some(token),
            self.require_token_for_reads,
        ))
    }

    /// The origins allowed to open `/ws`, or why one given is not an origin.
    pub fn origins(&self) -> anyhow::Result<streamcity_dashboard::AllowedOrigins> {
        streamcity_dashboard::AllowedOrigins::parse(&self.allowed_origins)
            .map_err(|e| anyhow::anyhow!("--allowed-origin: {e}"))
    }
}

/// The city and its simulation.
#[derive(Debug, clap::Args)]
pub struct TwinArgs {
    /// Seed of the city and the simulation: the same seed and settings give the same
    /// events [default: 42]. With `process` and `serve`, which take the network from the
    /// bus, a network option given is checked against the producer's.
    #[arg(long, env = "STREAMCITY_SEED", global = true)]
    pub seed: Option<u64>,

    /// An agency's GTFS feed (a .zip or a directory of GTFS files) to run instead of the
    /// built-in city: its stops, routes, shapes and timetable. `process` and `serve`
    /// take it from the bus.
    #[arg(long, env = "STREAMCITY_GTFS", global = true)]
    pub gtfs: Option<std::path::PathBuf>,

    /// Mirror mode: run the real vehicles of an agency's GTFS-realtime feed (with
    /// `--gtfs`, the same agency's static feed) instead of simulated ones. A URL
    /// (polled) or a file (read again when it changes); repeat it for a second feed
    /// (vehicle positions, and trip updates for their delays). Riders and incidents are
    /// still simulated (turn them off with `--tap-rate 0` and the incident intervals).
    /// The twin then runs on the real clock.
    #[arg(
        long = "gtfs-rt-in",
        env = "STREAMCITY_GTFS_RT_IN",
        value_delimiter = ',',
        global = true
    )]
    pub gtfs_rt_in: Vec<String>,

    /// Seconds between two fetches of a mirrored feed (doubling while it fails, up to
    /// five minutes).
    #[arg(long = "gtfs-rt-every", env = "STREAMCITY_GTFS_RT_EVERY", default_value_t = 15.0, value_parser = parse_poll_interval, global = true)]
    pub gtfs_rt_every: f64,

    /// Vehicles in service [default: 240].
    #[arg(long, env = "STREAMCITY_VEHICLES",
          value_parser = clap::value_parser!(u32).range(1..=100_000), global = true)]
    pub vehicles: Option<u32>,

    /// Simulated seconds per real second. `process` and `serve` follow the producer's
    /// clock instead.
    #[arg(long, env = "STREAMCITY_SPEED", default_value_t = 1.0, value_parser = parse_speed, allow_negative_numbers = true, global = true)]
    pub speed: f64,

    /// Simulated time to start at: a time of day `HH:MM` in the city's local time (a
    /// feed's `agency_timezone`; UTC for the built-in city), today or on `--date`, e.g.
    /// 17:00 for the evening peak; or milliseconds since the epoch. Default: now.
    /// `process` and `serve` follow the producer's clock instead.
    #[arg(long, env = "STREAMCITY_START", value_parser = parse_start, global = true)]
    pub start: Option<StartAt>,

    /// The simulated day, `YYYY-MM-DD` [default: today in the city]. With a GTFS feed
    /// whose calendar does not cover it, the nearest day of the same weekday inside the
    /// calendar gives the timetable.
    #[arg(long, env = "STREAMCITY_DATE", value_parser = parse_date, global = true)]
    pub date: Option<streamcity_network::Date>,

    /// Latitude of the city centre, degrees [default: 40.7128].
    #[arg(
        long,
        env = "STREAMCITY_LAT",
        allow_negative_numbers = true,
        global = true
    )]
    pub lat: Option<f64>,

    /// Longitude of the city centre, degrees [default: -74.006].
    #[arg(
        long,
        env = "STREAMCITY_LON",
        allow_negative_numbers = true,
        global = true
    )]
    pub lon: Option<f64>,

    /// Scripted crowd, `STOP@HH:MM[+MINUTES]xRIDERS`: riders pouring into a stop, e.g.
    /// `S0042@17:30+15x600` (a stadium letting out). Repeatable.
    #[arg(long, env = "STREAMCITY_CROWD", value_parser = parse_crowd, value_delimiter = ',', global = true)]
    pub crowd: Vec<CrowdSpec>,

    /// Processor settings file (TOML): every threshold and window, see
    /// processor/processor.example.toml. The flags below override it.
    #[arg(long, env = "STREAMCITY_PROCESSOR_CONFIG", global = true)]
    pub processor_config: Option<PathBuf>,

    /// Taps at one stop within the surge window above which a surge is raised at any stop
    /// [default: 150]; a stop also surges at 3 times its usual count for the hour.
    #[arg(long, env = "STREAMCITY_SURGE_THRESHOLD", global = true)]
    pub surge_threshold: Option<u64>,

    /// Seconds late, sustained for a minute, that raise a delay alert [default: 300].
    #[arg(long, env = "STREAMCITY_DELAY_THRESHOLD", value_parser = clap::value_parser!(i32).range(1..), global = true)]
    pub delay_threshold: Option<i32>,

    /// Share of capacity above which a vehicle is crowded [default: 0.9].
    #[arg(long, env = "STREAMCITY_CROWDING_SHARE", value_parser = parse_probability, allow_negative_numbers = true, global = true)]
    pub crowding_share: Option<f64>,

    /// How far a partition's watermark trails its highest event time, ms [default: 5000].
    #[arg(long, env = "STREAMCITY_ALLOWED_LATENESS_MS", global = true)]
    pub allowed_lateness_ms: Option<u32>,

    /// File the processor checkpoints its state to (every `--checkpoint-interval`
    /// seconds and on exit), and resumes from on start. On Kafka the checkpoint also
    /// holds the input offsets it reflects: a processor killed at any point and
    /// restarted gives the outputs of an uninterrupted run.
    #[arg(long, env = "STREAMCITY_CHECKPOINT", global = true)]
    pub checkpoint: Option<PathBuf>,

    /// Seconds between checkpoints: shorter costs more writes, and re-reads less input
    /// after a crash.
    #[arg(long, env = "STREAMCITY_CHECKPOINT_INTERVAL", default_value_t = 30,
          value_parser = clap::value_parser!(u64).range(1..=86_400), global = true)]
    pub checkpoint_interval: u64,
}

/// Producer pacing and limits, after the seeds' producers.
#[derive(Debug, Clone, clap::Args)]
pub struct PaceArgs {
    /// Events per second of the chosen producer: vehicle reports across the fleet, taps
    /// (on and off together) across the city at midday, or new incidents. With `all`,
    /// new incidents of both kinds together (traffic and city); vehicles and riders keep
    /// their own pace. With --scenario, events per second of all its streams together.
    #[arg(long, env = "STREAMCITY_RATE", value_parser = parse_positive, allow_negative_numbers = true, conflicts_with = "interval", global = true)]
    pub rate: Option<f64>,

    /// Mean seconds between events of the chosen producer (for vehicles: between two
    /// reports of one vehicle), as --rate counts them. With --scenario, between events
    /// of all its streams together.
    #[arg(long, env = "STREAMCITY_INTERVAL", value_parser = parse_positive, allow_negative_numbers = true, global = true)]
    pub interval: Option<f64>,

    /// Shortest gap between events, seconds: gaps are then drawn uniformly between
    /// --min-delta and --max-delta instead of exponentially. Needs --max-delta.
    #[arg(long, env = "STREAMCITY_MIN_DELTA", value_parser = parse_non_negative, allow_negative_numbers = true, requires = "max_delta", global = true)]
    pub min_delta: Option<f64>,

    /// Longest gap between events, seconds. Needs --min-delta.
    #[arg(long, env = "STREAMCITY_MAX_DELTA", value_parser = parse_positive, allow_negative_numbers = true, requires = "min_delta", global = true)]
    pub max_delta: Option<f64>,

    /// Probability that an event comes as a burst of several at once (CivicSense: 0.15).
    #[arg(long, env = "STREAMCITY_BURST", value_parser = parse_probability, allow_negative_numbers = true, global = true)]
    pub burst: Option<f64>,

    /// Events in a burst.
    #[arg(long, env = "STREAMCITY_BURST_SIZE", default_value_t = 3,
          value_parser = clap::value_parser!(u32).range(2..=1000), global = true)]
    pub burst_size: u32,

    /// Rider arrivals per second across the city at midday (the time of day scales it).
    #[arg(long, env = "STREAMCITY_TAP_RATE", value_parser = parse_non_negative, allow_negative_numbers = true, global = true)]
    pub tap_rate: Option<f64>,

    /// Seconds between two position reports of one vehicle.
    #[arg(long, env = "STREAMCITY_VEHICLE_INTERVAL", value_parser = parse_positive, allow_negative_numbers = true, global = true)]
    pub vehicle_interval: Option<f64>,

    /// Mean seconds between new traffic incidents.
    #[arg(long, env = "STREAMCITY_TRAFFIC_INTERVAL", value_parser = parse_positive, allow_negative_numbers = true, global = true)]
    pub traffic_interval: Option<f64>,

    /// Mean seconds between new city incidents.
    #[arg(long, env = "STREAMCITY_INCIDENT_INTERVAL", value_parser = parse_positive, allow_negative_numbers = true, global = true)]
    pub incident_interval: Option<f64>,

    /// Stop after this many records.
    #[arg(long = "max", env = "STREAMCITY_MAX", global = true)]
    pub max_events: Option<u64>,

    /// Stop after this much real time: 90s, 15m, 2h, 1d (a bare number is seconds).
    #[arg(long, env = "STREAMCITY_DURATION", value_parser = parse_duration, global = true, conflicts_with = "continuous")]
    pub duration: Option<f64>,

    /// Run until stopped (Ctrl+C), as the seeds' --continuous: the default when
    /// neither --duration nor --max is given.
    #[arg(
        long,
        env = "STREAMCITY_CONTINUOUS",
        global = true,
        conflicts_with = "max_events"
    )]
    pub continuous: bool,

    /// Two minutes of rapid events with bursts: frequent incidents (15 % bursts of 3)
    /// and three times the riders.
    #[arg(long, env = "STREAMCITY_DEMO", global = true)]
    pub demo: bool,
}

/// A scripted crowd as given on the command line, before it is placed in time.
#[derive(Debug, Clone, PartialEq)]
pub struct CrowdSpec {
    /// The stop.
    pub stop_id: Id,
    /// Minutes after midnight (UTC) the crowd starts.
    pub minute_of_day: u32,
    /// Over how many minutes the riders arrive.
    pub minutes: u32,
    /// How many riders.
    pub riders: u32,
}

fn parse_f64(s: &str) -> Result<f64, String> {
    let v: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("`{s}` is not a number"))?;
    if v.is_finite() {
        Ok(v)
    } else {
        Err(format!("`{s}` is not a finite number"))
    }
}

fn parse_positive(s: &str) -> Result<f64, String> {
    let v = parse_f64(s)?;
    if v > 0.0 {
        Ok(v)
    } else {
        Err(format!("must be above 0, got {s}"))
    }
}

fn parse_non_negative(s: &str) -> Result<f64, String> {
    let v = parse_f64(s)?;
    if v >= 0.0 {
        Ok(v)
    } else {
        Err(format!("must not be negative, got {s}"))
    }
}

fn parse_probability(s: &str) -> Result<f64, String> {
    let v = parse_f64(s)?;
    if (0.0..=1.0).contains(&v) {
        Ok(v)
    } else {
        Err(format!("must be a probability from 0 to 1, got {s}"))
    }
}

fn parse_duration(s: &str) -> Result<f64, String> {
    streamcity_scenario::parse_duration(s).map(|d| d.as_secs_f64())
}

/// `from=to`, both valid topic names.
fn parse_rename(s: &str) -> Result<(String, String), String> {
    let (from, to) = s
        .split_once('=')
        .ok_or_else(|| format!("{s:?}: write --topic name=new.name"))?;
    for name in [from, to] {
        if !streamcity_scenario::scenario::valid_topic(name) {
            return Err(format!(
                "{name:?} is not a Kafka topic name (letters, digits, . _ -; up to 249)"
            ));
        }
    }
    Ok((from.to_owned(), to.to_owned()))
}

fn parse_speed(s: &str) -> Result<f64, String> {
    let v = parse_positive(s)?;
    if v <= 10_000.0 {
        Ok(v)
    } else {
        Err(format!("must be at most 10000, got {s}"))
    }
}

/// Minutes after midnight from `HH:MM`.
fn parse_hhmm(s: &str) -> Result<u32, String> {
    let err = || format!("expected a time of day as HH:MM (00:00 to 23:59), got `{s}`");
    let (h, m) = s.split_once(':').ok_or_else(err)?;
    let (h, m): (u32, u32) = (h.parse().map_err(|_| err())?, m.parse().map_err(|_| err())?);
    if h < 24 && m < 60 {
        Ok(h * 60 + m)
    } else {
        Err(err())
    }
}

/// When a run starts, as given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartAt {
    /// A time of day, minutes after the city's local midnight.
    TimeOfDay(u32),
    /// A moment, ms since the epoch.
    Epoch(TimestampMs),
}

fn parse_start(s: &str) -> Result<StartAt, String> {
    if s.contains(':') {
        return parse_hhmm(s).map(StartAt::TimeOfDay);
    }
    s.parse::<TimestampMs>()
        .ok()
        .filter(|&t| t >= streamcity_core::event::MIN_VALID_TIMESTAMP)
        .map(StartAt::Epoch)
        .ok_or_else(|| {
            format!("expected HH:MM or milliseconds since the epoch (after 2000), got `{s}`")
        })
}

fn parse_date(s: &str) -> Result<streamcity_network::Date, String> {
    let err = || format!("expected a date as YYYY-MM-DD, got `{s}`");
    let digits: String = s.chars().filter(|c| *c != '-').collect();
    if digits.len() != 8 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(err());
    }
    let date = streamcity_network::Date(digits.parse().map_err(|_| err())?);
    if date.is_valid() {
        Ok(date)
    } else {
        Err(err())
    }
}

/// The simulated moment a run starts at, by the clocks of `network`'s city.
pub fn start_ms(
    twin: &TwinArgs,
    network: &streamcity_network::Network,
) -> anyhow::Result<TimestampMs> {
    let now = wall_clock_ms();
    let day = twin.date.unwrap_or_else(|| network.local_date(now));
    Ok(match twin.start {
        Some(StartAt::TimeOfDay(minutes)) => network.local_time_ms(day, i64::from(minutes) * 60),
        Some(StartAt::Epoch(ms)) => {
            ensure!(
                twin.date.is_none(),
                "--date goes with a time of day (--start HH:MM), not with a moment in ms"
            );
            ms
        }
        // The time of day it is now, on the day asked.
        None => {
            let offset_ms = i64::from(network.utc_offset_at(now)) * 60_000;
            network.local_time_ms(day, (now + offset_ms).rem_euclid(86_400_000) / 1000)
        }
    })
}

fn parse_poll_interval(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && (0.1..=3600.0).contains(&v) => Ok(v),
        _ => Err(format!("expected seconds between 0.1 and 3600, got `{s}`")),
    }
}

fn parse_crowd(s: &str) -> Result<CrowdSpec, String> {
    let err = |why: &str| {
        format!("`{s}`: {why}; expected STOP@HH:MM[+MINUTES]xRIDERS, e.g. S0042@17:30+15x600")
    };
    let (stop, rest) = s.split_once('@').ok_or_else(|| err("no @"))?;
    let (when, riders) = rest
        .rsplit_once('x')
        .ok_or_else(|| err("no x before the number of riders"))?;
    let (time, minutes) = match when.split_once('+') {
        Some((t, m)) => (
            t,
            m.parse::<u32>()
                .map_err(|_| err("minutes must be a whole number"))?,
        ),
        None => (when, 10),
    };
    let riders = riders
        .parse::<u32>()
        .map_err(|_| err("riders must be a whole number"))?;
    if stop.is_empty() || minutes == 0 || riders == 0 {
        return Err(err(
            "the stop, minutes and riders must not be empty or zero",
        ));
    }
    Ok(CrowdSpec {
        stop_id: stop.into(),
        minute_of_day: parse_hhmm(time)?,
        minutes,
        riders,
    })
}

impl TwinArgs {
    /// The processor's settings: the file's (or the defaults), then the flags.
    pub fn processor(&self) -> anyhow::Result<ProcessorConfig> {
        let mut config = match &self.processor_config {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("reading {}", path.display()))?;
                toml::from_str(&text).with_context(|| format!("in {}", path.display()))?
            }
            None => ProcessorConfig::default(),
        };
        if let Some(t) = self.surge_threshold {
            config.surge.threshold = t;
        }
        if let Some(t) = self.delay_threshold {
            config.delay.threshold_s = t;
            config.delay.clear_below_s = config.delay.clear_below_s.min(t * 3 / 5);
        }
        if let Some(s) = self.crowding_share {
            config.crowding.share = s;
            config.crowding.clear_share = config.crowding.clear_share.min(s - 0.15).max(0.0);
        }
        if let Some(ms) = self.allowed_lateness_ms {
            config.allowed_lateness_ms = i64::from(ms);
        }
        config
            .validate()
            .map_err(|e| anyhow::anyhow!("processor settings: {e}"))?;
        Ok(config)
    }

    /// The city to build: the options given, the defaults for the others.
    pub fn network(&self) -> anyhow::Result<SyntheticConfig> {
        let d = SyntheticConfig::default();
        let centre = LatLon::new(
            self.lat.unwrap_or(d.centre.lat),
            self.lon.unwrap_or(d.centre.lon),
        );
        ensure!(
            centre.is_valid(),
            "--lat/--lon must be a valid position, got ({}, {})",
            centre.lat,
            centre.lon
        );
        Ok(SyntheticConfig {
            seed: self.seed.unwrap_or(d.seed),
            centre,
            vehicles: self.vehicles.map_or(d.vehicles, |v| v as usize),
        })
    }

    /// The network a stage that reads it from the bus was given explicitly (a network
    /// option, by flag or environment): checked against the bus's.
    pub fn network_given(&self) -> anyhow::Result<Option<streamcity_network::Network>> {
        let given = self.gtfs.is_some()
            || self.seed.is_some()
            || self.vehicles.is_some()
            || self.lat.is_some()
            || self.lon.is_some();
        given.then(|| self.build_network()).transpose()
    }

    /// Mirror mode's settings, when `--gtfs-rt-in` is given; an error when they do not go
    /// together (no static feed, or a clock other than the real one).
    pub fn mirror(&self) -> anyhow::Result<Option<streamcity::mirror::MirrorConfig>> {
        if self.gtfs_rt_in.is_empty() {
            return Ok(None);
        }
        ensure!(
            self.gtfs.is_some(),
            "--gtfs-rt-in needs the agency's static feed too: give --gtfs FEED.zip"
        );
        ensure!(
            self.speed == 1.0 && self.start.is_none() && self.date.is_none(),
            "--gtfs-rt-in mirrors real vehicles, on the real clock: leave out --speed, --start and --date"
        );
        Ok(Some(streamcity::mirror::MirrorConfig {
            sources: self
                .gtfs_rt_in
                .iter()
                .map(|s| streamcity::mirror::Source::parse(s))
                .collect(),
            every: Duration::from_secs_f64(self.gtfs_rt_every),
        }))
    }

    /// The network these options describe: the GTFS feed given, or the built-in city.
    pub fn build_network(&self) -> anyhow::Result<streamcity_network::Network> {
        match &self.gtfs {
            Some(feed) => streamcity::load_gtfs(feed),
            None => Ok(streamcity_network::synthetic::generate(self.network()?)),
        }
    }
}

/// The simulation settings for `producer` (the all-in-one run is `All`), with the pace
/// options applied; and when the run should end by itself.
pub fn simulation(
    twin: &TwinArgs,
    pace: &PaceArgs,
    producer: ProducerKind,
    network: &streamcity_network::Network,
) -> anyhow::Result<(SimConfig, Limits)> {
    let start_ms = start_ms(twin, network)?;
    if network.runs_timetable() {
        tracing::info!("{}", streamcity::service_day(network, start_ms)?);
    }
    let mut sim = SimConfig {
        seed: twin
            .seed
            .unwrap_or(streamcity_network::synthetic::DEFAULT_SEED),
        start_ms,
        tick_ms: SimConfig::live_tick_ms(twin.speed),
        ..SimConfig::default()
    };
    // Riders: the built-in city's rate per vehicle, for the vehicles a feed's timetable
    // has on the road at the morning peak (a city-wide rate on a small fleet would
    // pack every bus and hold it at every stop).
    let tap_rate = if network.runs_timetable() {
        let day = network.local_date(start_ms);
        let peak = network
            .timetable_day(day)
            .map_or(0, |d| network.runs_at(d, 8 * 3600))
            .max(1);
        DEFAULT_TAP_RATE * peak as f64 / SYNTHETIC_FLEET
    } else {
        DEFAULT_TAP_RATE
    };
    sim.taps.gaps = Gaps::rate(tap_rate);
    let mut limits = Limits {
        max_events: pace.max_events,
        duration: pace.duration.map(Duration::from_secs_f64),
    };
    if pace.demo {
        limits.duration.get_or_insert(Duration::from_secs(120));
        sim.taps.gaps = Gaps::rate(tap_rate * 3.0);
        sim.traffic.gaps = Gaps::Poisson { mean_s: 20.0 };
        sim.incidents.gaps = Gaps::Poisson { mean_s: 15.0 };
        let burst = Burst {
            probability: 0.15,
            size: 3,
        };
        sim.traffic.burst = burst;
        sim.incidents.burst = burst;
    }

    // Per-stream settings.
    if let Some(rate) = pace.tap_rate {
        sim.taps.gaps = Gaps::rate(rate);
    }
    if let Some(secs) = pace.vehicle_interval {
        sim.vehicles.gaps = Gaps::Uniform {
            min_s: secs,
            max_s: secs,
        };
    }
    if let Some(secs) = pace.traffic_interval {
        sim.traffic.gaps = Gaps::Poisson { mean_s: secs };
    }
    if let Some(secs) = pace.incident_interval {
        sim.incidents.gaps = Gaps::Poisson { mean_s: secs };
    }

    // The chosen producer's pace.
    let mean_s = pace.interval.or(pace.rate.map(|r| 1.0 / r));
    let uniform = match (pace.min_delta, pace.max_delta) {
        (Some(min_s), Some(max_s)) => {
            ensure!(
                min_s <= max_s,
                "--min-delta ({min_s}) must not be above --max-delta ({max_s})"
            );
            Some(Gaps::Uniform { min_s, max_s })
        }
        _ => None,
    };
    let burst = pace.burst.map(|probability| Burst {
        probability,
        size: pace.burst_size,
    });
    let fleet = network
        .routes
        .iter()
        .map(|r| r.vehicles)
        .sum::<usize>()
        .max(1) as f64;
    match producer {
        ProducerKind::Vehicles => {
            if burst.is_some() {
                bail!(
                    "--burst does not apply to vehicle reports (each vehicle reports on its own)"
                );
            }
            // --rate is fleet-wide; each vehicle reports every fleet/rate seconds.
            if let Some(mean) = mean_s {
                let per_vehicle = if pace.interval.is_some() {
                    mean
                } else {
                    mean * fleet
                };
                sim.vehicles.gaps = Gaps::Uniform {
                    min_s: per_vehicle,
                    max_s: per_vehicle,
                };
            }
            if let Some(g) = uniform {
                sim.vehicles.gaps = g;
            }
        }
        // Every rider taps on and, later, off: the tap-ons come at half the rate, so
        // that taps of both kinds together keep to it.
        ProducerKind::Taps => {
            apply(&mut sim.taps, mean_s.map(|m| m * 2.0), uniform, burst);
            // Riders already aboard at the start, in proportion: as many as that
            // rate keeps aboard.
            if mean_s.is_some() || uniform.is_some() {
                sim.initial_load = (1.0 / sim.taps.gaps.mean_s()) / tap_rate;
            }
        }
        ProducerKind::Traffic => apply(&mut sim.traffic, mean_s, uniform, burst),
        ProducerKind::Incidents => apply(&mut sim.incidents, mean_s, uniform, burst),
        ProducerKind::All => {
            // Traffic and city incidents together keep to the rate: each at half.
            apply(&mut sim.traffic, mean_s.map(|m| m * 2.0), uniform, burst);
            apply(&mut sim.incidents, mean_s.map(|m| m * 2.0), uniform, burst);
        }
    }
    let all = producer == ProducerKind::All;
    sim.vehicles.emit = all || producer == ProducerKind::Vehicles;
    sim.taps.emit = all || producer == ProducerKind::Taps;
    sim.traffic.emit = all || producer == ProducerKind::Traffic;
    sim.incidents.emit = all || producer == ProducerKind::Incidents;
    if !twin.gtfs_rt_in.is_empty() {
        // Mirror mode: the vehicles are the mirrored feeds' own.
        sim.vehicles.emit = false;
    }

    for c in &twin.crowd {
        // On the start's day (local time), or the next day when that time has passed.
        let day = network.local_date(start_ms);
        let minute = i64::from(c.minute_of_day) * 60;
        let mut at = network.local_time_ms(day, minute);
        if at + c.minutes as i64 * 60_000 < start_ms {
            at = network.local_time_ms(streamcity_network::Date::from_days(day.days() + 1), minute);
        }
        sim.crowds.push(CrowdEvent {
            stop_id: c.stop_id.clone(),
            start_ms: at,
            duration_ms: c.minutes as i64 * 60_000,
            riders: c.riders,
        });
    }
    Ok((sim, limits))
}

/// Vehicles of the built-in city, which [`DEFAULT_TAP_RATE`] is for.
const SYNTHETIC_FLEET: f64 = 240.0;

fn apply(
    stream: &mut streamcity_producers::sim::StreamConfig,
    mean_s: Option<f64>,
    uniform: Option<Gaps>,
    burst: Option<Burst>,
) {
    if let Some(mean_s) = mean_s {
        stream.gaps = Gaps::Poisson { mean_s };
    }
    if let Some(g) = uniform {
        stream.gaps = g;
    }
    if let Some(b) = burst {
        stream.burst = b;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crowds_parse_with_and_without_minutes() {
        let c = parse_crowd("S0042@17:30+15x600").unwrap();
        assert_eq!(
            (c.stop_id.as_str(), c.minute_of_day, c.minutes, c.riders),
            ("S0042", 17 * 60 + 30, 15, 600)
        );
        assert_eq!(parse_crowd("S1@08:00x50").unwrap().minutes, 10);
        for bad in [
            "S1",
            "S1@8x",
            "S1@25:00x10",
            "@08:00x10",
            "S1@08:00x0",
            "S1@08:00+ax10",
        ] {
            assert!(parse_crowd(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn moments_parse_as_epoch_ms_or_utc() {
        assert_eq!(parse_moment("1796110200000"), Ok(1_796_110_200_000));
        assert_eq!(parse_moment("2026-12-01T07:30:00Z"), Ok(1_796_110_200_000));
        assert_eq!(parse_moment("2026-12-01T07:30"), Ok(1_796_110_200_000));
        assert_eq!(parse_moment("2026-12-01 07:30:15"), Ok(1_796_110_215_000));
        for bad in [
            "yesterday",
            "2026-13-01T07:30",
            "2026-12-01T24:00",
            "2026-12-01",
        ] {
            assert!(parse_moment(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn numbers_are_checked() {
        assert!(parse_positive("-1").unwrap_err().contains("above 0"));
        assert!(parse_positive("NaN").is_err());
        assert!(
            parse_probability("1.5")
                .unwrap_err()
                .contains("probability")
        );
        assert!(parse_start("25:00").is_err());
        assert_eq!(parse_start("08:30"), Ok(StartAt::TimeOfDay(510)));
        assert_eq!(
            parse_start("1763884800000"),
            Ok(StartAt::Epoch(1_763_884_800_000))
        );
        assert_eq!(
            parse_date("2014-06-02"),
            Ok(streamcity_network::Date(20140602))
        );
        assert!(parse_date("2014-02-30").unwrap_err().contains("YYYY-MM-DD"));
        assert!(parse_date("June").is_err());
        assert!(parse_start("12").is_err());
    }
}
