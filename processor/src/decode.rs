//! Input decoding: a record of an input topic becomes an event, or a dead letter that
//! says why it could not.

use bytes::Bytes;
use serde::de::DeserializeOwned;
use streamcity_core::{
    CityIncident, DeadLetter, InvalidEvent, Record, RiderTap, TimestampMs, Topics, TrafficIncident,
    Validate, VehiclePosition, check_not_ahead, decode, encode,
};

/// An input record, decoded.
#[derive(Debug, Clone, PartialEq)]
pub enum Decoded {
    /// From `vehicle_locations`.
    Position(VehiclePosition),
    /// From `rider_tapped_on`.
    Tap(RiderTap),
    /// From `traffic_incidents`.
    Traffic(TrafficIncident),
    /// From `city_incidents`.
    City(CityIncident),
}

impl Decoded {
    /// Its event time, ms since the epoch.
    pub fn event_time(&self) -> TimestampMs {
        match self {
            Decoded::Position(p) => p.timestamp,
            Decoded::Tap(t) => t.timestamp,
            Decoded::Traffic(i) => i.timestamp,
            Decoded::City(i) => i.timestamp,
        }
    }
}

/// Decodes and validates a record of one of the processor's input topics. `latest` is
/// the latest event time of the input so far: a record more than `max_ahead_ms` past
/// it is refused (nothing is compared with a clock).
pub fn decode_input(
    topics: &Topics,
    record: &Record,
    latest: Option<TimestampMs>,
    max_ahead_ms: i64,
) -> Result<Decoded, InvalidEvent> {
    fn checked<T: Validate + DeserializeOwned>(
        payload: &[u8],
        latest: Option<TimestampMs>,
        max_ahead_ms: i64,
    ) -> Result<T, InvalidEvent> {
        let event: T = decode(payload)?;
        event.validate()?;
        check_not_ahead(event.event_time(), latest, max_ahead_ms)?;
        Ok(event)
    }
    let (payload, t) = (&record.payload[..], topics);
    if record.topic == t.vehicle_locations {
        checked(payload, latest, max_ahead_ms).map(Decoded::Position)
    } else if record.topic == t.rider_tapped_on {
        checked(payload, latest, max_ahead_ms).map(Decoded::Tap)
    } else if record.topic == t.traffic_incidents {
        checked(payload, latest, max_ahead_ms).map(Decoded::Traffic)
    } else if record.topic == t.city_incidents {
        checked(payload, latest, max_ahead_ms).map(Decoded::City)
    } else {
        Err(InvalidEvent::Malformed(format!(
            "unexpected topic {}",
            record.topic
        )))
    }
}

/// The `dead_letters` record for a record set aside for `error`.
pub fn dead_letter(topics: &Topics, record: &Record, error: &InvalidEvent) -> Record {
    let letter = DeadLetter {
        source_topic: record.topic.to_string(),
        key: record.key_str().into_owned(),
        error: error.to_string(),
        payload: String::from_utf8_lossy(&record.payload).into_owned(),
        timestamp: record.timestamp,
    };
    Record::new(
        &topics.dead_letters,
        Bytes::clone(&record.key),
        encode(&letter),
        record.timestamp,
    )
}
