//! `streamcity produce --scenario …` and `--list-scenarios`: the command line's
//! options turned into a scenario run (see `streamcity::scenario_run`).

use std::collections::HashMap;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, bail, ensure};
use streamcity::scenario_run::{self, Settings, Sink};
use streamcity_core::CancellationToken;
use streamcity_scenario::{Pace, Scenario, shipped};

use crate::cli::{self, BusKind, KafkaArgs, PaceArgs, TwinArgs, ValueFormat};
use crate::jsonl::JsonLinesBus;
use crate::stages;

/// What `produce` was asked besides the scenario.
pub struct Options {
    /// `--output`.
    pub output: Option<PathBuf>,
    /// `--topic from=to`.
    pub renames: Vec<(String, String)>,
    /// `--no-pacing`.
    pub no_pacing: bool,
    /// `--format`.
    pub format: ValueFormat,
    /// `--schema-registry`.
    pub schema_registry: Option<String>,
}

/// Prints the shipped scenarios: name, topics, mean rate, what they make.
pub fn list() -> anyhow::Result<()> {
    for name in shipped::NAMES {
        let s = shipped::load(name)?;
        say!(
            "{name:<12} {:>8.2} events/s  topics: {}\n             {}",
            s.events_per_second(),
            s.topics().join(", "),
            s.description
        );
    }
    Ok(())
}

/// Runs the scenario `name_or_path` as the options say.
pub async fn run(
    name_or_path: &str,
    options: Options,
    twin: &TwinArgs,
    pace: &PaceArgs,
    kafka: &KafkaArgs,
    stop: CancellationToken,
) -> anyhow::Result<()> {
    let scenario = shipped::load(name_or_path)?;
    for (given, flag) in [
        (pace.tap_rate.is_some(), "--tap-rate"),
        (pace.vehicle_interval.is_some(), "--vehicle-interval"),
        (pace.traffic_interval.is_some(), "--traffic-interval"),
        (pace.incident_interval.is_some(), "--incident-interval"),
    ] {
        ensure!(
            !given,
            "{flag} paces the twin's producers; a scenario takes --rate, --interval, --min-delta/--max-delta and --burst"
        );
    }
    let network = twin.build_network()?;
    let start_ms = cli::start_ms(twin, &network)?;
    let (mut settings, topics) = settings(&scenario, &options, twin, pace, kafka, start_ms)?;
    let kafka_out = options.output.is_none() && kafka.bus_kind() == BusKind::Kafka;
    if options.schema_registry.is_some() {
        ensure!(
            kafka_out && options.format == ValueFormat::Avro,
            "--schema-registry goes with --format avro and --brokers (container files carry their schema)"
        );
    }
    if options.format == ValueFormat::Avro {
        let plan = streamcity_scenario::avro::AvroPlan::derive(&scenario)?;
        let mut ids = vec![None; plan.topics.len()];
        match (&options.schema_registry, kafka_out, &options.output) {
            (Some(url), true, _) => {
                let client = reqwest::Client::new();
                for (k, t) in plan.topics.iter().enumerate() {
                    let topic = &settings.rename[&t.topic];
                    let id =
                        streamcity::schema_registry::register(&client, url, topic, &t.json).await?;
                    eprintln!("Schema of {topic} registered at {url}: id {id}");
                    ids[k] = Some(id);
                }
            }
            (None, true, _) => bail!(
                "Avro to Kafka needs --schema-registry URL: the records carry their schema's id (Confluent's wire format)"
            ),
            (_, false, Some(_)) => {}
            (_, false, None) => bail!(
                "Avro is binary: give --output DIR (one container file per topic) or --brokers with --schema-registry"
            ),
        }
        settings.avro = Some((plan, ids));
    }
    eprintln!(
        "Producing the {} scenario: {} (about {:.2} events/s{}); Ctrl+C flushes and stops",
        scenario.name,
        topics.join(", "),
        if settings.paced {
            scenario_rate(&scenario, &settings.pace) * settings.speed
        } else {
            scenario_rate(&scenario, &settings.pace)
        },
        if settings.paced {
            ""
        } else {
            " of event time, written unpaced"
        }
    );
    let sink: Sink<streamcity_kafka::KafkaBus> = match (&options.output, kafka.bus_kind()) {
        (Some(_), BusKind::Kafka) => {
            bail!("--output writes a file instead of Kafka: leave out --brokers, or --output")
        }
        (Some(path), _) if options.format == ValueFormat::Avro => Sink::AvroFiles(path.clone()),
        (Some(path), _) => Sink::Lines(Box::new(std::io::BufWriter::with_capacity(
            1 << 16,
            std::fs::File::create(path)
                .with_context(|| format!("cannot create {}", path.display()))?,
        ))),
        (None, BusKind::Kafka) => {
            let bus = stages::connect(kafka, "produce").await?;
            bus.ensure_named_topics(&topics).await?;
            let stats = Arc::clone(bus.stats());
            Sink::Bus(bus, Some(stats))
        }
        (None, _) => Sink::Lines(Box::new(std::io::BufWriter::with_capacity(
            1 << 16,
            std::io::stdout(),
        ))),
    };
    scenario_run::run(&scenario, Arc::new(network), settings, sink, stop).await?;
    Ok(())
}

