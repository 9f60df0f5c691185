//! Input decoding: a record of an input topic becomes an event, or a dead letter that
//! says why it could not.

use bytes::Bytes;
use serde::de::DeserializeOwned;
use streamcity_core::{
    CityIncident, DeadLetter, InvalidEvent, Record, RiderTap, TimestampMs, Topics, TrafficIncident,
    Validate, VehiclePosition, check_not_ahead, decode_valid, encode,
};

/// An input record, decoded.
#[derive(Debug, Clone, PartialEq)]
pub enum Decoded {
    /// From `vehicle_locations`.
    Position(VehiclePosition),
    /// From `rider_tapped_on`.
    Tap(RiderTap),
    /// From `rider_tapped_off` (read so that a bad one is set aside too; no detector
    /// needs them).
    TapOff(RiderTap),
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
            Decoded::Tap(t) | Decoded::TapOff(t) => t.timestamp,
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
        let event: T = decode_valid(payload)?;
        check_not_ahead(event.event_time(), latest, max_ahead_ms)?;
        Ok(event)
    }
    let (payload, t) = (&record.payload[..], topics);
    if record.topic == t.vehicle_locations {
        checked(payload, latest, max_ahead_ms).map(Decoded::Position)
    } else if record.topic == t.rider_tapped_on {
        checked(payload, latest, max_ahead_ms).map(Decoded::Tap)
    } else if record.topic == t.rider_tapped_off {
        checked(payload, latest, max_ahead_ms).map(Decoded::TapOff)
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

/// The `dead_letters` record for a record set aside for `error`, read from `partition`
/// at `offset` when known: bounded ([`DeadLetter::of`]), keyed by an excerpt of the
/// record's key.
pub fn dead_letter(
    topics: &Topics,
    record: &Record,
    partition: Option<i32>,
    offset: Option<i64>,
    error: &InvalidEvent,
) -> Record {
    let letter = DeadLetter::of(
        &record.topic,
        partition,
        offset,
        &record.key,
        &record.payload,
        record.timestamp,
        error,
    );
    let key = if record.key.len() <= DeadLetter::TEXT_BYTES {
        Bytes::clone(&record.key)
    } else {
        record.key.slice(..DeadLetter::TEXT_BYTES)
    };
    Record::new(&topics.dead_letters, key, encode(&letter), record.timestamp)
}
