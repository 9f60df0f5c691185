//! StreamCity's contract: the event types and their wire format, the topic names,
//! the [`Bus`] trait with its in-memory implementation, and the [`Clock`].
//!
//! Every other crate depends on this one; it depends on nothing of ours.
//! Start reading at [`event`] for what flows, then [`bus`] for how it flows.

pub mod bus;
pub mod clock;
pub mod error_chain;
pub mod event;
pub mod geo;
pub mod membership;
pub mod query;
pub mod throttle;
pub mod topic;

pub use bus::{Bus, BusError, Delivery, MemoryBus, Record, StartFrom, Subscribe, Subscription};
pub use clock::{Clock, ClockReading, ManualClock, ScaledClock, SharedClock, SystemClock};
pub use error_chain::error_chain;
pub use event::*;
pub use topic::Topics;

/// Cancels long-running stages: every runner takes one and stops cleanly, flushing
/// what it has in flight, when it is cancelled.
pub use tokio_util::sync::CancellationToken;
