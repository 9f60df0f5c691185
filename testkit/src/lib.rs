//! What StreamCity's tests and benchmarks share:
//!
//! - [`stage`]: the `streamcity` binary run as a test subject, every wait with a
//!   deadline (a hang is a failure with what the process printed, never a stuck run);
//! - [`tansu`] and [`broker`]: a real Kafka-protocol broker on loopback; [`topic`]:
//!   whole topics read back as they sit in their partitions;
//! - [`twin`]: the twin as a server measured by real WebSocket clients (benchmarks);
//! - [`feeds`]: small GTFS feeds written by hand;
//! - [`results`]: where benchmarks leave their numbers; [`alloc`]: a counting allocator
//!   for the memory benchmarks.

#[allow(unsafe_code)] // a GlobalAlloc wrapper is unsafe by definition; it only counts
pub mod alloc;
pub mod broker;
pub mod feeds;
pub mod results;
pub mod stage;
pub mod tansu;
pub mod topic;
pub mod twin;
