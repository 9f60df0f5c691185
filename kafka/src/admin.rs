//! Topics: those missing are created, laid out as the stages need (the `network` topic
//! with one partition, it and `live_vehicle_table` compacted), with the replication
//! factor and topic settings asked for; those present are checked.

use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::producer::Producer;
use rdkafka::util::Timeout;
use streamcity_core::{BusError, Topics};

use crate::{KafkaBus, KafkaConfig, backend};

/// How a missing topic is created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicSpec {
    /// Its name.
    pub name: String,
    /// Its partitions.
    pub partitions: i32,
    /// Its replication factor; `None` for the brokers' default.
    pub replication: Option<i16>,
    /// Its settings, e.g. `cleanup.policy=compact`.
    pub config: Vec<(String, String)>,
}

/// How the topics of `topics` that are not in `existing` would be created: the
/// configured partitions (one for the `network` topic), replication and settings, the
/// tables compacted (the settings given win over that).
pub fn plan(topics: &Topics, config: &KafkaConfig, existing: &[String]) -> Vec<TopicSpec> {
    topics
        .all()
        .into_iter()
        .filter(|t| !existing.iter().any(|e| **e == ***t))
        .map(|t| {
            let mut settings = Vec::new();
            let table = [
                &topics.live_vehicle_table,
                &topics.network,
                &topics.alert_actions,
            ];
            if table.contains(&t) {
                settings.push(("cleanup.policy".to_owned(), "compact".to_owned()));
            }
            for (k, v) in &config.topic_config {
                settings.retain(|(key, _)| key != k);
                settings.push((k.clone(), v.clone()));
            }
            TopicSpec {
                name: t.to_string(),
                partitions: if *t == topics.network || *t == topics.alert_actions {
                    1
                } else {
                    config.partitions
                },
                replication: config.replication,
                config: settings,
            }
        })
        .collect()
}

fn names(metadata: &rdkafka::metadata::Metadata) -> Vec<String> {
    metadata
        .topics()
        .iter()
        .map(|t| t.name().to_owned())
        .collect()
}

impl KafkaBus {
    /// Creates the topics that do not exist yet ([`plan`]) and checks those that do.
    /// Asks the brokers which exist first, so nothing is requested when they all do
    /// (clusters that forbid creating topics are fine then).
    pub async fn ensure_topics(&self, topics: &Topics) -> Result<(), BusError> {
        let metadata = self.metadata().await?;
        if let Some(t) = metadata
            .topics()
            .iter()
            .find(|t| t.name() == &*topics.network && t.partitions().len() > 1)
        {
            return Err(BusError::Backend(format!(
                "topic {} has {} partitions; the network topic must have exactly one (delete it, or use another --topic-prefix)",
                t.name(),
                t.partitions().len()
            )));
        }
        let existing = names(&metadata);
        self.create(plan(topics, self.config(), &existing)).await
    }

    /// Creates the topics named that do not exist yet, with the configured
    /// partitions, replication and settings (a scenario's topics).
    pub async fn ensure_named_topics(&self, topics: &[String]) -> Result<(), BusError> {
        let existing = names(&self.metadata().await?);
        let config = self.config();
        let missing = topics
            .iter()
            .filter(|t| !existing.contains(t))
            .map(|t| TopicSpec {
                name: t.clone(),
                partitions: config.partitions,
                replication: config.replication,
                config: config.topic_config.clone(),
            })
            .collect();
        self.create(missing).await
    }

    async fn metadata(&self) -> Result<rdkafka::metadata::Metadata, BusError> {
        let p = self.producer();
        tokio::task::spawn_blocking(move || {
            p.client()
                .fetch_metadata(None, Timeout::After(Duration::from_secs(10)))
        })
        .await
        .map_err(|e| backend("metadata request", e))?
        .map_err(|e| backend("listing topics", e))
    }

    async fn create(&self, missing: Vec<TopicSpec>) -> Result<(), BusError> {
        if missing.is_empty() {
            return Ok(());
        }
        let admin: AdminClient<crate::logs::Quiet> = self
            .config()
            .client_config()
            .create_with_context(crate::logs::Quiet)
            .map_err(|e| backend("Kafka admin client", e))?;
        let new: Vec<NewTopic<'_>> = missing
            .iter()
            .map(|spec| {
                // -1: the brokers' default replication factor (KIP-464).
                let replication = spec.replication.map_or(-1, i32::from);
                let mut t = NewTopic::new(
                    &spec.name,
                    spec.partitions,
                    TopicReplication::Fixed(replication),
                );
                for (k, v) in &spec.config {
                    t = t.set(k, v);
                }
                t
            })
            .collect();
        let results = admin
            .create_topics(
                new.iter(),
                &AdminOptions::new().operation_timeout(Some(Duration::from_secs(10))),
            )
            .await
            .map_err(|e| backend("creating topics", e))?;
        for result in results {
            match result {
                Ok(name) => tracing::info!(topic = %name, "Topic created"),
                Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                Err((name, code)) => {
                    return Err(BusError::Backend(format!(
                        "creating topic {name}: {code} (replication factor {}; set it with --replication-factor, topic settings with --topic-config)",
                        self.config()
                            .replication
                            .map_or("the brokers' default".to_owned(), |r| r.to_string())
                    )));
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_topics_are_planned_with_the_settings_asked_for() {
        let topics = Topics::with_prefix("p-");
        let mut config = KafkaConfig::new("b:9092");
        let all = plan(&topics, &config, &[]);
        assert_eq!(all.len(), topics.all().len());
        assert!(
            all.iter().all(|t| t.replication.is_none()),
            "the brokers' default"
        );
        let network = all.iter().find(|t| t.name == "p-network").unwrap();
        assert_eq!(network.partitions, 1);
        assert_eq!(
            network.config,
            [("cleanup.policy".into(), "compact".into())]
        );

        config.replication = Some(3);
        config.partitions = 12;
        config.topic_config = vec![("retention.ms".into(), "3600000".into())];
        let existing = vec!["p-alerts".to_owned()];
        let some = plan(&topics, &config, &existing);
        assert_eq!(some.len(), topics.all().len() - 1);
        assert!(some.iter().all(|t| t.replication == Some(3)));
        let table = some
            .iter()
            .find(|t| t.name == "p-live_vehicle_table")
            .unwrap();
        assert_eq!(table.partitions, 12);
        assert!(
            table
                .config
                .contains(&("cleanup.policy".into(), "compact".into()))
        );
        assert!(
            table
                .config
                .contains(&("retention.ms".into(), "3600000".into()))
        );
        // A setting given wins over the default compaction.
        config.topic_config = vec![("cleanup.policy".into(), "compact,delete".into())];
        let table = plan(&topics, &config, &[])
            .into_iter()
            .find(|t| t.name == "p-live_vehicle_table")
            .unwrap();
        assert_eq!(
            table.config,
            [("cleanup.policy".into(), "compact,delete".into())]
        );
    }
}
