//! StreamCity's simulators: the twin's events, made from a transit network
//! (`streamcity-network`).
//!
//! - [`sim`]: the simulation core, a plain state machine stepped through time;
//! - [`arrivals`]: when discrete events happen (Poisson or uniform gaps, bursts);
//! - [`civic`]: city incidents after the CivicSense seed, with their transit effects;
//! - [`runner`]: the async shell that paces the core with a clock and publishes its
//!   events to the bus; [`pace`]: whether it keeps the speed asked of it.

pub mod arrivals;
pub mod civic;
pub mod pace;
pub mod runner;
pub mod sim;

pub use sim::{SimConfig, SimEvent, Simulation};
