//! librdkafka's own log lines and errors, throttled: while the brokers are out of reach
//! it reports every failed connection, several a second per client. One line per kind
//! per 10 s goes out, with the count of those held back.

use std::time::Duration;

use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::error::KafkaError;
use streamcity_core::throttle::Throttle;

static ERRORS: Throttle = Throttle::new(Duration::from_secs(10));
static WARNINGS: Throttle = Throttle::new(Duration::from_secs(10));

/// A librdkafka log line.
pub(crate) fn log(level: RDKafkaLogLevel, facility: &str, message: &str) {
    match level {
        RDKafkaLogLevel::Emerg
        | RDKafkaLogLevel::Alert
        | RDKafkaLogLevel::Critical
        | RDKafkaLogLevel::Error => {
            if let Some(more) = ERRORS.ready() {
                tracing::error!(target: "librdkafka", more, "{facility}: {message}");
            }
        }
        RDKafkaLogLevel::Warning => {
            if let Some(more) = WARNINGS.ready() {
                tracing::warn!(target: "librdkafka", more, "{facility}: {message}");
            }
        }
        RDKafkaLogLevel::Notice | RDKafkaLogLevel::Info => {
            tracing::debug!(target: "librdkafka", "{facility}: {message}")
        }
        RDKafkaLogLevel::Debug => tracing::trace!(target: "librdkafka", "{facility}: {message}"),
    }
}

/// A librdkafka global error (all brokers down, a connection refused...).
pub(crate) fn error(error: &KafkaError, reason: &str) {
    if let Some(more) = ERRORS.ready() {
        tracing::error!(target: "librdkafka", more, "{error}: {reason}");
    }
}

/// The context of the clients that need no other: admin, and partition readers.
pub(crate) struct Quiet;

impl ClientContext for Quiet {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        log(level, fac, log_message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        self::error(&error, reason);
    }
}

impl rdkafka::consumer::ConsumerContext for Quiet {}
