//! Starting tansu, the Kafka-protocol broker of the tests and benchmarks, on a loopback
//! port (shared by the benchmarks and `tests/kafka_broker.rs`).

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// Starts `binary broker` on `127.0.0.1:port` with `storage` (`memory://tansu/`, or
/// `sqlite://NAME.db` relative to `dir`), and waits until it accepts connections.
pub fn start(binary: &str, dir: &Path, port: u16, storage: &str) -> Child {
    let url = format!("tcp://127.0.0.1:{port}");
    let mut child = Command::new(binary)
        .args([
            "broker",
            "--listener-url",
            &url,
            "--advertised-listener-url",
            &url,
        ])
        .args(["--storage-engine", storage])
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("starting {binary} (scripts/test.sh installs tansu): {e}"));
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return child;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("tansu did not start on port {port}");
}
