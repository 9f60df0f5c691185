//! A timetable's day: every trip that runs on a service day, as scheduled (one run per
//! trip, or one per start of its frequencies), chained into the work of one vehicle by
//! `block_id`; one vehicle per run where there is no block.

use compact_str::format_compact;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use streamcity_core::{Id, TimestampMs};
use streamcity_network::{Date, Network};

/// One run of a trip on a service day.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Leg {
    /// Index into [`Network::trips`].
    pub(super) trip: u32,
    /// Seconds added to the trip's stop times: a trip with frequencies is a template
    /// repeated from each start.
    pub(super) shift_s: i32,
    /// Where the service day's times count from, ms since the epoch
    /// ([`Network::service_day_start_ms`]).
    pub(super) day_ms: TimestampMs,
    /// The service day (the simulated one, which records carry).
    pub(super) date: Date,
}

impl Leg {
    /// When the timetable has it at `seconds` (a stop time of its trip).
    fn at(&self, seconds: u32) -> TimestampMs {
        self.day_ms + (i64::from(seconds) + i64::from(self.shift_s)) * 1000
    }

    /// Scheduled arrival at its `k`-th call.
    pub(super) fn arrival_ms(&self, network: &Network, k: usize) -> TimestampMs {
        self.at(network.trips[self.trip as usize].stop_times[k].arrival_s)
    }

    /// Scheduled departure from its `k`-th call.
    pub(super) fn departure_ms(&self, network: &Network, k: usize) -> TimestampMs {
        self.at(network.trips[self.trip as usize].stop_times[k].departure_s)
    }

    /// Scheduled departure from its first stop.
    pub(super) fn start_ms(&self, network: &Network) -> TimestampMs {
        self.departure_ms(network, 0)
    }

    /// Scheduled arrival at its last stop.
    pub(super) fn end_ms(&self, network: &Network) -> TimestampMs {
        let calls = network.trips[self.trip as usize].stop_times.len();
        self.arrival_ms(network, calls - 1)
    }

    /// Its start as GTFS-realtime writes it: `HH:MM:SS` of the service day.
    pub(super) fn start_time(&self, network: &Network) -> Id {
        let first = network.trips[self.trip as usize].start_s();
        let s = (i64::from(first) + i64::from(self.shift_s)).max(0);
        Id::from(streamcity_network::calendar::service_time(s as u32))
    }
}

/// A vehicle's work on a service day: its runs, in order.
#[derive(Debug, Clone)]
pub(super) struct Block {
    /// The vehicle running it: the block's id, or the trip's (with its start for a
    /// trip repeated by frequencies).
    pub(super) vehicle_id: Id,
    pub(super) legs: Box<[Leg]>,
}

impl Block {
    pub(super) fn start_ms(&self, network: &Network) -> TimestampMs {
        self.legs[0].start_ms(network)
    }

    pub(super) fn end_ms(&self, network: &Network) -> TimestampMs {
        self.legs[self.legs.len() - 1].end_ms(network)
    }
}

