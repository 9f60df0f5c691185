//! Memory of the processor's state: bytes per vehicle (live table row and detector
//! state) and per open surge window, measured by a counting allocator.
//!
//! `cargo bench -p streamcity-processor --bench state_memory`

use streamcity_testkit::alloc as counting_alloc;

use bytes::Bytes;
use streamcity_core::{
    OccupancyStatus, Record, RiderTap, Topics, VehiclePosition, VehicleStatus, encode,
};
use streamcity_processor::{Processor, ProcessorConfig};

#[global_allocator]
static ALLOCATOR: counting_alloc::Counting = counting_alloc::Counting;

const T0: i64 = 1_763_884_800_000;

fn main() {
    let quick = std::env::args().any(|a| a == "--test");
    let (vehicles, stops) = if quick {
        (1_000, 100)
    } else {
        (100_000, 1_000)
    };
    let topics = Topics::default();
    let mut core = Processor::new(topics.clone(), ProcessorConfig::default());
    let mut out = Vec::new();

    let before = counting_alloc::live_bytes();
    for v in 0..vehicles {
        let p = VehiclePosition {
            vehicle_id: format!("B{:02}-{v:05}", v % 50).into(),
            route_id: format!("B{:02}", v % 50).into(),
            trip_id: format!("B{:02}-{v:05}-T0001", v % 50).into(),
            timestamp: T0,
            lat: 40.7,
            lon: -74.0,
            bearing: 90.0,
            speed_mps: 8.0,
            next_stop_id: "S0001".into(),
            passengers: 20,
            capacity: 80,
            occupancy_status: OccupancyStatus::FewSeatsAvailable,
            delay_s: 0,
            status: VehicleStatus::InTransitTo,
            start_date: None,
            start_time: None,
            boarded: None,
        };
        let r = Record::new(
            &topics.vehicle_locations,
            Bytes::copy_from_slice(p.vehicle_id.as_bytes()),
            encode(&p),
            T0,
        );
        core.on_record(&r, 0, T0, &mut out);
        out.clear();
    }
    let table = counting_alloc::live_bytes() - before;

    let before = counting_alloc::live_bytes();
    // Taps at every stop over five minutes: five open hopping windows per stop.
    for i in 0..stops * 10 {
        let stop = format!("S{:04}", i % stops);
        let ts = T0 + (i as i64 * 300_000) / (stops as i64 * 10);
        let tap = RiderTap {
            rider_id: "C1".into(),
            stop_id: stop.as_str().into(),
            route_id: None,
            timestamp: ts,
        };
        let r = Record::new(&topics.rider_tapped_on, Bytes::from(stop), encode(&tap), ts);
        core.on_record(&r, 0, T0, &mut out);
        out.clear();
    }
    let windows = counting_alloc::live_bytes() - before;
    let open = core.open_windows();

    println!(
        "{vehicles} vehicles: {table} bytes, {:.0} bytes per vehicle (table row and detector state)",
        table as f64 / vehicles as f64
    );
    println!(
        "{open} open surge windows at {stops} stops: {windows} bytes, {:.0} bytes per open window",
        windows as f64 / open as f64
    );
}
