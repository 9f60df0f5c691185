//! `streamcity process --input FILE`: the processor over files of records instead of
//! Kafka. Records are read as JSON lines in the `produce` format (`{"topic", "key",
//! "timestamp", "value"}`), several files merged by timestamp, and processed in event
//! time: the processing time the processor is given is the event time the input has
//! reached, and the watermark moves on each time that reaches a new second. So the
//! output is a function of the input records alone: the same input gives the same
//! output, byte for byte, however fast the machine. At the end of the input every
//! window closes (the final watermark) and the run ends.
//!
//! Every output record is written in the same format (the live table's rows, alerts,
//! late events, dead letters, window counts when asked for), or compared with a file of
//! expected records (`--expect`), the way ksqlDB's test runner checks a query.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context as _, bail};
use bytes::Bytes;
use serde::Deserialize;
use serde_json::Value;
use serde_json::value::RawValue;
use streamcity_core::{DeadLetter, InvalidEvent, Record, TimestampMs, Topics};
use streamcity_processor::Processor;

use crate::cli::{KafkaArgs, TwinArgs};
use crate::jsonl::write_record;

/// The longest line read, bytes: a longer one is set aside as a dead letter (its
/// beginning kept), not held in memory whole.
pub const MAX_LINE_BYTES: usize = 16 << 20;

/// Where `process --input` reads and writes.
#[derive(Debug, Clone)]
pub struct Files {
    /// Files of JSON lines (`-`: standard input), merged by timestamp.
    pub inputs: Vec<String>,
    /// Where the output goes (`-` or none: standard output, unless comparing).
    pub output: Option<String>,
    /// Expected output to compare with.
    pub expect: Option<PathBuf>,
}

/// `streamcity process --input …`: builds the network and the settings from the
/// command line, runs the files through the processor and reports on standard error.
pub fn run(
    twin: &TwinArgs,
    kafka: &KafkaArgs,
    files: &Files,
    emit_window_counts: bool,
) -> anyhow::Result<()> {
    if files.inputs.iter().filter(|i| *i == "-").count() > 1 {
        bail!("standard input (`-`) can be read once: give it to one --input");
    }
    let network = Arc::new(twin.build_network()?);
    let mut config = streamcity::processor_config(twin.processor()?, &network);
    config.surge.emit_window_counts |= emit_window_counts;
    let topics = kafka.topics();
    let core = Processor::new(topics.clone(), config).with_network(network);
    let partitions = u32::try_from(kafka.partitions.max(1)).unwrap_or(1);

    let mut readers = Vec::new();
    for name in &files.inputs {
        let reader: Box<dyn BufRead> = if name == "-" {
            Box::new(BufReader::with_capacity(1 << 20, std::io::stdin()))
        } else {
            let file = File::open(name).with_context(|| format!("opening --input {name}"))?;
            Box::new(BufReader::with_capacity(1 << 20, file))
        };
        readers.push(Input::new(name.clone(), reader));
    }
    let expected = match &files.expect {
        Some(path) => Some(Expected::read(path)?),
        None => None,
    };
    let writer: Option<Box<dyn Write>> = match files.output.as_deref() {
        None if expected.is_some() => None,
        None | Some("-") => Some(Box::new(std::io::stdout().lock())),
        Some(path) => Some(Box::new(
            File::create(path).with_context(|| format!("creating --output {path}"))?,
        )),
    };
    let mut sink = Sink {
        writer: writer.map(|w| BufWriter::with_capacity(1 << 20, w)),
        keep: expected.as_ref().map(Expected::topics),
        kept: Vec::new(),
        by_topic: BTreeMap::new(),
    };
    let summary = process(readers, &topics, core, partitions, &mut sink)?;
    if let Some(mut w) = sink.writer.take() {
        match w.flush() {
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
            other => other.context("writing the output")?,
        }
    }
    eprintln!("{}", summary.describe(&sink.by_topic));
    if let (Some(expected), Some(path)) = (expected, &files.expect) {
        let diff = expected.compare(&sink.kept);
        if let Some(diff) = diff {
            eprintln!("{diff}");
            bail!("the output differs from {}", path.display());
        }
        eprintln!(
            "The output matches {} ({} records)",
            path.display(),
            sink.kept.len()
        );
    }
    Ok(())
}

