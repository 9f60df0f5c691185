//! The `streamcity` binary as a test subject: run to completion or started in the
//! background, stopped with SIGTERM, its output read; every wait has a deadline, so a
//! stage that hangs fails the test with what it printed.

use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::{Child, ChildStdout, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

/// How long a command run to completion may take by default.
pub const RUN_DEADLINE: Duration = Duration::from_secs(180);
/// How long a stage may take to stop after SIGTERM.
pub const STOP_DEADLINE: Duration = Duration::from_secs(60);

/// The binary under test, with the environment every run of it gets.
#[derive(Debug, Clone)]
pub struct Binary {
    path: PathBuf,
    env: Vec<(String, String)>,
}

impl Binary {
    /// The binary at `path` (a test passes `env!("CARGO_BIN_EXE_streamcity")`).
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Binary {
            path: path.into(),
            env: Vec::new(),
        }
    }

    /// The same binary, run with `key=value` in its environment.
    pub fn env(mut self, key: &str, value: impl Into<String>) -> Self {
        self.env.push((key.to_owned(), value.into()));
        self
    }

    /// A command running it with `args` (its default log level: `RUST_LOG` removed).
    pub fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(&self.path);
        c.args(args).env_remove("RUST_LOG");
        for (k, v) in &self.env {
            c.env(k, v);
        }
        c
    }

    /// Runs it with `args` to completion, within [`RUN_DEADLINE`].
    pub fn run(&self, args: &[&str]) -> Output {
        self.run_within(args, RUN_DEADLINE)
    }

    /// Runs it with `args` to completion; kills it and fails when it takes longer than
    /// `deadline`.
    pub fn run_within(&self, args: &[&str], deadline: Duration) -> Output {
        let mut child = self.spawn(args);
        finish(
            &mut child,
            deadline,
            &format!("streamcity {}", args.join(" ")),
        )
    }

    /// Starts it with `args` in the background, stdout and stderr piped.
    pub fn spawn(&self, args: &[&str]) -> Child {
        self.command(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", self.path.display()))
    }
}

/// A stage running in the background whose stderr is collected as it prints, so that
/// a test can wait for a line while it runs.
#[derive(Debug)]
pub struct Running {
    child: Child,
    printed: std::sync::Arc<std::sync::Mutex<String>>,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl Binary {
    /// Starts it with `args`, collecting its stderr as it goes (stdout stays piped, for
    /// [`Running::dashboard_port`]).
    pub fn start(&self, args: &[&str]) -> Running {
        let mut child = self.spawn(args);
        let printed = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let stderr = child.stderr.take().expect("a piped stderr");
        let sink = std::sync::Arc::clone(&printed);
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                let mut text = sink
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                text.push_str(&without_colours(&line));
                text.push('\n');
            }
        });
        Running {
            child,
            printed,
            reader: Some(reader),
        }
    }
}

