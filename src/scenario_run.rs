//! `streamcity produce --scenario NAME|FILE`: a scenario's records to Kafka, a file or
//! standard output, paced in real time (or `--speed` times faster, or not at all with
//! `--no-pacing`), with the seeds' progress reports.

use std::collections::HashMap;
use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bytes::Bytes;
use streamcity_core::{Bus, BusError, CancellationToken, Record};
use streamcity_kafka::DeliveryStats;
use streamcity_network::Network;
use streamcity_scenario::avro::AvroPlan;
use streamcity_scenario::{Engine, Made, Pace, Scenario};

/// How a scenario runs.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The random seed.
    pub seed: u64,
    /// Event time of the start, ms.
    pub start_ms: i64,
    /// Event-time seconds per real second, when paced.
    pub speed: f64,
    /// Whether records wait for their moment (`false`: as fast as they are made).
    pub paced: bool,
    /// Stop after this many records.
    pub max_records: Option<u64>,
    /// Stop after this much real time.
    pub duration: Option<Duration>,
    /// Pace changes from the command line.
    pub pace: Pace,
    /// Topic renames.
    pub rename: HashMap<String, String>,
    /// Progress reports on standard error this often.
    pub report_every: Duration,
    /// Avro instead of JSON: the schemas, and each topic's id in a schema registry.
    pub avro: Option<(AvroPlan, Vec<Option<u32>>)>,
}

/// Where the records go.
pub enum Sink<B> {
    /// JSON lines (`{"topic","key","timestamp","value"}`), to a file or standard output.
    Lines(Box<dyn Write + Send>),
    /// Avro object container files, one per topic (`<topic>.avro`), in this folder.
    AvroFiles(std::path::PathBuf),
    /// A bus, with its delivery reports when it gives them.
    Bus(B, Option<Arc<DeliveryStats>>),
}

/// What a run made.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Summary {
    /// Records made and handed on.
    pub records: u64,
}

/// Writes one record as a JSON line.
pub fn write_line(out: &mut Vec<u8>, m: &Made<'_>) {
    out.extend_from_slice(b"{\"topic\":");
    streamcity_scenario::value::write_str(out, m.topic);
    out.extend_from_slice(b",\"key\":");
    if m.key.is_empty() {
        out.extend_from_slice(b"null");
    } else {
        match std::str::from_utf8(m.key) {
            Ok(key) => streamcity_scenario::value::write_str(out, key),
            Err(_) => streamcity_scenario::value::write_str(out, &String::from_utf8_lossy(m.key)),
        }
    }
    out.extend_from_slice(b",\"timestamp\":");
    out.extend_from_slice(itoa::Buffer::new().format(m.timestamp).as_bytes());
    out.extend_from_slice(b",\"value\":");
    out.extend_from_slice(m.value);
    out.extend_from_slice(b"}\n");
}

