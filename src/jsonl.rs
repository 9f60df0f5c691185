//! A write-only bus that prints records as JSON lines, for `streamcity produce`
//! without Kafka: `{"topic":…,"key":…,"timestamp":…,"value":{…}}` per line, ready for
//! `jq`, a file, or any tool that loads JSON lines into a broker.

use std::io::Write;
use std::sync::{Arc, Mutex, PoisonError};

use streamcity_core::{Bus, BusError, Delivery, Record, Subscribe, Subscription};

/// Prints every published record to a writer, one JSON object per line.
#[derive(Clone)]
pub struct JsonLinesBus {
    out: Arc<Mutex<Box<dyn Write + Send>>>,
}

impl std::fmt::Debug for JsonLinesBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("JsonLinesBus")
    }
}

impl JsonLinesBus {
    /// A bus writing to `out` (buffered by the caller as it sees fit).
    pub fn new(out: Box<dyn Write + Send>) -> Self {
        JsonLinesBus {
            out: Arc::new(Mutex::new(out)),
        }
    }
}

/// Never yields anything: the JSON-lines bus cannot be read.
#[derive(Debug)]
pub struct NoSubscription;

impl Subscription for NoSubscription {
    async fn recv_many(
        &mut self,
        _buf: &mut Vec<Delivery>,
        _limit: usize,
    ) -> Result<usize, BusError> {
        Ok(0)
    }
    fn commit_at(&mut self, _: &Arc<str>, _: i32, _: i64) -> Result<(), BusError> {
        Ok(())
    }
}

impl Bus for JsonLinesBus {
    type Subscription = NoSubscription;

    async fn publish(&self, record: Record) -> Result<(), BusError> {
        let mut out = self.out.lock().unwrap_or_else(PoisonError::into_inner);
        write_record(&mut **out, &record).map_err(write_error)
    }

    async fn flush(&self) -> Result<(), BusError> {
        let mut out = self.out.lock().unwrap_or_else(PoisonError::into_inner);
        out.flush().map_err(write_error)
    }

    async fn subscribe(&self, _spec: Subscribe) -> Result<NoSubscription, BusError> {
        Err(BusError::Backend(
            "the JSON-lines output cannot be read".into(),
        ))
    }
}

/// A reader that went away (`| head`) closes the output; anything else is an error.
fn write_error(e: std::io::Error) -> BusError {
    match e.kind() {
        std::io::ErrorKind::BrokenPipe => BusError::Closed,
        _ => BusError::Backend(format!("writing records: {e}")),
    }
}

pub fn write_record(out: &mut dyn Write, record: &Record) -> std::io::Result<()> {
    out.write_all(b"{\"topic\":")?;
    serde_json::to_writer(&mut *out, &*record.topic)?;
    out.write_all(b",\"key\":")?;
    serde_json::to_writer(&mut *out, &record.key_str())?;
    write!(out, ",\"timestamp\":{},\"value\":", record.timestamp)?;
    // Empty payloads are tombstones.
    if record.payload.is_empty() {
        out.write_all(b"null")?;
    } else {
        out.write_all(&record.payload)?;
    }
    out.write_all(b"}\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<Vec<u8>>>);
    impl Write for Shared {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().write(buf)
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[tokio::test]
    async fn records_become_json_lines() {
        let sink = Shared::default();
        let bus = JsonLinesBus::new(Box::new(sink.clone()));
        let topic: Arc<str> = Arc::from("rider_tapped_on");
        bus.publish(Record::new(
            &topic,
            "S\"1",
            Bytes::from_static(b"{\"a\":1}"),
            7,
        ))
        .await
        .unwrap();
        bus.publish(Record::new(&topic, "S2", Bytes::new(), 8))
            .await
            .unwrap();
        let text = String::from_utf8(sink.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(
            lines[0],
            serde_json::json!({"topic": "rider_tapped_on", "key": "S\"1", "timestamp": 7, "value": {"a": 1}})
        );
        assert_eq!(lines[1]["value"], serde_json::Value::Null);
        assert!(bus.subscribe(Subscribe::new("g", &[&topic])).await.is_err());
    }
}
