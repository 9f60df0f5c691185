//! A file's worth of one topic's records, held column by column until written as one
//! Parquet file (zstd-compressed, one row group).

use std::io::Write;
use std::sync::Arc;

use parquet::basic::{Compression, ZstdLevel};
use parquet::data_type::{ByteArray, ByteArrayType, DoubleType, Int32Type, Int64Type};
use parquet::file::properties::WriterProperties;
use parquet::file::writer::SerializedFileWriter;
use serde_json::{Map, Value};
use streamcity_core::Delivery;

use crate::schema::{Field, Kind, message_type};

/// The values of one nullable column, and which rows have one.
#[derive(Debug)]
enum Values {
    Bytes(Vec<ByteArray>),
    Int(Vec<i64>),
    Real(Vec<f64>),
}

#[derive(Debug)]
struct Column {
    /// 1 where the row has a value, 0 where it is null.
    defined: Vec<i16>,
    values: Values,
}

impl Column {
    fn new(kind: Kind) -> Column {
        let values = match kind {
            Kind::Text | Kind::Json => Values::Bytes(Vec::new()),
            Kind::Int | Kind::Time => Values::Int(Vec::new()),
            Kind::Real => Values::Real(Vec::new()),
        };
        Column {
            defined: Vec::new(),
            values,
        }
    }

    fn bytes() -> Column {
        Column::new(Kind::Text)
    }

    fn null(&mut self) {
        self.defined.push(0);
    }

    fn push_bytes(&mut self, bytes: Vec<u8>) {
        if let Values::Bytes(v) = &mut self.values {
            v.push(ByteArray::from(bytes));
            self.defined.push(1);
        } else {
            self.null();
        }
    }

    /// Takes `value` if it has the column's kind; hands it back otherwise.
    fn take(&mut self, kind: Kind, value: Value) -> Result<(), Value> {
        match (kind, &mut self.values, value) {
            (_, _, Value::Null) => self.null(),
            (Kind::Text, Values::Bytes(v), Value::String(s)) => {
                v.push(ByteArray::from(s.into_bytes()));
                self.defined.push(1);
            }
            (Kind::Json, Values::Bytes(v), value) => {
                v.push(ByteArray::from(value.to_string().into_bytes()));
                self.defined.push(1);
            }
            (Kind::Int | Kind::Time, Values::Int(v), Value::Number(n)) if n.as_i64().is_some() => {
                v.push(n.as_i64().unwrap_or_default());
                self.defined.push(1);
            }
            (Kind::Real, Values::Real(v), Value::Number(n)) if n.as_f64().is_some() => {
                v.push(n.as_f64().unwrap_or_default());
                self.defined.push(1);
            }
            (_, _, other) => return Err(other),
        }
        Ok(())
    }
}

/// Records of one topic, column by column.
#[derive(Debug)]
pub struct Table {
    topic: Arc<str>,
    fields: &'static [Field],
    partition: Vec<i32>,
    offset: Vec<i64>,
    key: Vec<ByteArray>,
    timestamp: Vec<i64>,
    columns: Vec<Column>,
    extra: Column,
    raw: Column,
}

impl Table {
    /// An empty table of `topic`'s records, with columns for `fields`.
    pub fn new(topic: &Arc<str>, fields: &'static [Field]) -> Table {
        Table {
            topic: Arc::clone(topic),
            fields,
            partition: Vec::new(),
            offset: Vec::new(),
            key: Vec::new(),
            timestamp: Vec::new(),
            columns: fields.iter().map(|f| Column::new(f.kind)).collect(),
            extra: Column::bytes(),
            raw: Column::bytes(),
        }
    }

    /// How many records it holds.
    pub fn len(&self) -> usize {
        self.offset.len()
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.offset.is_empty()
    }

    /// The offsets of its first and last records.
    pub fn offsets(&self) -> Option<(i64, i64)> {
        Some((*self.offset.first()?, *self.offset.last()?))
    }

    /// Adds a record: its payload's fields to their columns, what has no column to
    /// `_extra`, a payload that is not a JSON object (or belongs to a topic kept as
    /// received) to `_raw`.
    pub fn push(&mut self, delivery: &Delivery) {
        let record = &delivery.record;
        self.partition.push(delivery.partition);
        self.offset.push(delivery.offset);
        self.key
            .push(ByteArray::from(record.key_str().into_owned().into_bytes()));
        self.timestamp.push(record.timestamp);
        let object = if self.fields.is_empty() {
            None
        } else {
            match serde_json::from_slice::<Value>(&record.payload) {
                Ok(Value::Object(object)) => Some(object),
                _ => None,
            }
        };
        let Some(mut object) = object else {
            for column in &mut self.columns {
                column.null();
            }
            self.extra.null();
            self.raw.push_bytes(record.payload.to_vec());
            return;
        };
        let mut extra = Map::new();
        for (field, column) in self.fields.iter().zip(&mut self.columns) {
            match object.remove(field.name) {
                None => column.null(),
                Some(value) => {
                    if let Err(value) = column.take(field.kind, value) {
                        column.null();
                        extra.insert(field.name.to_owned(), value);
                    }
                }
            }
        }
        extra.extend(object);
        if extra.is_empty() {
            self.extra.null();
        } else {
            self.extra
                .push_bytes(Value::Object(extra).to_string().into_bytes());
        }
        self.raw.null();
    }

    /// Writes the table as one Parquet file to `out`; returns `out`.
    pub fn write<W: Write + Send>(&self, out: W) -> parquet::errors::Result<W> {
        let schema = Arc::new(parquet::schema::parser::parse_message_type(&message_type(
            &self.topic,
            self.fields,
        ))?);
        let props = WriterProperties::builder()
            .set_compression(Compression::ZSTD(ZstdLevel::try_new(3)?))
            .set_created_by(concat!("streamcity ", env!("CARGO_PKG_VERSION")).to_owned())
            .build();
        let mut writer = SerializedFileWriter::new(out, schema, Arc::new(props))?;
        let mut group = writer.next_row_group()?;
        let mut index = 0;
        while let Some(mut column) = group.next_column()? {
            match index {
                0 => {
                    column
                        .typed::<Int32Type>()
                        .write_batch(&self.partition, None, None)?;
                }
                1 => {
                    column
                        .typed::<Int64Type>()
                        .write_batch(&self.offset, None, None)?;
                }
                2 => {
                    column
                        .typed::<ByteArrayType>()
                        .write_batch(&self.key, None, None)?;
                }
                3 => {
                    column
                        .typed::<Int64Type>()
                        .write_batch(&self.timestamp, None, None)?;
                }
                n => {
                    let data = self
                        .columns
                        .get(n - 4)
                        .or_else(|| {
                            [&self.extra, &self.raw]
                                .get(n - 4 - self.columns.len())
                                .copied()
                        })
                        .ok_or_else(|| {
                            parquet::errors::ParquetError::General(format!(
                                "column {n} is not in the table"
                            ))
                        })?;
                    let defined = Some(&data.defined[..]);
                    match &data.values {
                        Values::Bytes(v) => {
                            column
                                .typed::<ByteArrayType>()
                                .write_batch(v, defined, None)?;
                        }
                        Values::Int(v) => {
                            column.typed::<Int64Type>().write_batch(v, defined, None)?;
                        }
                        Values::Real(v) => {
                            column.typed::<DoubleType>().write_batch(v, defined, None)?;
                        }
                    }
                }
            }
            column.close()?;
            index += 1;
        }
        group.close()?;
        writer.into_inner()
    }
}
