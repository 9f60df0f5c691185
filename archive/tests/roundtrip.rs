//! Records through the archive and back: what a replay publishes is what was archived
//! (the same events, keys, timestamps, partitions and offsets), whatever the record:
//! events with every optional field, tombstones, payloads that are not JSON, fields
//! the schema does not know, values of the wrong type. And the archiver on the memory
//! bus writes every record it is given, once, in the folder of its hour.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use serde_json::{Value, json};
use streamcity_archive::archiver::{self, ArchiveConfig, ArchiveStats};
use streamcity_archive::{layout, read, schema, table::Table};
use streamcity_core::bus::MemoryBusConfig;
use streamcity_core::{
    Bus, CancellationToken, Delivery, MemoryBus, Record, StartFrom, Subscribe, Topics,
};

fn delivery(topic: &Arc<str>, key: &str, payload: &[u8], ts: i64, offset: i64) -> Delivery {
    Delivery {
        record: Record::new(topic, key.to_owned(), Bytes::copy_from_slice(payload), ts),
        partition: 2,
        offset,
    }
}

fn same_payload(a: &[u8], b: &[u8]) -> bool {
    match (
        serde_json::from_slice::<Value>(a),
        serde_json::from_slice::<Value>(b),
    ) {
        (Ok(x), Ok(y)) => x == y,
        _ => a == b,
    }
}

#[test]
fn every_kind_of_record_reads_back_as_it_was() {
    let topics = Topics::default();
    let topic = &topics.vehicle_locations;
    let position = json!({
        "vehicle_id": "B01-001", "route_id": "B01", "trip_id": "B01-001-T1",
        "timestamp": 1_796_110_200_123_i64, "lat": 40.712_345_678_9, "lon": -74.000_1,
        "bearing": 123.4, "speed_mps": 8.25, "next_stop_id": "S0001", "passengers": 12,
        "capacity": 80, "occupancy_status": "many_seats_available", "delay_s": -42,
        "status": "stopped_at", "start_date": "20261201", "start_time": "07:30:00",
        "boarded": 3
    });
    let unknown = json!({"vehicle_id": "B01-002", "passengers": "twelve", "colour": [1, 2]});
    let records = vec![
        delivery(
            topic,
            "B01-001",
            position.to_string().as_bytes(),
            1_796_110_200_123,
            10,
        ),
        delivery(
            topic,
            "B01-002",
            unknown.to_string().as_bytes(),
            1_796_110_200_200,
            11,
        ),
        delivery(topic, "B01-003", b"", 1_796_110_200_300, 12),
        delivery(
            topic,
            "B01-004",
            b"\xff\x00 not json",
            1_796_110_200_400,
            13,
        ),
        delivery(topic, "B01-005", b"[1, 2, 3]", 1_796_110_200_500, 14),
    ];
    let fields = schema::fields(&topics, topic);
    let mut table = Table::new(topic, fields);
    for d in &records {
        table.push(d);
    }
    assert_eq!(table.len(), 5);
    assert_eq!(table.offsets(), Some((10, 14)));
    let path = std::env::temp_dir().join(format!("roundtrip-{}.parquet", std::process::id()));
    table.write(std::fs::File::create(&path).unwrap()).unwrap();
    let back = read::read_file(&path, topic, fields).unwrap();
    let _ = std::fs::remove_file(&path);
    assert_eq!(back.len(), records.len());
    for (a, b) in records.iter().zip(&back) {
        assert_eq!(a.partition, b.partition);
        assert_eq!(a.offset, b.offset);
        assert_eq!(a.record.key, b.record.key);
        assert_eq!(a.record.timestamp, b.record.timestamp);
        assert!(
            same_payload(&a.record.payload, &b.record.payload),
            "{:?} came back as {:?}",
            String::from_utf8_lossy(&a.record.payload),
            String::from_utf8_lossy(&b.record.payload)
        );
    }
    // The event decodes to the same value, floats included.
    let original: streamcity_core::VehiclePosition =
        streamcity_core::decode(&records[0].record.payload).unwrap();
    let again: streamcity_core::VehiclePosition =
        streamcity_core::decode(&back[0].record.payload).unwrap();
    assert_eq!(original, again);
}