/// What a run read and did.
#[derive(Debug, Default)]
pub struct Summary {
    /// Records of the processor's input topics processed.
    pub records: u64,
    /// Lines that were not records, set aside as dead letters.
    pub bad_lines: u64,
    /// Records of other topics, passed over, by topic.
    pub passed_over: BTreeMap<String, u64>,
    /// The watermark at the end, before the final one.
    pub watermark: TimestampMs,
}

impl Summary {
    fn describe(&self, written: &BTreeMap<String, u64>) -> String {
        let mut s = format!("Processed {} records", self.records);
        if self.bad_lines > 0 {
            s += &format!(
                "; {} lines were not records (set aside as dead letters)",
                self.bad_lines
            );
        }
        if !self.passed_over.is_empty() {
            let other: Vec<String> = self
                .passed_over
                .iter()
                .map(|(t, n)| format!("{t} {n}"))
                .collect();
            s += &format!(
                "; passed over records of topics the processor does not read: {}",
                other.join(", ")
            );
        }
        let out: Vec<String> = written.iter().map(|(t, n)| format!("{t} {n}")).collect();
        s += &format!(
            ". Output: {} records ({})",
            written.values().sum::<u64>(),
            if out.is_empty() {
                "none".to_owned()
            } else {
                out.join(", ")
            }
        );
        if self.watermark > TimestampMs::MIN {
            s += &format!(
                ". Watermark at the end of the input {} ({} UTC), then every window closed",
                self.watermark,
                streamcity::format_hms(self.watermark)
            );
        }
        s
    }
}

/// Where output records go: written, and kept for the comparison.
struct Sink {
    writer: Option<BufWriter<Box<dyn Write>>>,
    /// The topics to keep for the comparison (none kept without one).
    keep: Option<Vec<String>>,
    kept: Vec<Value>,
    by_topic: BTreeMap<String, u64>,
}

impl Sink {
    fn take(&mut self, records: &mut Vec<Record>) -> anyhow::Result<()> {
        for r in records.drain(..) {
            match self.by_topic.get_mut(&*r.topic) {
                Some(n) => *n += 1,
                None => {
                    self.by_topic.insert(r.topic.to_string(), 1);
                }
            }
            if let Some(w) = &mut self.writer
                && let Err(e) = write_record(w, &r)
            {
                if e.kind() == std::io::ErrorKind::BrokenPipe {
                    self.writer = None; // a reader that went away (`| head`)
                } else {
                    return Err(e).context("writing the output");
                }
            }
            if self
                .keep
                .as_ref()
                .is_some_and(|keep| keep.iter().any(|t| **t == *r.topic))
            {
                let mut line = Vec::new();
                write_record(&mut line, &r).context("encoding an output record")?;
                self.kept
                    .push(serde_json::from_slice(&line).context("an output record")?);
            }
        }
        Ok(())
    }
}

