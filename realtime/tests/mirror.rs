//! Mirror mode's decoding: an agency's feed entities become vehicle reports on the
//! static feed's trips; what cannot be used is counted and nothing else is lost.

#![allow(clippy::unwrap_used)]

use prost::Message as _;
use streamcity_core::{OccupancyStatus, VehicleStatus};
use streamcity_network::{Date, Network, gtfs};
use streamcity_realtime::mirror::{FeedError, Mirror};
use streamcity_realtime::proto::{self, vehicle_position as vp};
use streamcity_testkit::feeds::{feed_dir, small_feed};

/// `hh:mm:ss` on Monday 3 March 2025 in Paris (UTC+1), ms.
fn at(h: i64, m: i64, s: i64) -> i64 {
    Date::from_ymd(2025, 3, 3).days() * 86_400_000 - 3_600_000 + ((h * 60 + m) * 60 + s) * 1000
}

fn network() -> Network {
    let dir = feed_dir("mirror", &small_feed());
    let network = gtfs::load(&dir).unwrap().network;
    std::fs::remove_dir_all(dir).unwrap();
    network
}

/// A vehicle entity on `trip` at (lat, lon), reported at `ts_ms`.
fn vehicle(id: &str, trip: &str, lat: f32, lon: f32, ts_ms: i64) -> proto::FeedEntity {
    proto::FeedEntity {
        id: id.to_owned(),
        vehicle: Some(proto::VehiclePosition {
            trip: Some(proto::TripDescriptor {
                trip_id: Some(trip.to_owned()),
                ..Default::default()
            }),
            vehicle: Some(proto::VehicleDescriptor {
                id: Some(id.to_owned()),
                ..Default::default()
            }),
            position: Some(proto::Position {
                latitude: lat,
                longitude: lon,
                bearing: Some(90.0),
                speed: Some(7.5),
                ..Default::default()
            }),
            timestamp: Some((ts_ms / 1000) as u64),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn feed(ts_ms: i64, entity: Vec<proto::FeedEntity>) -> Vec<u8> {
    proto::FeedMessage {
        header: proto::FeedHeader {
            gtfs_realtime_version: "2.0".to_owned(),
            timestamp: Some((ts_ms / 1000) as u64),
            ..Default::default()
        },
        entity,
    }
    .encode_to_vec()
}

#[test]
fn vehicles_on_the_static_feeds_trips_become_reports_once() {
    let network = network();
    let mut mirror = Mirror::default();
    // B1 at 08:03, between P1 and S2 on R1-a (no stop named: the nearest stop ahead);
    // B2 standing at S3 with a crowd; a vehicle on a trip the static feed lacks; one
    // without a position.
    let mut b2 = vehicle("B2", "R1-a", 48.86, 2.37, at(8, 12, 0));
    {
        let v = b2.vehicle.as_mut().unwrap();
        v.stop_id = Some("S3".to_owned());
        v.current_status = Some(vp::VehicleStopStatus::StoppedAt as i32);
        v.occupancy_percentage = Some(95);
        v.trip.as_mut().unwrap().start_date = Some("20250303".to_owned());
        v.trip.as_mut().unwrap().start_time = Some("08:00:00".to_owned());
    }
    let mut lost = vehicle("B4", "R1-a", 0.0, 0.0, at(8, 3, 0));
    lost.vehicle.as_mut().unwrap().position = None;
    let bytes = feed(
        at(8, 12, 0),
        vec![
            vehicle("B1", "R1-a", 48.8520, 2.3540, at(8, 3, 0)),
            b2,
            vehicle("B3", "NOT-A-TRIP", 48.85, 2.35, at(8, 3, 0)),
            lost,
        ],
    );
    let reports = mirror.take(&network, &bytes, at(8, 12, 5)).unwrap();
    assert_eq!(reports.len(), 2, "{reports:?}");
    let b1 = &reports[0];
    assert_eq!(
        (
            b1.vehicle_id.as_str(),
            b1.trip_id.as_str(),
            b1.route_id.as_str()
        ),
        ("B1", "R1-a", "R1")
    );
    assert_eq!(b1.timestamp, at(8, 3, 0));
    assert_eq!(b1.next_stop_id, "S2");
    assert_eq!(b1.status, VehicleStatus::InTransitTo);
    assert_eq!(b1.start_date.as_deref(), Some("20250303"));
    assert_eq!(b1.start_time.as_deref(), Some("08:00:00"));
    assert_eq!((b1.bearing, b1.speed_mps), (90.0, 7.5));
    // A third of the way from P1 (08:00) to S2 (about 08:04, its time interpolated
    // between P1's and S3's) at 08:03: a minute or so late, not the 3 minutes since
    // P1 nor early against S2's arrival.
    assert!((30..150).contains(&b1.delay_s), "{b1:?}");
    let b2 = &reports[1];
    assert_eq!(b2.status, VehicleStatus::StoppedAt);
    assert_eq!(b2.next_stop_id, "S3");
    // At S3 from 08:10 to 08:11, still there at 08:12: a minute late.
    assert_eq!(b2.delay_s, 60);
    assert_eq!(
        b2.occupancy_status,
        OccupancyStatus::CrushedStandingRoomOnly
    );
    assert_eq!(b2.passengers, b2.capacity * 95 / 100);
    let c = mirror.counts;
    assert_eq!((c.feeds, c.vehicles, c.reports), (1, 4, 2));
    assert_eq!((c.unknown_trip, c.invalid), (1, 1));

    // The same feed again adds nothing; a newer report of B1 does, with the delay a
    // trip update gives its trip.
    assert!(
        mirror
            .take(&network, &bytes, at(8, 12, 20))
            .unwrap()
            .is_empty()
    );
    assert_eq!(mirror.counts.unchanged, 2);
    let update = proto::FeedEntity {
        id: "tu".to_owned(),
        trip_update: Some(proto::TripUpdate {
            trip: proto::TripDescriptor {
                trip_id: Some("R1-a".to_owned()),
                ..Default::default()
            },
            delay: Some(240),
            ..Default::default()
        }),
        ..Default::default()
    };
    let later = feed(
        at(8, 4, 0),
        vec![update, vehicle("B1", "R1-a", 48.8530, 2.3560, at(8, 4, 0))],
    );
    let reports = mirror.take(&network, &later, at(8, 12, 30)).unwrap();
    assert_eq!(reports.len(), 1);
    assert_eq!(reports[0].delay_s, 240);
    assert_eq!(mirror.counts.trip_updates, 1);
}

#[test]
fn broken_feeds_are_counted_and_gzip_is_read() {
    let network = network();
    let mut mirror = Mirror::default();
    for junk in [
        &b"<html>503 Service Unavailable</html>"[..],
        &[0xff; 64][..],
        &[0x1f, 0x8b, 0x08, 0x00, 0x01][..],
    ] {
        assert!(matches!(
            mirror.take(&network, junk, at(8, 0, 0)),
            Err(FeedError::Undecodable(_))
        ));
    }
    // An empty message decodes but has no header version: not a feed either.
    assert!(mirror.take(&network, &[], at(8, 0, 0)).is_err());
    assert_eq!(mirror.counts.undecodable, 4);
    assert_eq!(mirror.counts.feeds, 0);
    // A feed gzip-compressed as some agencies serve their files.
    let bytes = feed(
        at(8, 3, 0),
        vec![vehicle("B1", "R1-a", 48.8520, 2.3540, at(8, 3, 0))],
    );
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    std::io::Write::write_all(&mut gz, &bytes).unwrap();
    let reports = mirror
        .take(&network, &gz.finish().unwrap(), at(8, 3, 5))
        .unwrap();
    assert_eq!(reports.len(), 1);
    // A run named by a start that is not a time: counted, the rest of the feed used.
    let mut odd = vehicle("B9", "R1-a", 48.8520, 2.3540, at(8, 4, 0));
    odd.vehicle
        .as_mut()
        .unwrap()
        .trip
        .as_mut()
        .unwrap()
        .start_time = Some("08:0x:00".to_owned());
    let bytes = feed(
        at(8, 4, 0),
        vec![odd, vehicle("B1", "R1-a", 48.8530, 2.3560, at(8, 4, 0))],
    );
    let reports = mirror.take(&network, &bytes, at(8, 4, 5)).unwrap();
    assert_eq!(reports.len(), 1);
    assert_eq!(mirror.counts.invalid, 1);
}