/// Runs `scenario` in `network`'s city until a limit or `stop`.
pub async fn run<B: Bus>(
    scenario: &Scenario,
    network: Arc<Network>,
    settings: Settings,
    sink: Sink<B>,
    stop: CancellationToken,
) -> anyhow::Result<Summary> {
    let mut engine = Engine::new(
        scenario,
        &network,
        settings.seed,
        settings.start_ms,
        &settings.pace,
        &settings.rename,
    );
    // Avro container files, one per topic, each with its schema.
    let schemas: Vec<(String, apache_avro::Schema)> = match &settings.avro {
        Some((plan, _)) => plan
            .topics
            .iter()
            .map(|t| {
                let name = settings.rename.get(&t.topic).unwrap_or(&t.topic).clone();
                (name, t.schema.clone())
            })
            .collect(),
        None => Vec::new(),
    };
    let mut containers: Vec<apache_avro::Writer<'_, std::io::BufWriter<std::fs::File>>> =
        Vec::new();
    if let Some((plan, ids)) = settings.avro.clone() {
        engine.write_avro(plan, ids);
    }
    // The twin runs beside a scenario whose events answer its disruptions.
    let mut twin = engine.twin_incident_every_s().map(|every| {
        crate::disruptions::TwinDisruptions::new(
            Arc::clone(&network),
            settings.seed,
            settings.start_ms,
            every,
        )
    });
    let mut twin_at = settings.start_ms;
    let mut found = Vec::new();
    let started = Instant::now();
    let deadline = settings.duration.map(|d| started + d);
    let max = settings.max_records.unwrap_or(u64::MAX);
    let mut made: u64 = 0;
    let mut buf: Vec<u8> = Vec::with_capacity(1 << 16);
    let mut pending: Vec<Record> = Vec::new();
    let (mut writer, bus, reports) = match sink {
        Sink::Lines(w) => (Some(w), None, None),
        Sink::Bus(b, r) => (None, Some(b), r),
        Sink::AvroFiles(dir) => {
            std::fs::create_dir_all(&dir)
                .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", dir.display()))?;
            for (topic, schema) in &schemas {
                let path = dir.join(format!("{topic}.avro"));
                let file = std::fs::File::create(&path)
                    .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", path.display()))?;
                containers.push(apache_avro::Writer::new(
                    schema,
                    std::io::BufWriter::new(file),
                ));
            }
            (None, None, None)
        }
    };
    let mut container_error: Option<String> = None;
    let mut next_report = started + settings.report_every;
    let mut report_no = 0u64;
    let mut last = (Instant::now(), 0u64);
    let counts = |made: u64| match &reports {
        Some(r) => {
            let (d, f) = (
                r.delivered.load(Ordering::Relaxed),
                r.failed.load(Ordering::Relaxed),
            );
            format!(
                "Sent {made} | Delivered {d} | Failed {f} | Pending {}",
                made.saturating_sub(d + f)
            )
        }
        None => format!("Sent {made} | Delivered {made} | Failed 0 | Pending 0"),
    };
    let why = 'run: loop {
        for _ in 0..256 {
            if made >= max {
                break 'run "reached --max";
            }
            // The next moment anything happens: the scenario's next event, or the
            // twin's next second.
            let due_ms = match twin {
                Some(_) => engine.next_ms().min(twin_at + 1000),
                None => engine.next_ms(),
            };
            if settings.paced {
                // Bounded to a year ahead, so no scenario's timing can overflow the clock.
                let ahead_ms = (due_ms.saturating_sub(settings.start_ms) as f64 / settings.speed)
                    .clamp(0.0, 3.2e10);
                let due = started + Duration::from_secs_f64(ahead_ms / 1000.0);
                if due > Instant::now() {
                    // Hand on what was made before waiting.
                    match flush(&mut writer, &mut buf, bus.as_ref(), &mut pending).await {
                        Ok(()) => {}
                        Err(Closed::Gone) => break 'run "the reader went away",
                        Err(Closed::Failed(e)) => return Err(e),
                    }
                    let wake = deadline.map_or(due, |d| d.min(due)).min(next_report);
                    tokio::select! {
                        () = tokio::time::sleep_until(wake.into()) => {}
                        () = stop.cancelled() => break 'run "stopped",
                    }
                    if due > Instant::now() {
                        break;
                    }
                }
            }
            let mut emit = |m: Made<'_>| {
                if made >= max {
                    return;
                }
                made += 1;
                if !containers.is_empty() {
                    if let Some((value, _)) = m.avro {
                        let k = schemas
                            .iter()
                            .position(|(t, _)| **t == **m.topic)
                            .unwrap_or(0);
                        if let Err(e) = containers[k].append(value.clone()) {
                            container_error.get_or_insert_with(|| e.to_string());
                        }
                    }
                } else if bus.is_some() {
                    pending.push(Record::new(
                        m.topic,
                        Bytes::copy_from_slice(m.key),
                        Bytes::copy_from_slice(m.value),
                        m.timestamp,
                    ));
                } else {
                    write_line(&mut buf, &m);
                }
            };
            if let Some(t) = &mut twin {
                t.advance_to(due_ms, &mut found);
                twin_at = due_ms;
                for d in found.drain(..) {
                    engine.on_twin(d.kind, d.at_ms, &d.values, &mut emit);
                }
            }
            if engine.next_ms() <= due_ms {
                engine.step(&mut emit);
            }
            if buf.len() >= 1 << 16 || pending.len() >= 1024 {
                match flush(&mut writer, &mut buf, bus.as_ref(), &mut pending).await {
                    Ok(()) => {}
                    Err(Closed::Gone) => break 'run "the reader went away",
                    Err(Closed::Failed(e)) => return Err(e),
                }
            }
        }
        let now = Instant::now();
        if stop.is_cancelled() {
            break "stopped";
        }
        if deadline.is_some_and(|d| now >= d) {
            break "reached --duration";
        }
        if now >= next_report {
            match flush(&mut writer, &mut buf, bus.as_ref(), &mut pending).await {
                Ok(()) => {}
                Err(Closed::Gone) => break 'run "the reader went away",
                Err(Closed::Failed(e)) => return Err(e),
            }
            report_no += 1;
            let rate = (made - last.1) as f64 / last.0.elapsed().as_secs_f64().max(1e-9);
            last = (now, made);
            eprintln!("Report #{report_no}: {} | {rate:.0}/s", counts(made));
            next_report = now + settings.report_every;
        }
        // Let other tasks run (Ctrl+C, metrics) in an unpaced run.
        tokio::task::yield_now().await;
    };
    for c in &mut containers {
        if let Err(e) = c.flush() {
            container_error.get_or_insert_with(|| e.to_string());
        }
        if let Err(e) = c.get_mut().flush() {
            container_error.get_or_insert_with(|| e.to_string());
        }
    }
    drop(containers);
    if let Some(e) = container_error {
        return Err(anyhow::anyhow!("writing the Avro files: {e}"));
    }
    let result = flush(&mut writer, &mut buf, bus.as_ref(), &mut pending).await;
    if let Err(Closed::Failed(e)) = result {
        return Err(e);
    }
    if let Some(b) = &bus {
        b.flush().await?;
    }
    if let Some(w) = &mut writer {
        match w.flush() {
            Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
                return Err(anyhow::anyhow!("writing records: {e}"));
            }
            _ => {}
        }
    }
    let why = match result {
        Err(_) => "the reader went away",
        Ok(()) => why,
    };
    eprintln!(
        "Done ({why}) after {:.1} s: {}",
        started.elapsed().as_secs_f64(),
        counts(made)
    );
    Ok(Summary { records: made })
}

/// Why records could not be handed on.
#[derive(Debug)]
enum Closed {
    /// The output closed (a reader of standard output went away: `| head`).
    Gone,
    /// Writing or publishing failed.
    Failed(anyhow::Error),
}

async fn flush<B: Bus>(
    writer: &mut Option<Box<dyn Write + Send>>,
    buf: &mut Vec<u8>,
    bus: Option<&B>,
    pending: &mut Vec<Record>,
) -> Result<(), Closed> {
    if let Some(w) = writer
        && !buf.is_empty()
    {
        {
            let r = w.write_all(buf);
            buf.clear();
            match r {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => return Err(Closed::Gone),
                Err(e) => return Err(Closed::Failed(anyhow::anyhow!("writing records: {e}"))),
            }
        }
    }
    if let Some(bus) = bus {
        for record in pending.drain(..) {
            match bus.publish(record).await {
                Ok(()) => {}
                Err(BusError::Closed) => return Err(Closed::Gone),
                Err(e) => return Err(Closed::Failed(anyhow::anyhow!("publishing: {e}"))),
            }
        }
    }
    Ok(())
}
