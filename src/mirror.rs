//! Mirror mode (`--gtfs-rt-in`): instead of simulated vehicles, the real ones of an
//! agency's GTFS-realtime feeds. Each source (a URL, polled; or a file, read again
//! when it changes) is fetched every `--gtfs-rt-every` seconds, with the ETag and
//! gzip of a polite client, backing off (doubling, up to five minutes) while it fails;
//! each new vehicle report goes on `vehicle_locations` like a simulated one
//! ([`streamcity_realtime::mirror`] turns entities into reports). A source that fails
//! or serves a broken feed is counted and logged, never fatal.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use streamcity_core::clock::wall_clock_ms;
use streamcity_core::throttle::Throttle;
use streamcity_core::{Bus, CancellationToken, Topics, error_chain};
use streamcity_dashboard::metrics::Sample;
use streamcity_network::Network;
use streamcity_producers::SimEvent;
use streamcity_producers::runner::to_record;
use streamcity_realtime::mirror::{MAX_FEED_BYTES, Mirror, MirrorCounts};

/// The longest wait between two tries of a failing source.
const MAX_BACKOFF: Duration = Duration::from_secs(300);
/// How long one fetch may take.
const FETCH_TIMEOUT: Duration = Duration::from_secs(20);

/// Where a feed comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// Polled over HTTP(S).
    Url(String),
    /// Read from a file (again whenever it changes).
    File(PathBuf),
}

impl Source {
    /// `s` as a source: an `http://` or `https://` URL, else a file (`file://` or a path).
    pub fn parse(s: &str) -> Source {
        if s.starts_with("http://") || s.starts_with("https://") {
            Source::Url(s.to_owned())
        } else {
            Source::File(PathBuf::from(s.strip_prefix("file://").unwrap_or(s)))
        }
    }
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::Url(u) => f.write_str(u),
            Source::File(p) => write!(f, "{}", p.display()),
        }
    }
}

/// The feeds to mirror and how often.
#[derive(Debug, Clone)]
pub struct MirrorConfig {
    /// The feeds: vehicle positions, trip updates (their delays), or both in one.
    pub sources: Vec<Source>,
    /// Time between two fetches of a source that works.
    pub every: Duration,
}

/// What the mirror has done, for `/metrics`.
#[derive(Debug, Default)]
pub struct MirrorStats {
    /// Fetches tried.
    pub fetches: AtomicU64,
    /// Fetches answered "not modified" (HTTP 304, or a file unchanged).
    pub not_modified: AtomicU64,
    /// Fetches that failed (network, HTTP status, unreadable file).
    pub fetch_errors: AtomicU64,
    /// Records that went on the bus.
    pub published: AtomicU64,
    /// What the feeds held.
    pub counts: Mutex<MirrorCounts>,
}

/// A source's state between fetches.
#[derive(Debug, Default)]
struct Fetcher {
    etag: Option<String>,
    last_modified: Option<String>,
    file_seen: Option<(SystemTime, u64)>,
}

/// One fetch: the feed's bytes, or `None` when unchanged since the last.
async fn fetch(
    client: &reqwest::Client,
    source: &Source,
    state: &mut Fetcher,
) -> Result<Option<Vec<u8>>, String> {
    match source {
        Source::File(path) => {
            let meta = tokio::fs::metadata(path).await.map_err(|e| e.to_string())?;
            let seen = (meta.modified().map_err(|e| e.to_string())?, meta.len());
            if state.file_seen == Some(seen) {
                return Ok(None);
            }
            if meta.len() > MAX_FEED_BYTES as u64 {
                return Err(format!("{} bytes, more than {MAX_FEED_BYTES}", meta.len()));
            }
            let bytes = tokio::fs::read(path).await.map_err(|e| e.to_string())?;
            state.file_seen = Some(seen);
            Ok(Some(bytes))
        }
        Source::Url(url) => {
            let mut request = client.get(url);
            if let Some(etag) = &state.etag {
                request = request.header(reqwest::header::IF_NONE_MATCH, etag);
            }
            if let Some(modified) = &state.last_modified {
                request = request.header(reqwest::header::IF_MODIFIED_SINCE, modified);
            }
            let mut response = request.send().await.map_err(|e| error_chain(&e))?;
            if response.status() == reqwest::StatusCode::NOT_MODIFIED {
                return Ok(None);
            }
            if !response.status().is_success() {
                return Err(format!("HTTP {}", response.status()));
            }
            let header = |name| {
                response
                    .headers()
                    .get(name)
                    .and_then(|v: &reqwest::header::HeaderValue| v.to_str().ok())
                    .map(ToOwned::to_owned)
            };
            let (etag, modified) = (
                header(reqwest::header::ETAG),
                header(reqwest::header::LAST_MODIFIED),
            );
            let mut body = Vec::new();
            while let Some(chunk) = response.chunk().await.map_err(|e| error_chain(&e))? {
                if body.len() + chunk.len() > MAX_FEED_BYTES {
                    return Err(format!("body larger than {MAX_FEED_BYTES} bytes"));
                }
                body.extend_from_slice(&chunk);
            }
            state.etag = etag;
            state.last_modified = modified;
            Ok(Some(body))
        }
    }
}

