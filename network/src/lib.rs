//! StreamCity's transit network: the reference data every stage shares.
//!
//! - [`model`]: the network, shaped after GTFS static (agencies, routes, stops with
//!   parent stations, shapes, trips with stop times and frequencies, services), checked
//!   and prepared for use;
//! - [`synthetic`]: the built-in city, generated from a seed around a centre;
//! - [`gtfs`]: an agency's GTFS feed as a network; [`export`]: a network as a GTFS feed;
//! - [`topic`]: the network and the simulated clock on the bus, so that stages running
//!   apart share one world;
//! - [`geometry`]: polylines in local metres; [`calendar`]: dates and service days.
//!
//! In one process every stage holds the same [`Network`] by reference; on Kafka the
//! producer publishes it and `process` and `serve` read it back ([`topic::wait_for`]).

pub mod calendar;
pub mod export;
pub mod geometry;
pub mod gtfs;
pub mod model;
pub mod synthetic;
pub mod topic;

pub use calendar::Date;
pub use model::{Network, NetworkError, Route, Stop};
pub use synthetic::SyntheticConfig;
