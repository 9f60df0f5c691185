//! A Kafka-protocol broker for the benchmarks: `STREAMCITY_TEST_BROKERS` when set,
//! otherwise a tansu started on a free loopback port (`tansu` on the PATH;
//! `scripts/test.sh` installs it) and stopped when dropped.

use std::process::Child;

/// A broker to use; stops the one started here when dropped.
pub struct Broker {
    /// `host:port`.
    pub addr: String,
    child: Option<Child>,
}

impl Broker {
    /// The broker in `STREAMCITY_TEST_BROKERS`, or a tansu started here.
    pub fn start() -> Broker {
        if let Ok(addr) = std::env::var("STREAMCITY_TEST_BROKERS") {
            return Broker { addr, child: None };
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let dir = std::env::temp_dir().join(format!("streamcity-bench-tansu-{port}"));
        std::fs::create_dir_all(&dir).expect("a directory for tansu");
        let child = crate::tansu::start("tansu", &dir, port, "memory://tansu/");
        Broker {
            addr: format!("127.0.0.1:{port}"),
            child: Some(child),
        }
    }
}

/// The broker of the tests: `STREAMCITY_TEST_BROKERS`, which `scripts/test.sh` sets to a
/// tansu it started. Without it the test fails, saying how to run it; it never skips.
pub fn test_brokers() -> String {
    std::env::var("STREAMCITY_TEST_BROKERS").expect(
        "STREAMCITY_TEST_BROKERS is not set: these tests need a Kafka-protocol broker; run them with scripts/test.sh, which starts tansu",
    )
}

impl Drop for Broker {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