/// Mirrors the feeds of `config` onto `bus` until `stop`: one task per source, all
/// feeding one [`Mirror`] (a trip updates feed's delays go on the vehicles of another).
pub async fn run<B: Bus>(
    config: MirrorConfig,
    network: Arc<Network>,
    bus: B,
    topics: Topics,
    stats: Arc<MirrorStats>,
    stop: CancellationToken,
) -> anyhow::Result<()> {
    let client = reqwest::Client::builder()
        .timeout(FETCH_TIMEOUT)
        .user_agent(concat!("streamcity/", env!("CARGO_PKG_VERSION")))
        .build()?;
    let mirror = Arc::new(Mutex::new(Mirror::default()));
    let mut tasks = tokio::task::JoinSet::new();
    for source in config.sources {
        tasks.spawn(poll(
            source,
            config.every,
            client.clone(),
            Arc::clone(&network),
            Arc::clone(&mirror),
            bus.clone(),
            topics.clone(),
            Arc::clone(&stats),
            stop.clone(),
        ));
    }
    while let Some(done) = tasks.join_next().await {
        done??;
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
async fn poll<B: Bus>(
    source: Source,
    every: Duration,
    client: reqwest::Client,
    network: Arc<Network>,
    mirror: Arc<Mutex<Mirror>>,
    bus: B,
    topics: Topics,
    stats: Arc<MirrorStats>,
    stop: CancellationToken,
) -> anyhow::Result<()> {
    let mut state = Fetcher::default();
    let mut failures = 0u32;
    let quiet = Throttle::new(Duration::from_secs(60));
    tracing::info!(%source, every_s = every.as_secs_f64(), "Mirroring a GTFS-realtime feed");
    loop {
        stats.fetches.fetch_add(1, Ordering::Relaxed);
        let fetched = tokio::select! {
            f = fetch(&client, &source, &mut state) => f,
            () = stop.cancelled() => return Ok(()),
        };
        let outcome = match fetched {
            Ok(None) => {
                stats.not_modified.fetch_add(1, Ordering::Relaxed);
                Ok(())
            }
            Ok(Some(bytes)) => {
                let taken = {
                    let mut m = mirror.lock().unwrap_or_else(PoisonError::into_inner);
                    let taken = m.take(&network, &bytes, wall_clock_ms());
                    *stats.counts.lock().unwrap_or_else(PoisonError::into_inner) = m.counts;
                    taken
                };
                match taken {
                    Ok(reports) => {
                        for p in reports {
                            bus.publish(to_record(&topics, &SimEvent::Position(p)))
                                .await?;
                            stats.published.fetch_add(1, Ordering::Relaxed);
                        }
                        Ok(())
                    }
                    // A broken feed: counted by the mirror; the source is tried again.
                    Err(e) => Err(e.to_string()),
                }
            }
            Err(e) => {
                stats.fetch_errors.fetch_add(1, Ordering::Relaxed);
                Err(e)
            }
        };
        let wait = match outcome {
            Ok(()) => {
                if failures > 0 {
                    tracing::info!(%source, "The feed works again");
                }
                failures = 0;
                every
            }
            Err(why) => {
                failures = failures.saturating_add(1);
                let wait = every
                    .saturating_mul(1 << failures.min(16))
                    .min(MAX_BACKOFF)
                    .max(every);
                if let Some(more) = quiet.ready() {
                    tracing::warn!(%source, %why, failures, retry_in_s = wait.as_secs_f64(), more, "Cannot use the GTFS-realtime feed (and `more` failures since the last such line; all counted on /metrics)");
                }
                wait
            }
        };
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            () = stop.cancelled() => return Ok(()),
        }
    }
}

/// The mirror's counters as metrics.
pub fn mirror_metrics(stats: &MirrorStats) -> Vec<Sample> {
    let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
    let c = *stats.counts.lock().unwrap_or_else(PoisonError::into_inner);
    let mut out = vec![
        Sample::counter(
            "streamcity_mirror_fetches",
            "Fetches of the mirrored GTFS-realtime feeds",
            &[],
            load(&stats.fetches),
        ),
        Sample::counter(
            "streamcity_mirror_not_modified",
            "Fetches that found the feed unchanged (HTTP 304, or the file as it was)",
            &[],
            load(&stats.not_modified),
        ),
        Sample::counter(
            "streamcity_mirror_fetch_errors",
            "Fetches that failed (network, HTTP status, unreadable file)",
            &[],
            load(&stats.fetch_errors),
        ),
        Sample::counter(
            "streamcity_mirror_reports_published",
            "Vehicle reports from the mirrored feeds put on the bus",
            &[],
            load(&stats.published),
        ),
    ];
    for (what, n) in [("decoded", c.feeds), ("undecodable", c.undecodable)] {
        out.push(Sample::counter(
            "streamcity_mirror_feeds",
            "Mirrored feeds fetched, by whether they decoded as GTFS-realtime",
            &[("outcome", what)],
            n,
        ));
    }
    for (what, n) in [
        ("reported", c.reports),
        ("unchanged", c.unchanged),
        ("unknown_trip", c.unknown_trip),
        ("invalid", c.invalid),
        ("trip_update", c.trip_updates),
    ] {
        out.push(Sample::counter(
            "streamcity_mirror_entities",
            "Entities of the mirrored feeds, by what came of them (reported: a new vehicle report; unchanged: no newer than the vehicle's last; unknown_trip: a trip not in the static feed; invalid: no usable position; trip_update: a delay taken)",
            &[("outcome", what)],
            n,
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_are_urls_or_files() {
        assert_eq!(
            Source::parse("https://example.org/vp.pb"),
            Source::Url("https://example.org/vp.pb".to_owned())
        );
        assert_eq!(
            Source::parse("file:///tmp/vp.pb"),
            Source::File(PathBuf::from("/tmp/vp.pb"))
        );
        assert_eq!(Source::parse("vp.pb"), Source::File(PathBuf::from("vp.pb")));
    }
}
