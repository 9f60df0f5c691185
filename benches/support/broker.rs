//! A Kafka-protocol broker for the benchmarks: `STREAMCITY_TEST_BROKERS` when set,
//! otherwise a tansu started on a free loopback port (`tansu` on the PATH;
//! `scripts/test.sh` installs it) and stopped when dropped. Needs `support/tansu.rs`
//! as the crate's `tansu` module.

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

impl Drop for Broker {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
