//! A Confluent-compatible schema registry, as a producer uses it: a topic's value
//! schema is registered under the subject `<topic>-value` (the registry's default
//! TopicNameStrategy), and the id it answers goes in every record's header.

use std::time::Duration;

use anyhow::{Context as _, bail};

/// Registers the Avro schema `schema_json` for `topic`'s values at the registry `url`
/// and returns its id (the same id again for a schema registered before).
pub async fn register(
    client: &reqwest::Client,
    url: &str,
    topic: &str,
    schema_json: &str,
) -> anyhow::Result<u32> {
    let subject = format!("{topic}-value");
    let endpoint = format!("{}/subjects/{subject}/versions", url.trim_end_matches('/'));
    let response = client
        .post(&endpoint)
        .header(
            reqwest::header::CONTENT_TYPE,
            "application/vnd.schemaregistry.v1+json",
        )
        .body(serde_json::json!({ "schema": schema_json }).to_string())
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .with_context(|| format!("the schema registry at {url} cannot be reached"))?;
    let status = response.status();
    let body = response.text().await.unwrap_or_default();
    if !status.is_success() {
        bail!(
            "the schema registry refused the schema of {subject}: {status} {}",
            body.chars().take(500).collect::<String>()
        );
    }
    let answer: serde_json::Value = serde_json::from_str(&body)
        .with_context(|| format!("the schema registry answered {subject} with {body:?}"))?;
    answer["id"]
        .as_u64()
        .and_then(|id| u32::try_from(id).ok())
        .with_context(|| format!("the schema registry gave no id for {subject}: {body}"))
}
