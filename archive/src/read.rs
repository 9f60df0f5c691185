//! Archived records read back from a Parquet file, with their payloads rebuilt: the
//! event's columns and `_extra` as a JSON object, or `_raw` as it was.

use std::fs::File;
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use parquet::file::reader::{FileReader, SerializedFileReader};
use parquet::record::Field as Cell;
use serde_json::{Map, Value};
use streamcity_core::{Delivery, Record};

use crate::schema::{Field, Kind};

/// What can go wrong reading an archive.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The file could not be opened.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not a Parquet file the archive wrote.
    #[error("{path} is not an archive file: {why}")]
    Format {
        /// The file.
        path: String,
        /// Why.
        why: String,
    },
}

/// Every record of the archive file at `path`, of `topic` (whose event columns are
/// `fields`), in the file's order (their offsets' order), with the partition and
/// offset they had.
pub fn read_file(
    path: &Path,
    topic: &Arc<str>,
    fields: &[Field],
) -> Result<Vec<Delivery>, ReadError> {
    let name = path.display().to_string();
    let format = |why: String| ReadError::Format {
        path: name.clone(),
        why,
    };
    let file = File::open(path).map_err(|source| ReadError::Io {
        path: name.clone(),
        source,
    })?;
    let reader = SerializedFileReader::new(file).map_err(|e| format(e.to_string()))?;
    let rows = reader.metadata().file_metadata().num_rows();
    let mut out = Vec::with_capacity(usize::try_from(rows).unwrap_or(0).min(1 << 20));
    for row in reader.into_iter() {
        let row = row.map_err(|e| format(e.to_string()))?;
        let mut partition = None;
        let mut offset = None;
        let mut key = String::new();
        let mut timestamp = None;
        let mut raw: Option<Vec<u8>> = None;
        let mut object = Map::new();
        for (column, cell) in row.get_column_iter() {
            match (column.as_str(), cell) {
                ("_partition", Cell::Int(p)) => partition = Some(*p),
                ("_offset", Cell::Long(o)) => offset = Some(*o),
                ("_key", Cell::Str(k)) => key.clone_from(k),
                ("_timestamp", Cell::TimestampMillis(t) | Cell::Long(t)) => timestamp = Some(*t),
                ("_raw", Cell::Bytes(b)) => raw = Some(b.data().to_vec()),
                ("_raw", Cell::Str(s)) => raw = Some(s.as_bytes().to_vec()),
                ("_extra", Cell::Str(s)) => {
                    if let Ok(Value::Object(extra)) = serde_json::from_str::<Value>(s) {
                        object.extend(extra);
                    }
                }
                (_, Cell::Null) => {}
                (name, cell) => {
                    let json = fields
                        .iter()
                        .any(|f| f.name == name && f.kind == Kind::Json);
                    if let Some(value) = json_of(cell, json) {
                        object.insert(name.to_owned(), value);
                    }
                }
            }
        }
        let (Some(partition), Some(offset), Some(timestamp)) = (partition, offset, timestamp)
        else {
            return Err(format(
                "a row lacks _partition, _offset or _timestamp".into(),
            ));
        };
        let payload = match raw {
            Some(raw) => Bytes::from(raw),
            None => Bytes::from(Value::Object(object).to_string()),
        };
        out.push(Delivery {
            record: Record::new(topic, Bytes::from(key), payload, timestamp),
            partition,
            offset,
        });
    }
    Ok(out)
}

/// A cell as the JSON value it came from (`json`: a JSON column, parsed back).
fn json_of(cell: &Cell, json: bool) -> Option<Value> {
    Some(match cell {
        Cell::Str(s) if json => {
            serde_json::from_str(s).unwrap_or_else(|_| Value::String(s.clone()))
        }
        Cell::Str(s) => Value::String(s.clone()),
        Cell::Long(n) | Cell::TimestampMillis(n) => Value::from(*n),
        Cell::Int(n) => Value::from(*n),
        Cell::Double(x) => serde_json::Number::from_f64(*x).map(Value::Number)?,
        Cell::Bool(b) => Value::Bool(*b),
        Cell::Bytes(b) => Value::String(String::from_utf8_lossy(b.data()).into_owned()),
        _ => return None,
    })
}