/// Runs the records of `inputs` through `core` (merged by timestamp; partitioned by
/// key over `partitions` as on Kafka), handing what it outputs to `sink`.
fn process(
    mut inputs: Vec<Input>,
    topics: &Topics,
    mut core: Processor,
    partitions: u32,
    sink: &mut Sink,
) -> anyhow::Result<Summary> {
    let mut summary = Summary::default();
    let mut out = Vec::with_capacity(1024);
    let read = streamcity_processor::inputs(topics);
    // Each input's next record.
    let mut heads: Vec<Option<Record>> = Vec::with_capacity(inputs.len());
    for input in &mut inputs {
        heads.push(input.next(topics, &mut out, &mut summary)?);
    }
    sink.take(&mut out)?;
    // The event time the input has reached stands for processing time: idle
    // partitions, the stream's clock and the watermark's pace all follow the records.
    let mut now = TimestampMs::MIN;
    let mut second = TimestampMs::MIN;
    // The earliest head each time; the first input's on a tie.
    while let Some(i) = (0..heads.len())
        .filter(|&i| heads[i].is_some())
        .min_by_key(|&i| heads[i].as_ref().map(|r| r.timestamp))
    {
        let record = heads[i].take().unwrap_or_else(|| unreachable!());
        heads[i] = inputs[i].next(topics, &mut out, &mut summary)?;
        if read.iter().any(|t| ***t == *record.topic) {
            summary.records += 1;
            let partition = record.partition(partitions) as i32;
            // Until the partitions agree on an event time, the records' own stand in.
            if core.event_time().is_none() {
                now = now.max(record.timestamp);
            }
            core.on_record(&record, partition, now, &mut out);
            now = now.max(core.event_time().unwrap_or(TimestampMs::MIN));
            if now.div_euclid(1000) != second {
                second = now.div_euclid(1000);
                core.advance(now, &mut out);
            }
        } else {
            *summary
                .passed_over
                .entry(record.topic.to_string())
                .or_default() += 1;
        }
        if out.len() >= 1024 {
            sink.take(&mut out)?;
        }
    }
    core.advance(now, &mut out);
    summary.watermark = core.watermark();
    core.finish(&mut out);
    sink.take(&mut out)?;
    Ok(summary)
}

/// A line of the `produce` format.
#[derive(Deserialize)]
struct Line<'a> {
    #[serde(borrow)]
    topic: std::borrow::Cow<'a, str>,
    #[serde(default, borrow)]
    key: Option<std::borrow::Cow<'a, str>>,
    #[serde(default)]
    timestamp: Option<TimestampMs>,
    #[serde(borrow)]
    value: &'a RawValue,
}

/// One input file, read a line at a time.
struct Input {
    name: String,
    reader: Box<dyn BufRead>,
    line: u64,
    buf: Vec<u8>,
    /// The timestamp of the last record: a line without one keeps its place after it.
    last_ts: TimestampMs,
}

impl Input {
    fn new(name: String, reader: Box<dyn BufRead>) -> Self {
        Input {
            name,
            reader,
            line: 0,
            buf: Vec::new(),
            last_ts: TimestampMs::MIN,
        }
    }

    /// The next record; lines that are not records become dead letters in `out`
    /// (blank lines are skipped). `None` at the end.
    fn next(
        &mut self,
        topics: &Topics,
        out: &mut Vec<Record>,
        summary: &mut Summary,
    ) -> anyhow::Result<Option<Record>> {
        loop {
            self.buf.clear();
            let (n, whole) = read_line(&mut self.reader, &mut self.buf, MAX_LINE_BYTES)
                .with_context(|| format!("reading {}", self.name))?;
            if n == 0 {
                return Ok(None);
            }
            self.line += 1;
            let text = trim(&self.buf);
            if text.is_empty() {
                continue;
            }
            let parsed = if whole {
                serde_json::from_slice::<Line<'_>>(text).map_err(|e| e.to_string())
            } else {
                Err(format!("a line longer than {MAX_LINE_BYTES} bytes"))
            };
            match parsed {
                Ok(line) => {
                    let ts = line.timestamp.unwrap_or(self.last_ts);
                    self.last_ts = ts;
                    let value = line.value.get();
                    // `null` is a tombstone, as `produce` writes one.
                    let payload = if value == "null" {
                        Bytes::new()
                    } else {
                        Bytes::copy_from_slice(value.as_bytes())
                    };
                    let key = line.key.as_deref().unwrap_or("").to_owned();
                    let topic = match topics.all().into_iter().find(|t| ***t == *line.topic) {
                        Some(t) => Arc::clone(t),
                        None => Arc::from(&*line.topic),
                    };
                    return Ok(Some(Record::new(&topic, key, payload, ts)));
                }
                Err(why) => {
                    summary.bad_lines += 1;
                    let error = InvalidEvent::Malformed(format!(
                        "line {} of {} is not a record {{\"topic\", \"key\", \"timestamp\", \"value\"}}: {why}",
                        self.line, self.name
                    ));
                    let letter = DeadLetter::of(
                        &self.name,
                        None,
                        Some(self.line as i64),
                        b"",
                        text,
                        self.last_ts.max(0),
                        &error,
                    );
                    out.push(Record::new(
                        &topics.dead_letters,
                        "",
                        Bytes::from(serde_json::to_vec(&letter)?),
                        self.last_ts.max(0),
                    ));
                }
            }
        }
    }
}

