//! StreamCity's history: every topic archived to Parquet files, partitioned by topic,
//! date and hour of event time (`streamcity archive`), and replayed from them onto the
//! bus in event-time order at any speed (`streamcity replay`).
//!
//! - [`schema`]: each topic's columns, typed from the event types.
//! - [`table`]: records held column by column, written as one Parquet file.
//! - [`layout`]: the folders and file names.
//! - [`archiver`]: the stage that writes files and commits offsets only once they are
//!   on disk (nothing lost, nothing written twice across crashes).
//! - [`read`]: files read back into records.
//! - [`replay`]: records published back in event-time order.

pub mod archiver;
pub mod layout;
pub mod read;
pub mod replay;
pub mod schema;
pub mod table;

pub use archiver::{ArchiveConfig, ArchiveError, ArchiveStats};
pub use replay::{ReplayConfig, ReplayError, ReplayStats};