/// A bus writing the twin's producers' records to the file `path` as JSON lines
/// (`produce … --output FILE`).
pub fn output_bus(path: &std::path::Path) -> anyhow::Result<JsonLinesBus> {
    let file =
        std::fs::File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
    let out: Box<dyn Write + Send> = Box::new(std::io::BufWriter::with_capacity(1 << 16, file));
    Ok(JsonLinesBus::new(out))
}

fn scenario_rate(scenario: &Scenario, pace: &Pace) -> f64 {
    match (pace.rate, pace.uniform) {
        (_, Some((lo, hi))) => scenario.streams.len() as f64 * 2.0 / (lo + hi).max(1e-9),
        (Some(r), None) => r,
        (None, None) => scenario.events_per_second(),
    }
}

/// The run's settings from the options, and the topics it writes (renamed, prefixed).
fn settings(
    scenario: &Scenario,
    options: &Options,
    twin: &TwinArgs,
    pace: &PaceArgs,
    kafka: &KafkaArgs,
    start_ms: i64,
) -> anyhow::Result<(Settings, Vec<String>)> {
    let own = scenario.topics();
    let mut rename: HashMap<String, String> = own
        .iter()
        .map(|t| (t.clone(), format!("{}{t}", kafka.topic_prefix)))
        .collect();
    for (from, to) in &options.renames {
        ensure!(
            own.contains(from),
            "--topic {from}={to}: the {} scenario has no topic {from} (its topics: {})",
            scenario.name,
            own.join(", ")
        );
        rename.insert(from.clone(), to.clone());
    }
    let topics = own.iter().map(|t| rename[t].clone()).collect();
    let mut p = Pace {
        rate: pace.rate.or(pace.interval.map(|i| 1.0 / i)),
        uniform: None,
        burst: pace.burst.map(|b| (b, pace.burst_size)),
    };
    if let (Some(lo), Some(hi)) = (pace.min_delta, pace.max_delta) {
        ensure!(
            lo <= hi,
            "--min-delta ({lo}) must not be above --max-delta ({hi})"
        );
        p.uniform = Some((lo, hi));
    }
    let mut duration = pace.duration.map(Duration::from_secs_f64);
    if pace.demo {
        // The seeds' demo mode: two minutes, faster, with bursts.
        duration.get_or_insert(Duration::from_secs(120));
        p.rate.get_or_insert(scenario.events_per_second() * 2.0);
        p.burst.get_or_insert((0.15, pace.burst_size));
    }
    Ok((
        Settings {
            seed: twin
                .seed
                .unwrap_or(streamcity_network::synthetic::DEFAULT_SEED),
            start_ms,
            speed: twin.speed,
            paced: !options.no_pacing,
            max_records: pace.max_events,
            duration,
            pace: p,
            rename,
            report_every: Duration::from_secs(5),
            avro: None,
        },
        topics,
    ))
}