#[tokio::test]
async fn the_archiver_writes_what_the_bus_brings_into_its_hours() {
    let bus = MemoryBus::new(MemoryBusConfig::default());
    let topics = Topics::with_prefix("t.");
    let dir = std::env::temp_dir().join(format!("archiver-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let spec =
        Subscribe::new(topics.group(archiver::GROUP), &topics.all()).from(StartFrom::Earliest);
    let sub = bus.subscribe(spec.clone()).await.unwrap();
    let mut config = ArchiveConfig::new(dir.clone(), false);
    config.roll_records = 7;
    let stats = Arc::new(ArchiveStats::default());
    let stop = CancellationToken::new();
    let task = tokio::spawn({
        let (bus, topics, stats, stop) = (
            bus.clone(),
            topics.clone(),
            Arc::clone(&stats),
            stop.clone(),
        );
        async move { archiver::run(&bus, spec, sub, topics, config, stats, stop).await }
    });
    // Two hours of taps, a tombstone, and a record that is not JSON.
    let hour = 3_600_000;
    let start = 1_796_108_400_000; // 07:00 UTC
    for i in 0..40_i64 {
        let ts = start + i * hour / 20;
        let tap = json!({"rider_id": format!("C{i}"), "stop_id": "S1", "timestamp": ts});
        bus.publish(Record::new(
            &topics.rider_tapped_on,
            "S1",
            Bytes::from(tap.to_string()),
            ts,
        ))
        .await
        .unwrap();
    }
    bus.publish(Record::new(
        &topics.live_vehicle_table,
        "B1",
        Bytes::new(),
        start,
    ))
    .await
    .unwrap();
    bus.publish(Record::new(
        &topics.dead_letters,
        "x",
        Bytes::from_static(b"{oops"),
        start,
    ))
    .await
    .unwrap();
    tokio::time::timeout(Duration::from_secs(20), async {
        while stats.records.load(std::sync::atomic::Ordering::Relaxed) < 35 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("rolls of 7 records are written as they fill");
    stop.cancel();
    tokio::time::timeout(Duration::from_secs(20), task)
        .await
        .expect("the archiver stops")
        .unwrap()
        .unwrap();
    assert_eq!(stats.records.load(std::sync::atomic::Ordering::Relaxed), 42);
    assert_eq!(stats.pending.load(std::sync::atomic::Ordering::Relaxed), 0);

    let files = layout::files(&dir, &topics.rider_tapped_on).unwrap();
    let hours: std::collections::BTreeSet<i64> = files.iter().map(|f| f.hour).collect();
    assert_eq!(hours.len(), 2, "{files:?}");
    let mut taps = Vec::new();
    for f in &files {
        let fields = schema::fields(&topics, &topics.rider_tapped_on);
        for d in read::read_file(&f.path, &topics.rider_tapped_on, fields).unwrap() {
            assert_eq!(layout::hour_of(d.record.timestamp), f.hour);
            taps.push(d.offset);
        }
    }
    taps.sort_unstable();
    let partition_offsets: Vec<i64> = (0..40).collect();
    assert_eq!(taps, partition_offsets, "every tap once");
    for (topic, payload) in [
        (&topics.live_vehicle_table, &b""[..]),
        (&topics.dead_letters, &b"{oops"[..]),
    ] {
        let files = layout::files(&dir, topic).unwrap();
        assert_eq!(files.len(), 1);
        let back = read::read_file(&files[0].path, topic, schema::fields(&topics, topic)).unwrap();
        assert_eq!(&back[0].record.payload[..], payload);
    }
    let _ = std::fs::remove_dir_all(&dir);
}
