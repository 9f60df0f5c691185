//! StreamCity's event generator. A scenario file declares topics, keys and value
//! fields with generators (constants, sequences, distributions, weighted choices, ids
//! from pools, timestamps, places in the twin's city, references between the records
//! of one event, counters per key, entities moving on the streets), and streams with
//! rates, gaps, bursts and a time-of-day profile. The seeds' generators ship as
//! scenarios (`civicsense`, `user-events`, `retail`, `ridematch`). Seeded: the same
//! seed, file and city make the same records.

pub mod avro;
pub mod city;
pub mod engine;
pub mod generator;
pub mod scenario;
pub mod shipped;
pub mod timing;
pub mod value;

pub use engine::{Engine, Made, Pace};
pub use scenario::Scenario;
pub use timing::parse_duration;
pub use value::Val;

/// A scenario that cannot be used, and why, naming the place in its file.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    /// Not TOML.
    #[error("{origin}: not a valid TOML file: {message}")]
    Toml {
        /// The file.
        origin: String,
        /// The parser's message.
        message: String,
    },
    /// TOML, but not a scenario.
    #[error("{}{path}: {message}", origin.as_deref().map(|o| format!("{o}: ")).unwrap_or_default())]
    Invalid {
        /// The file, once known.
        origin: Option<String>,
        /// Where in it, e.g. `streams[0].events[1].records[0].value.price`.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// Not a shipped scenario's name, nor a file.
    #[error("no scenario {0:?}: give a shipped scenario's name ({names}) or a scenario file's path", names = shipped::NAMES.join(", "))]
    Unknown(String),
    /// The file could not be read.
    #[error("cannot read the scenario {0}: {1}")]
    Read(String, std::io::Error),
}

impl ScenarioError {
    /// An error at `path` of the file.
    pub fn at(path: &str, message: String) -> ScenarioError {
        ScenarioError::Invalid {
            origin: None,
            path: path.to_owned(),
            message,
        }
    }

    fn in_file(self, file: &str) -> ScenarioError {
        match self {
            ScenarioError::Invalid { path, message, .. } => ScenarioError::Invalid {
                origin: Some(file.to_owned()),
                path,
                message,
            },
            other => other,
        }
    }
}