/// Reads a line into `buf`, at most `max` bytes of it (the rest is read and dropped);
/// returns the bytes read in all (0 at the end) and whether the line fits.
fn read_line(
    reader: &mut dyn BufRead,
    buf: &mut Vec<u8>,
    max: usize,
) -> std::io::Result<(usize, bool)> {
    let n = (&mut *reader).take(max as u64 + 1).read_until(b'\n', buf)?;
    if buf.len() <= max || buf.ends_with(b"\n") {
        return Ok((n, true));
    }
    // Too long: skip to the end of the line without keeping it.
    let mut skipped = n;
    loop {
        let chunk = reader.fill_buf()?;
        if chunk.is_empty() {
            return Ok((skipped, false));
        }
        match chunk.iter().position(|&b| b == b'\n') {
            Some(at) => {
                reader.consume(at + 1);
                return Ok((skipped + at + 1, false));
            }
            None => {
                let len = chunk.len();
                reader.consume(len);
                skipped += len;
            }
        }
    }
}

fn trim(bytes: &[u8]) -> &[u8] {
    let start = bytes
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(bytes.len());
    let end = bytes
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(start, |e| e + 1);
    &bytes[start..end]
}

/// The records a run should output: the topics they are on, in order.
struct Expected {
    /// Each expected record, with its line in the file.
    records: Vec<(u64, Value)>,
}

impl Expected {
    fn read(path: &Path) -> anyhow::Result<Self> {
        let mut text = String::new();
        File::open(path)
            .and_then(|mut f| f.read_to_string(&mut text))
            .with_context(|| format!("reading --expect {}", path.display()))?;
        let mut records = Vec::new();
        for (i, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let value: Value = serde_json::from_str(line)
                .with_context(|| format!("line {} of {} is not JSON", i + 1, path.display()))?;
            if !value.get("topic").is_some_and(Value::is_string) {
                bail!(
                    "line {} of {} names no topic: expected records are {{\"topic\", \"key\", \"timestamp\", \"value\"}} (key, timestamp and value compared when given)",
                    i + 1,
                    path.display()
                );
            }
            records.push((i as u64 + 1, value));
        }
        Ok(Expected { records })
    }

    /// The topics the expected records are on: only those are compared.
    fn topics(&self) -> Vec<String> {
        let mut topics: Vec<String> = self
            .records
            .iter()
            .filter_map(|(_, v)| v["topic"].as_str().map(str::to_owned))
            .collect();
        topics.sort();
        topics.dedup();
        topics
    }

    /// A readable account of how `got` differs, or `None` when it matches.
    fn compare(&self, got: &[Value]) -> Option<String> {
        let matches = |want: &Value, got: &Value| {
            ["topic", "key", "timestamp", "value"]
                .iter()
                .all(|f| want.get(f).is_none_or(|w| got.get(f) == Some(w)))
        };
        if self.records.len() == got.len()
            && self
                .records
                .iter()
                .zip(got)
                .all(|((_, w), g)| matches(w, g))
        {
            return None;
        }
        let mut s = format!(
            "Expected {} records on {}, got {}.\n",
            self.records.len(),
            self.topics().join(", "),
            got.len()
        );
        // Per topic first: the quickest way to see what is missing.
        let mut counts: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
        for (_, w) in &self.records {
            counts
                .entry(w["topic"].as_str().unwrap_or(""))
                .or_default()
                .0 += 1;
        }
        for g in got {
            counts
                .entry(g["topic"].as_str().unwrap_or(""))
                .or_default()
                .1 += 1;
        }
        for (topic, (want, have)) in &counts {
            if want != have {
                s += &format!("  {topic}: expected {want}, got {have}\n");
            }
        }
        s += &diff(&self.records, got, &matches);
        Some(s)
    }
}

