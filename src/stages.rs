//! The stages that run on their own against Kafka: `process`, `serve` and `tail`, as
//! docker-compose runs them.

use std::io::Write;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::Context as _;
use streamcity_core::{Bus, CancellationToken, StartFrom, Subscribe, Subscription};
use streamcity_dashboard::Live;
use streamcity_kafka::KafkaBus;
use streamcity_processor::runner::{ProcessorStats, RunOptions};
use streamcity_producers::City;

use crate::cli::{KafkaArgs, ListenArgs, TwinArgs};

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
    Ok(KafkaBus::connect(config).await?)
}

/// A name for this process among others of the same stage.
fn instance() -> String {
    format!(
        "{}-{}",
        std::process::id(),
        streamcity_core::clock::wall_clock_ms()
    )
}

/// `streamcity process`: the processor alone on Kafka, in the consumer group that
/// splits the partitions among instances.
pub async fn process(
    twin: &TwinArgs,
    kafka: &KafkaArgs,
    stop: CancellationToken,
) -> anyhow::Result<()> {
    let bus = connect(kafka, "process").await?;
    let topics = kafka.topics();
    bus.ensure_topics(&topics).await?;
    let city = City::generate(twin.city()?);
    let mut config = twin.processor()?;
    if config.headway.route_headways_s.is_empty() {
        config.headway.route_headways_s = city
            .routes
            .iter()
            .map(|r| (r.route_id.clone(), r.headway_s))
            .collect();
    }
    let clock = crate::clock_from(twin);
    let sub = streamcity_processor::runner::subscribe(&bus, &topics).await?;
    let stats = Arc::new(ProcessorStats::default());
    let options = RunOptions {
        topics,
        config,
        checkpoint: twin.checkpoint.clone(),
        checkpoint_every: Duration::from_secs(30),
    };
    let mut task = tokio::spawn(streamcity_processor::runner::run(
        bus,
        sub,
        options,
        clock,
        stop,
        Arc::clone(&stats),
    ));
    eprintln!("Processing; Ctrl+C stops after committing what was processed");
    let mut progress = tokio::time::interval(Duration::from_secs(10));
    progress.tick().await;
    let counts = loop {
        tokio::select! {
            done = &mut task => break done??,
            _ = progress.tick() => eprintln!(
                "Processed {} records, published {}, alerts raised {}, dead letters {}",
                stats.records_in.load(Ordering::Relaxed),
                stats.records_out.load(Ordering::Relaxed),
                stats.alerts_raised.load(Ordering::Relaxed),
                stats.dead_letters.load(Ordering::Relaxed),
            ),
        }
    };
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
    let city = Arc::new(City::generate(twin.city()?));
    let live = Arc::new(Live::new(city, topics, listen.live()));
    let sub = streamcity_dashboard::live::subscribe_replaying(&bus, &live, &instance()).await?;
    let addr = SocketAddr::new(listen.host, listen.port);
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))?;
    let port = listener.local_addr()?.port();
    println!(
        "StreamCity dashboard: open http://localhost:{port}  (live updates: ws://localhost:{port}/ws; Ctrl+C to stop)"
    );
    let ingest = tokio::spawn(streamcity_dashboard::live::run_ingest(
        sub,
        Arc::clone(&live),
        stop.clone(),
    ));
    streamcity_dashboard::serve(listener, live, stop.clone()).await?;
    stop.cancel();
    ingest.await??;
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
