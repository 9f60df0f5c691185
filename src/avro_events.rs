//! Avro for the twin's producers (`produce … --format avro`): a schema per input topic
//! from the event types (the same typed fields the archive writes, each nullable, and
//! `_extra` for any field without one, so nothing is lost), each value re-encoded from
//! its JSON, to Kafka in Confluent's wire format or to object container files. The
//! twin's own stages read JSON: Avro topics are for other consumers.

use std::collections::HashMap;
use std::io::Write as _;
use std::sync::{Arc, Mutex, PoisonError};

use apache_avro::Schema;
use apache_avro::types::Value as Avro;
use bytes::Bytes;
use serde_json::{Value as Json, json};
use streamcity_archive::schema::{self, Field, Kind};
use streamcity_core::{Bus, BusError, Record, Subscribe, Topics};

/// One topic's schema.
#[derive(Debug, Clone)]
pub struct TopicAvro {
    /// The schema as JSON text (for a registry).
    pub json: String,
    /// The schema.
    pub schema: Schema,
    fields: &'static [Field],
    /// Its id in a schema registry, once registered.
    pub id: Option<u32>,
}

/// The schemas of the twin's input topics.
#[derive(Debug, Clone)]
pub struct EventAvro {
    topics: HashMap<Arc<str>, TopicAvro>,
}

impl EventAvro {
    /// The schemas of `topics`' inputs: vehicle reports, taps, traffic and city
    /// incidents.
    pub fn new(topics: &Topics) -> anyhow::Result<EventAvro> {
        let mut out = HashMap::new();
        for (topic, name) in [
            (&topics.vehicle_locations, "VehiclePosition"),
            (&topics.rider_tapped_on, "RiderTap"),
            (&topics.rider_tapped_off, "RiderTap"),
            (&topics.traffic_incidents, "TrafficIncident"),
            (&topics.city_incidents, "CityIncident"),
        ] {
            let fields = schema::fields(topics, topic);
            let mut avro_fields: Vec<Json> = fields
                .iter()
                .map(|f| json!({"name": f.name, "type": ["null", kind_schema(f.kind)], "default": null}))
                .collect();
            avro_fields.push(json!({
                "name": "_extra",
                "type": ["null", "string"],
                "default": null,
                "doc": "Fields of the JSON record without a field here, as a JSON object",
            }));
            let schema = json!({
                "type": "record",
                "name": name,
                "namespace": "streamcity.events",
                "fields": avro_fields,
            });
            let text = schema.to_string();
            let parsed = Schema::parse_str(&text)
                .map_err(|e| anyhow::anyhow!("the Avro schema of {topic}: {e}"))?;
            out.insert(
                Arc::clone(topic),
                TopicAvro {
                    json: text,
                    schema: parsed,
                    fields,
                    id: None,
                },
            );
        }
        Ok(EventAvro { topics: out })
    }

    /// The topics and their schemas.
    pub fn topics_mut(&mut self) -> impl Iterator<Item = (&Arc<str>, &mut TopicAvro)> {
        self.topics.iter_mut()
    }

    /// The Avro value of a record's JSON payload, when its topic has a schema.
    pub fn value(&self, record: &Record) -> Option<(&TopicAvro, Avro)> {
        let t = self.topics.get(&record.topic)?;
        let json: Json = serde_json::from_slice(&record.payload).unwrap_or(Json::Null);
        let mut object = match json {
            Json::Object(o) => o,
            other => {
                let mut m = serde_json::Map::new();
                if !other.is_null() {
                    m.insert("_value".into(), other);
                }
                m
            }
        };
        let mut fields = Vec::with_capacity(t.fields.len() + 1);
        for f in t.fields {
            let v = object.remove(f.name).unwrap_or(Json::Null);
            let converted = match (f.kind, &v) {
                (_, Json::Null) => None,
                (Kind::Text, Json::String(s)) => Some(Avro::String(s.clone())),
                (Kind::Int | Kind::Time, Json::Number(n)) if n.as_i64().is_some() => {
                    n.as_i64().map(Avro::Long)
                }
                (Kind::Real, Json::Number(n)) => n.as_f64().map(Avro::Double),
                // The events' lists are lists of text (groups, instructions, lines).
                (Kind::Json, Json::Array(items)) if items.iter().all(Json::is_string) => {
                    Some(Avro::Array(
                        items
                            .iter()
                            .map(|i| Avro::String(i.as_str().unwrap_or_default().to_owned()))
                            .collect(),
                    ))
                }
                // Not of its field's type: kept in `_extra` instead.
                _ => {
                    object.insert(f.name.to_owned(), v.clone());
                    None
                }
            };
            fields.push((
                f.name.to_owned(),
                match converted {
                    Some(v) => Avro::Union(1, Box::new(v)),
                    None => Avro::Union(0, Box::new(Avro::Null)),
                },
            ));
        }
        fields.push((
            "_extra".to_owned(),
            if object.is_empty() {
                Avro::Union(0, Box::new(Avro::Null))
            } else {
                Avro::Union(1, Box::new(Avro::String(Json::Object(object).to_string())))
            },
        ));
        Some((t, Avro::Record(fields)))
    }

