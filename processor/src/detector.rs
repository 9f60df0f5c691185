//! The shape every detector shares: an event in, the watermark's advance, and the
//! release of a partition another processor instance takes over. The processor's core
//! ([`crate::Processor`]) decodes a record, keeps the live vehicle table, and hands the
//! event to each detector in turn; each raises and clears its alerts through the
//! [`Context`].

use std::cell::RefCell;

use streamcity_core::{Alert, Id, RiderTap, TimestampMs, VehiclePosition};
use streamcity_network::Network;

use crate::alerts::AlertBook;
use crate::config::ProcessorConfig;
use crate::incidents::{IncidentAreas, IncidentReport};
use crate::table::{VehicleRow, VehicleTable};
use crate::vehicles::VehicleMemory;
use crate::watermark::Watermarks;

/// What a detector is told of one input record.
#[derive(Debug, Clone, Copy)]
pub enum Event<'a> {
    /// A vehicle report accepted into the live table (newer than the row it replaces).
    Position {
        /// The report.
        report: &'a VehiclePosition,
        /// The vehicle's report before it; `None` for a vehicle first seen.
        previous: Option<&'a VehiclePosition>,
        /// The input partition it came from.
        partition: i32,
        /// What the per-vehicle detectors remember of the vehicle (its table row's).
        memory: &'a RefCell<VehicleMemory>,
    },
    /// A rider tapping on.
    Tap {
        /// The tap.
        tap: &'a RiderTap,
        /// The input partition it came from.
        partition: i32,
    },
    /// A traffic or city incident starting, going on or clearing.
    Incident(&'a IncidentReport),
}

/// What a revoked partition takes away from this instance.
#[derive(Debug, Clone, Copy)]
pub enum Handover<'a> {
    /// The vehicles of a revoked partition of the vehicle topic, whose rows have just
    /// left the live table (reports are partitioned by line: their lines go too).
    Vehicles(&'a [VehicleRow]),
    /// A revoked partition of the tap topic: the stops whose taps it carried.
    Taps(i32),
}

/// What a detector works with: the settings, the network, the incidents in force, the
/// watermark, and the alert book through which it raises and clears.
pub struct Context<'a> {
    /// The settings.
    pub config: &'a ProcessorConfig,
    /// The network (stop names and places), when the processor has one.
    pub network: Option<&'a Network>,
    /// Incidents in force: the likely causes of delays.
    pub areas: &'a IncidentAreas,
    /// The watermark, ms since the epoch.
    pub watermark: TimestampMs,
    book: &'a mut AlertBook,
    out: &'a mut Vec<Alert>,
    late: bool,
    /// The input partitions' own event times, and the vehicle topic's name.
    streams: Option<(&'a Watermarks, &'a str)>,
}

impl<'a> Context<'a> {
    /// A context raising into `book`, with the records to publish appended to `out`.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        config: &'a ProcessorConfig,
        network: Option<&'a Network>,
        areas: &'a IncidentAreas,
        watermark: TimestampMs,
        book: &'a mut AlertBook,
        out: &'a mut Vec<Alert>,
    ) -> Self {
        Context {
            config,
            network,
            areas,
            watermark,
            book,
            out,
            late: false,
            streams: None,
        }
    }

    /// The same context, knowing how far each input partition has got.
    pub fn with_streams(mut self, watermarks: &'a Watermarks, vehicle_topic: &'a str) -> Self {
        self.streams = Some((watermarks, vehicle_topic));
        self
    }

    /// The event time partition `partition` of the vehicle topic has reached (its
    /// records agree on), when known: what a vehicle's silence is judged against, so
    /// that a partition not read yet (a backlog, a rebalance) makes no vehicle silent.
    pub fn vehicle_stream_time(&self, partition: i32) -> Option<TimestampMs> {
        let (watermarks, topic) = self.streams?;
        watermarks.partition_time(topic, partition)
    }

    /// Raises `alert` unless one with its id is active.
    pub fn raise(&mut self, alert: Alert) -> bool {
        self.book.raise(alert, self.out)
    }

    /// Clears the active alert `id`, if any, at `ts` with `message`.
    pub fn clear(&mut self, id: &str, ts: TimestampMs, message: String) -> bool {
        self.book.clear(id, ts, Some(message), self.out)
    }

    /// Replaces the active alert of `alert`'s id (an `updated` record).
    pub fn update(&mut self, alert: Alert) -> bool {
        self.book.update(alert, self.out)
    }

    /// Raises `alert` and remembers its id in `slot`, unless `slot` holds one already.
    pub fn raise_into(&mut self, slot: &mut Option<Id>, alert: Alert) {
        if slot.is_none() {
            *slot = Some(alert.alert_id.clone());
            self.raise(alert);
        }
    }

    /// Clears the alert in `slot`, if any.
    pub fn clear_slot(&mut self, slot: &mut Option<Id>, ts: TimestampMs, message: String) {
        if let Some(id) = slot.take() {
            self.clear(&id, ts, message);
        }
    }

    /// The alert book and the alerts raised so far, for detectors that keep their own
    /// raising logic.
    pub fn book_and_out(&mut self) -> (&mut AlertBook, &mut Vec<Alert>) {
        (self.book, self.out)
    }

    /// Marks the event as late: it arrived after every window it belongs to closed.
    pub fn set_late(&mut self) {
        self.late = true;
    }

    /// Whether a detector marked the event as late.
    pub fn is_late(&self) -> bool {
        self.late
    }
}

/// A detector: fed events, told when the watermark moves and when a partition leaves.
pub trait Detector {
    /// An input event.
    fn on_event(&mut self, event: &Event<'_>, cx: &mut Context<'_>);

    /// The watermark moved to `cx.watermark`: close what it passed. `table` is the live
    /// vehicle table.
    fn on_watermark(&mut self, table: &VehicleTable, cx: &mut Context<'_>) {
        let _ = (table, cx);
    }

    /// A partition went to another instance: forget what it brought, ending its alerts
    /// here (the new owner raises its own).
    fn release(&mut self, handover: &Handover<'_>, cx: &mut Context<'_>) {
        let _ = (handover, cx);
    }
}
