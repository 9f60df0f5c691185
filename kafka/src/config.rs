//! How to reach Kafka: brokers, credentials (SASL_SSL with PLAIN, as Confluent Cloud
//! wants), librdkafka properties passed through, and how the topics this bus creates
//! are laid out (partitions, replication, topic settings).

use std::time::Duration;

use rdkafka::config::ClientConfig;

/// How to reach Kafka.
#[derive(Clone)]
pub struct KafkaConfig {
    /// Bootstrap servers, `host:port[,host:port...]` (`KAFKA_BOOTSTRAP_SERVERS`).
    pub brokers: String,
    /// API key: with the secret, connects with SASL_SSL and PLAIN (`KAFKA_API_KEY`).
    pub api_key: Option<String>,
    /// API secret (`KAFKA_API_SECRET`).
    pub api_secret: Option<String>,
    /// librdkafka properties passed through as they are (`--kafka-opt key=value`);
    /// they override everything else.
    pub properties: Vec<(String, String)>,
    /// Partitions of the topics this bus creates (the `network` topic has one).
    pub partitions: i32,
    /// Replication factor of the topics this bus creates; `None` leaves it to the
    /// brokers' default (`default.replication.factor`: 3 on Confluent Cloud).
    pub replication: Option<i16>,
    /// Topic settings for the topics this bus creates (`--topic-config key=value`,
    /// e.g. `retention.ms=86400000`), on top of compaction where it applies.
    pub topic_config: Vec<(String, String)>,
    /// Attempts to reach the brokers at start-up before giving up.
    pub connect_attempts: u32,
    /// Wait before the second attempt; doubled each time.
    pub connect_backoff: Duration,
}

impl std::fmt::Debug for KafkaConfig {
    /// Secrets are never printed: the API secret and passed-through properties that
    /// may hold one show as `***`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let properties: Vec<(&str, &str)> = self
            .properties
            .iter()
            .map(|(k, v)| (k.as_str(), if is_secret(k) { "***" } else { v.as_str() }))
            .collect();
        f.debug_struct("KafkaConfig")
            .field("brokers", &self.brokers)
            .field("api_key", &self.api_key)
            .field("api_secret", &self.api_secret.as_ref().map(|_| "***"))
            .field("properties", &properties)
            .field("partitions", &self.partitions)
            .field("replication", &self.replication)
            .field("topic_config", &self.topic_config)
            .finish_non_exhaustive()
    }
}

/// Whether a librdkafka property holds a secret.
pub fn is_secret(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    k.contains("password") || k.contains("secret") || k.ends_with(".key") || k.contains("token")
}

impl KafkaConfig {
    /// Settings for `brokers` with the defaults: 6 partitions, the brokers' default
    /// replication, 5 connection attempts starting 1 s apart.
    pub fn new(brokers: impl Into<String>) -> Self {
        KafkaConfig {
            brokers: brokers.into(),
            api_key: None,
            api_secret: None,
            properties: Vec::new(),
            partitions: 6,
            replication: None,
            topic_config: Vec::new(),
            connect_attempts: 5,
            connect_backoff: Duration::from_secs(1),
        }
    }

    /// The client settings every connection shares.
    pub(crate) fn client_config(&self) -> ClientConfig {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &self.brokers);
        if let (Some(key), Some(secret)) = (&self.api_key, &self.api_secret) {
            c.set("security.protocol", "SASL_SSL")
                .set("sasl.mechanisms", "PLAIN")
                .set("sasl.username", key)
                .set("sasl.password", secret);
        }
        for (k, v) in &self.properties {
            c.set(k, v);
        }
        c
    }

    /// `c` with the passed-through properties applied last, so that they win over a
    /// connection's own defaults.
    pub(crate) fn overridden(&self, mut c: ClientConfig) -> ClientConfig {
        for (k, v) in &self.properties {
            c.set(k, v);
        }
        c
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_never_printed() {
        let mut c = KafkaConfig::new("b:9092");
        c.api_key = Some("KEY".into());
        c.api_secret = Some("hunter2".into());
        c.properties = vec![
            ("sasl.password".into(), "swordfish".into()),
            ("linger.ms".into(), "7".into()),
        ];
        let shown = format!("{c:?}");
        assert!(
            !shown.contains("hunter2") && !shown.contains("swordfish"),
            "{shown}"
        );
        assert!(
            shown.contains("linger.ms") && shown.contains('7'),
            "{shown}"
        );
    }
}