impl Running {
    /// What it has printed on stderr so far.
    pub fn printed(&self) -> String {
        self.printed
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Waits until it has printed a line containing `needle` (within `deadline`) and
    /// returns that line; fails with what it printed otherwise.
    pub fn wait_for(&self, needle: &str, deadline: Duration) -> String {
        let until = Instant::now() + deadline;
        loop {
            if let Some(line) = self.printed().lines().find(|l| l.contains(needle)) {
                return line.to_owned();
            }
            assert!(
                Instant::now() < until,
                "no line with `{needle}` within {deadline:?}; it printed:\n{}",
                self.printed()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The port its `/metrics` listens on, from the line it prints at start.
    pub fn metrics_port(&self) -> u16 {
        let line = self.wait_for("/metrics", Duration::from_secs(60));
        line.split("http://")
            .nth(1)
            .and_then(|rest| rest.split('/').next())
            .and_then(|addr| addr.rsplit(':').next())
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("no port in {line:?}"))
    }

    /// The port of the dashboard it serves, from the first line it prints on stdout.
    pub fn dashboard_port(&mut self) -> String {
        let (port, mut rest) = dashboard_port(&mut self.child);
        // What it prints after (progress, its summary) is read and dropped, so that
        // it never writes to a closed pipe.
        std::thread::spawn(move || std::io::copy(&mut rest, &mut std::io::sink()));
        port
    }

    /// Waits for it to exit by itself (within `deadline`); returns its status and what
    /// it printed on stderr.
    pub fn exit(mut self, deadline: Duration) -> (ExitStatus, String) {
        let status = wait_within(&mut self.child, deadline);
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
        match status {
            Some(status) => (status, self.printed()),
            None => panic!(
                "the stage did not exit within {deadline:?}; it printed:\n{}",
                self.printed()
            ),
        }
    }

    /// Whether it is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Kills it with SIGKILL (`kill -9`: no chance to clean up) and returns what it
    /// printed on stderr.
    pub fn kill(mut self) -> String {
        let _ = self.child.kill();
        let _ = wait_within(&mut self.child, STOP_DEADLINE);
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
        self.printed()
    }

    /// Stops it with SIGTERM, checks that it exits cleanly (within [`STOP_DEADLINE`])
    /// and returns what it printed on stderr.
    pub fn stop(self) -> String {
        terminate(&self.child);
        let (status, printed) = self.exit(STOP_DEADLINE);
        assert!(
            status.success(),
            "the stage did not stop cleanly: {printed}"
        );
        printed
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        // A test that failed half-way leaves nothing running.
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Reads a child's stdout and stderr to their end while waiting for it, within
/// `deadline`; kills it and panics with what it printed when it takes longer.
pub fn finish(child: &mut Child, deadline: Duration, what: &str) -> Output {
    let read = |pipe: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            if let Some(mut p) = pipe {
                let _ = p.read_to_end(&mut bytes);
            }
            bytes
        })
    };
    let out = read(
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let err = read(
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let status = wait_within(child, deadline);
    let (stdout, stderr) = (
        out.join().unwrap_or_default(),
        err.join().unwrap_or_default(),
    );
    match status {
        Some(status) => Output {
            status,
            stdout,
            stderr,
        },
        None => panic!(
            "`{what}` did not finish within {deadline:?}; it printed:\n{}\n{}",
            String::from_utf8_lossy(&stdout),
            String::from_utf8_lossy(&stderr)
        ),
    }
}

/// Waits for `child` up to `deadline`; kills it and returns `None` when it takes longer.
pub fn wait_within(child: &mut Child, deadline: Duration) -> Option<ExitStatus> {
    let until = Instant::now() + deadline;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Some(status),
            Ok(None) if Instant::now() < until => std::thread::sleep(Duration::from_millis(20)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
        }
    }
}

/// Sends SIGTERM to a running stage.
pub fn terminate(child: &Child) {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
}

/// Stops a stage with SIGTERM, checks that it exits cleanly (within
/// [`STOP_DEADLINE`]), and returns what it printed on stderr.
pub fn stop(mut child: Child) -> String {
    terminate(&child);
    let out = finish(&mut child, STOP_DEADLINE, "a stage stopped with SIGTERM");
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        out.status.success(),
        "the stage did not stop cleanly: {err}"
    );
    err
}

/// Stops a stage with SIGTERM, whatever its exit, and returns what it printed on stdout.
pub fn stop_collect(mut child: Child) -> String {
    terminate(&child);
    let out = finish(&mut child, STOP_DEADLINE, "a stage stopped with SIGTERM");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// What a finished run printed on stderr.
pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// What a finished run printed on stdout, line by line, sorted.
pub fn sorted_lines(out: &Output) -> Vec<String> {
    let mut lines: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect();
    lines.sort();
    lines
}

/// `text` without its terminal colour codes (tracing colours its output).
pub fn without_colours(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find("\x1b[") {
        out.push_str(&rest[..i]);
        rest = &rest[i..];
        rest = rest.find('m').map_or("", |m| &rest[m + 1..]);
    }
    out.push_str(rest);
    out
}

/// A name no other test run uses: `name`, the process id and the time, then `-`
/// (topic prefixes, consumer groups, temporary files).
pub fn unique(name: &str) -> String {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    format!("{name}{}x{}-", std::process::id(), ms % 1_000_000_000)
}

/// A free TCP port on loopback.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// The port in the URL a twin or dashboard prints on its first line (within 60 s), and
/// the rest of what it prints.
pub fn dashboard_port(child: &mut Child) -> (String, BufReader<ChildStdout>) {
    let stdout = child.stdout.take().expect("a piped stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut out = BufReader::new(stdout);
        let mut line = String::new();
        let _ = out.read_line(&mut line);
        let _ = tx.send((line, out));
    });
    let (line, out) = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("the stage says where it listens within 60 s");
    let port = line
        .split("localhost:")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .unwrap_or_else(|| panic!("no URL in {line:?}"))
        .to_owned();
    (port, out)
}

/// The vehicles `GET /api/vehicles` on `127.0.0.1:port` lists once there are at least
/// `at_least`, polling for up to `within`; past it, fails saying how many there were
/// and what `context` tells (what the stages printed).
pub fn api_vehicles(
    port: u16,
    at_least: usize,
    within: Duration,
    context: impl Fn() -> String,
) -> Vec<serde_json::Value> {
    let deadline = std::time::Instant::now() + within;
    loop {
        let (_, body) = http_get(port, "/api/vehicles");
        let vehicles: Vec<serde_json::Value> = serde_json::from_str(&body).unwrap_or_default();
        if vehicles.len() >= at_least {
            return vehicles;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "only {} vehicles after {within:?}:\n{}",
            vehicles.len(),
            context()
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// An HTTP GET of `path` on `127.0.0.1:port`, within 10 s: the status and the body.
pub fn http_get(port: u16, path: &str) -> (u16, String) {
    use std::io::Write;
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).expect("the server accepts");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("a timeout");
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .expect("a request");
    let mut page = String::new();
    stream.read_to_string(&mut page).expect("an answer");
    let status = page
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = page
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_owned();
    let body = if page
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(&body)
    } else {
        body
    };
    (status, body)
}

/// The body of a chunked HTTP answer.
fn dechunk(body: &str) -> String {
    let mut out = String::new();
    let mut rest = body;
    while let Some((size, after)) = rest.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if n == 0 || after.len() < n {
            break;
        }
        out.push_str(&after[..n]);
        rest = after[n..].trim_start_matches("\r\n");
    }
    out
}

/// An HTTP answer read whole: status, headers (names in lower case) and body bytes.
#[derive(Debug, Clone)]
pub struct HttpAnswer {
    /// The status code.
    pub status: u16,
    /// The headers, names in lower case.
    pub headers: Vec<(String, String)>,
    /// The body, de-chunked.
    pub body: Vec<u8>,
}

impl HttpAnswer {
    /// The value of header `name` (lower case), if sent.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// An HTTP GET of `path` on `127.0.0.1:port` with `headers`, within 10 s, its body as
/// bytes (a protobuf feed is not text).
pub fn http_get_bytes(port: u16, path: &str, headers: &[(&str, &str)]) -> HttpAnswer {
    http_request(port, "GET", path, headers, b"")
}

/// An HTTP request (`method`, `path`, `headers`, `body`) to `127.0.0.1:port`, within
/// 10 s, answered whole.
pub fn http_request(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> HttpAnswer {
    use std::io::Write;
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).expect("the server accepts");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("a timeout");
    let extra: String = headers
        .iter()
        .map(|(n, v)| format!("{n}: {v}\r\n"))
        .collect();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Length: {}\r\n{extra}\r\n",
        body.len()
    )
    .expect("a request");
    stream.write_all(body).expect("a request body");
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).expect("an answer");
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a header and a body");
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let mut body = raw[split + 4..].to_vec();
    if headers
        .iter()
        .any(|(n, v)| n == "transfer-encoding" && v.contains("chunked"))
    {
        let mut out = Vec::new();
        let mut rest = &body[..];
        while let Some(end) = rest.windows(2).position(|w| w == b"\r\n") {
            let size = String::from_utf8_lossy(&rest[..end]);
            let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
                break;
            };
            let data = &rest[end + 2..];
            if n == 0 || data.len() < n {
                break;
            }
            out.extend_from_slice(&data[..n]);
            rest = data[n..].strip_prefix(b"\r\n").unwrap_or(&data[n..]);
        }
        body = out;
    }
    HttpAnswer {
        status,
        headers,
        body,
    }
}

/// The sum of every sample of `name` in a Prometheus text page.
pub fn metric(page: &str, name: &str) -> f64 {
    page.lines()
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with(' ') || rest.starts_with('{'))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}