    /// A record with its value in Avro (Confluent's wire format when its schema has
    /// an id), or as it was when its topic has no schema (the network, the clock).
    pub fn encode(&self, mut record: Record) -> Result<Record, BusError> {
        let Some((t, value)) = self.value(&record) else {
            return Ok(record);
        };
        let datum = apache_avro::to_avro_datum(&t.schema, value)
            .map_err(|e| BusError::Backend(format!("Avro for {}: {e}", record.topic)))?;
        let mut out = Vec::with_capacity(datum.len() + 5);
        if let Some(id) = t.id {
            out.push(0);
            out.extend_from_slice(&id.to_be_bytes());
        }
        out.extend_from_slice(&datum);
        record.payload = Bytes::from(out);
        Ok(record)
    }
}

fn kind_schema(kind: Kind) -> Json {
    match kind {
        Kind::Text => json!("string"),
        Kind::Json => json!({"type": "array", "items": "string"}),
        Kind::Int => json!("long"),
        Kind::Real => json!("double"),
        Kind::Time => json!({"type": "long", "logicalType": "timestamp-millis"}),
    }
}

/// A bus that writes the values of the twin's input topics in Avro before another bus
/// takes them.
#[derive(Debug, Clone)]
pub struct AvroBus<B> {
    inner: B,
    avro: Option<Arc<EventAvro>>,
}

impl<B> AvroBus<B> {
    /// `inner`, its input topics' values written in Avro (with `None`, as they are).
    pub fn new(inner: B, avro: Option<EventAvro>) -> Self {
        AvroBus {
            inner,
            avro: avro.map(Arc::new),
        }
    }
}

impl<B: Bus> Bus for AvroBus<B> {
    type Subscription = B::Subscription;

    async fn publish(&self, record: Record) -> Result<(), BusError> {
        match &self.avro {
            Some(avro) => self.inner.publish(avro.encode(record)?).await,
            None => self.inner.publish(record).await,
        }
    }

    async fn flush(&self) -> Result<(), BusError> {
        self.inner.flush().await
    }

    async fn subscribe(&self, spec: Subscribe) -> Result<B::Subscription, BusError> {
        self.inner.subscribe(spec).await
    }

    async fn read_partition(&self, topic: &str, partition: i32) -> Result<Vec<Record>, BusError> {
        self.inner.read_partition(topic, partition).await
    }

    fn keeps_records(&self) -> bool {
        self.inner.keeps_records()
    }

    async fn end_offsets(&self, topic: &str) -> Result<Vec<i64>, BusError> {
        self.inner.end_offsets(topic).await
    }

    async fn read_range(
        &self,
        topic: &str,
        partition: i32,
        from: i64,
        until: Option<i64>,
    ) -> Result<Vec<streamcity_core::Delivery>, BusError> {
        self.inner.read_range(topic, partition, from, until).await
    }
}

type Container = apache_avro::Writer<'static, std::io::BufWriter<std::fs::File>>;

/// A write-only bus that writes the twin's records to Avro object container files,
/// one per topic (`<topic>.avro`) in a folder.
#[derive(Clone)]
pub struct AvroFilesBus {
    avro: Arc<EventAvro>,
    dir: std::path::PathBuf,
    files: Arc<Mutex<HashMap<Arc<str>, Container>>>,
}

impl std::fmt::Debug for AvroFilesBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AvroFilesBus")
            .field("dir", &self.dir)
            .finish()
    }
}

impl AvroFilesBus {
    /// Files in `dir` (created).
    pub fn new(dir: &std::path::Path, avro: EventAvro) -> anyhow::Result<Self> {
        std::fs::create_dir_all(dir)
            .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", dir.display()))?;
        Ok(AvroFilesBus {
            avro: Arc::new(avro),
            dir: dir.to_owned(),
            files: Arc::new(Mutex::new(HashMap::new())),
        })
    }
}

impl Bus for AvroFilesBus {
    type Subscription = crate::jsonl::NoSubscription;

    async fn publish(&self, record: Record) -> Result<(), BusError> {
        let Some((t, value)) = self.avro.value(&record) else {
            // Nothing else is written (a run to files shares no network or clock).
            return Ok(());
        };
        let mut files = self.files.lock().unwrap_or_else(PoisonError::into_inner);
        if !files.contains_key(&record.topic) {
            let path = self.dir.join(format!("{}.avro", record.topic));
            let file = std::fs::File::create(&path)
                .map_err(|e| BusError::Backend(format!("creating {}: {e}", path.display())))?;
            // The schema lives as long as the process: one per topic, once.
            let schema: &'static Schema = Box::leak(Box::new(t.schema.clone()));
            files.insert(
                Arc::clone(&record.topic),
                apache_avro::Writer::new(schema, std::io::BufWriter::new(file)),
            );
        }
        let writer = files.get_mut(&record.topic).expect("just inserted");
        writer
            .append(value)
            .map(|_| ())
            .map_err(|e| BusError::Backend(format!("writing {}.avro: {e}", record.topic)))
    }

    async fn flush(&self) -> Result<(), BusError> {
        let mut files = self.files.lock().unwrap_or_else(PoisonError::into_inner);
        for (topic, w) in files.iter_mut() {
            w.flush()
                .map_err(|e| BusError::Backend(format!("writing {topic}.avro: {e}")))?;
            w.get_mut()
                .flush()
                .map_err(|e| BusError::Backend(format!("writing {topic}.avro: {e}")))?;
        }
        Ok(())
    }

    async fn subscribe(&self, _spec: Subscribe) -> Result<Self::Subscription, BusError> {
        Err(BusError::Backend(
            "Avro files cannot be read back as a bus".into(),
        ))
    }
}