/// The blocks of the simulated service day `date`, which runs the timetable of the
/// feed's day `network.timetable_day(date)`, sorted by their first departure. Starts of
/// frequencies without exact times vary by up to a tenth of the headway.
pub(super) fn blocks_of_day(network: &Network, date: Date, rng: &mut ChaCha8Rng) -> Vec<Block> {
    let Some(feed_day) = network.timetable_day(date) else {
        return Vec::new();
    };
    let day_ms = network.service_day_start_ms(date);
    let mut by_block: std::collections::BTreeMap<&str, Vec<Leg>> = Default::default();
    let mut blocks = Vec::new();
    for t in network.trips_on(feed_day) {
        let trip = &network.trips[t];
        let leg = |shift_s: i32| Leg {
            trip: t as u32,
            shift_s,
            day_ms,
            date,
        };
        if trip.frequencies.is_empty() {
            match &trip.block_id {
                Some(b) => by_block.entry(b.as_str()).or_default().push(leg(0)),
                None => blocks.push(Block {
                    vehicle_id: trip.trip_id.clone(),
                    legs: Box::new([leg(0)]),
                }),
            }
            continue;
        }
        // A template repeated: one vehicle per start (a block cannot chain runs whose
        // times the timetable does not give).
        let first = trip.stop_times[0].departure_s as i32;
        for f in &trip.frequencies {
            for start in f.starts() {
                let jitter = if f.exact_times {
                    0
                } else {
                    let spread = (f.headway_s / 10) as i32;
                    rng.random_range(-spread..=spread)
                };
                let at = (start as i32 + jitter).max(0);
                blocks.push(Block {
                    vehicle_id: format_compact!(
                        "{}@{:02}{:02}",
                        trip.trip_id,
                        start / 3600,
                        start / 60 % 60
                    ),
                    legs: Box::new([leg(at - first)]),
                });
            }
        }
    }
    for (block_id, mut legs) in by_block {
        legs.sort_by_key(|l| l.start_ms(network));
        blocks.push(Block {
            vehicle_id: Id::from(block_id),
            legs: legs.into_boxed_slice(),
        });
    }
    blocks.sort_by(|a, b| {
        a.start_ms(network)
            .cmp(&b.start_ms(network))
            .then_with(|| a.vehicle_id.cmp(&b.vehicle_id))
    });
    blocks
}

/// The blocks still to start, loaded a service day at a time.
#[derive(Debug, Clone)]
pub(super) struct Timetable {
    /// Blocks not yet on the road, latest first (the next is popped from the end).
    pending: Vec<Block>,
    /// The next service day to load.
    next_day: Date,
}

/// How long before its first departure a vehicle appears at its first stop, ms.
pub(super) const SIGN_ON_MS: i64 = 180_000;

impl Timetable {
    /// The timetable from `now`: the blocks of the service day before (trips past
    /// midnight) and of today that have not ended.
    pub(super) fn new(network: &Network, now: TimestampMs, rng: &mut ChaCha8Rng) -> Self {
        let today = network.local_date(now);
        let mut t = Timetable {
            pending: Vec::new(),
            next_day: Date::from_days(today.days() - 1),
        };
        t.load_due(network, now, rng);
        t
    }

    fn load_day(&mut self, network: &Network, now: TimestampMs, rng: &mut ChaCha8Rng) {
        let mut blocks = blocks_of_day(network, self.next_day, rng);
        blocks.retain(|b| b.end_ms(network) > now);
        self.pending.extend(blocks);
        self.pending.sort_by(|a, b| {
            b.start_ms(network)
                .cmp(&a.start_ms(network))
                .then_with(|| b.vehicle_id.cmp(&a.vehicle_id))
        });
        self.next_day = Date::from_days(self.next_day.days() + 1);
    }

    /// Loads the next service day once `now` is within an hour of its midnight.
    fn load_due(&mut self, network: &Network, now: TimestampMs, rng: &mut ChaCha8Rng) {
        while network.service_day_start_ms(self.next_day) - 3_600_000 <= now {
            self.load_day(network, now, rng);
        }
    }

    /// The blocks due on the road by `now` (their first departure within
    /// [`SIGN_ON_MS`]), in order.
    pub(super) fn due(
        &mut self,
        network: &Network,
        now: TimestampMs,
        rng: &mut ChaCha8Rng,
    ) -> Vec<Block> {
        self.load_due(network, now, rng);
        let mut due = Vec::new();
        while self
            .pending
            .last()
            .is_some_and(|b| b.start_ms(network) - SIGN_ON_MS <= now)
        {
            due.extend(self.pending.pop());
        }
        due
    }

    /// Blocks waiting to start.
    pub(super) fn pending(&self) -> usize {
        self.pending.len()
    }
}