/// The records expected and got as a diff (`-` expected only, `+` got only), from the
/// first difference, at most [`DIFF_LINES`] lines. Aligned on a longest common
/// subsequence when both are small enough, record by record otherwise.
fn diff(want: &[(u64, Value)], got: &[Value], matches: &dyn Fn(&Value, &Value) -> bool) -> String {
    const DIFF_LINES: usize = 40;
    let first = want
        .iter()
        .zip(got)
        .position(|((_, w), g)| !matches(w, g))
        .unwrap_or(want.len().min(got.len()));
    let (w, g) = (&want[first..], &got[first..]);
    let mut lines = vec![format!(
        "First difference at output record {} (expected line {}):",
        first + 1,
        want.get(first)
            .map_or("past the end".to_owned(), |(l, _)| l.to_string())
    )];
    let show = |v: &Value| v.to_string();
    if w.len().saturating_mul(g.len()) <= 4_000_000 {
        // lcs[i][j]: the common subsequence of w[i..] and g[j..].
        let (n, m) = (w.len(), g.len());
        let mut lcs = vec![0u32; (n + 1) * (m + 1)];
        for i in (0..n).rev() {
            for j in (0..m).rev() {
                lcs[i * (m + 1) + j] = if matches(&w[i].1, &g[j]) {
                    lcs[(i + 1) * (m + 1) + j + 1] + 1
                } else {
                    lcs[(i + 1) * (m + 1) + j].max(lcs[i * (m + 1) + j + 1])
                };
            }
        }
        let (mut i, mut j) = (0, 0);
        while (i < n || j < m) && lines.len() <= DIFF_LINES {
            if i < n && j < m && matches(&w[i].1, &g[j]) {
                lines.push(format!("  {}", show(&g[j])));
                i += 1;
                j += 1;
            } else if j < m && (i == n || lcs[i * (m + 1) + j + 1] >= lcs[(i + 1) * (m + 1) + j]) {
                lines.push(format!("+ {}", show(&g[j])));
                j += 1;
            } else {
                lines.push(format!("- {}", show(&w[i].1)));
                i += 1;
            }
        }
    } else {
        for k in 0..w.len().max(g.len()).min(DIFF_LINES / 2) {
            if let Some((_, v)) = w.get(k) {
                lines.push(format!("- {}", show(v)));
            }
            if let Some(v) = g.get(k) {
                lines.push(format!("+ {}", show(v)));
            }
        }
    }
    if lines.len() > DIFF_LINES {
        lines.truncate(DIFF_LINES);
        lines.push("  …".to_owned());
    }
    lines.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_too_long_is_cut_and_the_next_one_read() {
        let text = format!("{}\nnext\n", "x".repeat(100));
        let mut reader = std::io::Cursor::new(text.into_bytes());
        let mut buf = Vec::new();
        let (n, whole) = read_line(&mut reader, &mut buf, 10).unwrap();
        assert_eq!((n, whole), (101, false));
        buf.clear();
        let (n, whole) = read_line(&mut reader, &mut buf, 10).unwrap();
        assert_eq!((n, whole, &buf[..]), (5, true, &b"next\n"[..]));
    }

    #[test]
    fn the_diff_shows_what_is_missing_and_what_is_extra() {
        let r = |k: &str| serde_json::json!({"topic": "alerts", "key": k});
        let want: Vec<(u64, Value)> = ["a", "b", "c"]
            .iter()
            .enumerate()
            .map(|(i, k)| (i as u64 + 1, r(k)))
            .collect();
        let got = vec![r("a"), r("c"), r("d")];
        let expected = Expected { records: want };
        let diff = expected.compare(&got).unwrap();
        assert!(diff.contains("- {\"key\":\"b\""), "{diff}");
        assert!(diff.contains("+ {\"key\":\"d\""), "{diff}");
        assert!(diff.contains("expected line 2"), "{diff}");
        assert!(expected.compare(&[r("a"), r("b"), r("c")]).is_none());
    }
}
