//! A network written as a GTFS feed (a zip): agency, stops, routes, trips, stop_times,
//! frequencies, calendar (with calendar_dates), shapes and feed_info. `streamcity gtfs
//! export` writes the built-in city this way, so that any GTFS tool reads it, and
//! `streamcity --gtfs` runs it again.

use std::collections::HashSet;
use std::io::{Seek, Write};

use streamcity_core::TransportMode;

use crate::calendar::service_time as hms;
use crate::model::{Network, Trip};

/// Why a feed could not be written.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// Writing failed.
    #[error("writing the feed: {0}")]
    Io(#[from] std::io::Error),
    /// The zip could not be written.
    #[error("writing the zip: {0}")]
    Zip(#[from] zip::result::ZipError),
    /// A CSV file could not be written.
    #[error("writing a table: {0}")]
    Csv(#[from] csv::Error),
}

/// GTFS's `route_type` of a mode (a cable mode as a cable tram).
fn route_type(mode: TransportMode) -> &'static str {
    match mode {
        TransportMode::Tram => "0",
        TransportMode::Subway => "1",
        TransportMode::Rail => "2",
        TransportMode::Bus => "3",
        TransportMode::Ferry => "4",
        TransportMode::Cable => "5",
    }
}

/// Black or white, whichever reads better on `color` (`#rrggbb`).
fn text_color(color: &str) -> &'static str {
    let channel = |i: usize| {
        color
            .get(i..i + 2)
            .and_then(|h| u8::from_str_radix(h, 16).ok())
            .map_or(0.0, f64::from)
    };
    let luma = 0.299 * channel(1) + 0.587 * channel(3) + 0.114 * channel(5);
    if luma > 150.0 { "000000" } else { "FFFFFF" }
}

/// The id of the shape `trip` follows as written: its shape, or the shape reversed when
/// the trip runs it backwards (a route's shape drawn outbound, run both ways).
fn shape_of(network: &Network, trip: &Trip) -> Option<String> {
    let shape = trip.shape_id.as_ref()?;
    Some(if runs_backwards(network, trip) {
        format!("{shape}-reversed")
    } else {
        shape.to_string()
    })
}

/// Whether `trip` meets its shape's end before its start: its first stop lies nearer the
/// shape's last point than its last stop does.
fn runs_backwards(network: &Network, trip: &Trip) -> bool {
    let Some(shape) = trip
        .shape_id
        .as_ref()
        .and_then(|id| network.shapes.iter().find(|s| s.shape_id == *id))
    else {
        return false;
    };
    let (Some(first), Some(last), Some(end)) = (
        trip.stop_times
            .first()
            .and_then(|st| network.stop(&st.stop_id)),
        trip.stop_times
            .last()
            .and_then(|st| network.stop(&st.stop_id)),
        shape.points.last(),
    ) else {
        return false;
    };
    let d2 = |s: &crate::model::Stop| (s.lat - end[0]).powi(2) + (s.lon - end[1]).powi(2);
    d2(first) < d2(last)
}

/// The trips as written: a trip repeated by frequencies with exact times is written out
/// as one trip per run (`R1-out-073830`: the template's id and the run's start), which
/// GTFS defines as the same service and every consumer reads alike (realtime
/// validators among them, which check exact-time runs against `frequencies.txt`
/// with rules of their own).
fn written_trips(network: &Network) -> Vec<std::borrow::Cow<'_, Trip>> {
    let mut out = Vec::new();
    for t in &network.trips {
        if t.frequencies.is_empty() || !t.frequencies.iter().all(|f| f.exact_times) {
            out.push(std::borrow::Cow::Borrowed(t));
            continue;
        }
        let first = t.stop_times.first().map_or(0, |st| st.departure_s);
        for f in &t.frequencies {
            for start in f.starts() {
                let mut run = t.clone();
                run.trip_id = format!(
                    "{}-{:02}{:02}{:02}",
                    t.trip_id,
                    start / 3600,
                    start / 60 % 60,
                    start % 60
                )
                .into();
                run.frequencies.clear();
                let shift =
                    |s: u32| (i64::from(s) - i64::from(first) + i64::from(start)).max(0) as u32;
                for st in &mut run.stop_times {
                    st.arrival_s = shift(st.arrival_s);
                    st.departure_s = shift(st.departure_s);
                }
                out.push(std::borrow::Cow::Owned(run));
            }
        }
    }
    out
}

/// Writes `network` as a GTFS zip to `out`.
pub fn write_gtfs<W: Write + Seek>(network: &Network, out: W) -> Result<W, ExportError> {
    let trips = written_trips(network);
    let mut zip = zip::ZipWriter::new(out);
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    let table = |zip: &mut zip::ZipWriter<W>,
                 name: &str,
                 header: &[&str],
                 rows: &mut dyn Iterator<Item = Vec<String>>|
     -> Result<(), ExportError> {
        zip.start_file(name, options)?;
        let mut w = csv::Writer::from_writer(Vec::new());
        w.write_record(header)?;
        for row in rows {
            w.write_record(&row)?;
        }
        let bytes = w.into_inner().map_err(|e| e.into_error())?;
        zip.write_all(&bytes)?;
        Ok(())
    };

    table(
        &mut zip,
        "agency.txt",
        &["agency_id", "agency_name", "agency_url", "agency_timezone"],
        &mut network.agencies.iter().map(|a| {
            vec![
                a.agency_id.to_string(),
                a.name.clone(),
                a.url.clone(),
                a.timezone.clone(),
            ]
        }),
    )?;
    let stations: HashSet<&str> = network
        .stops
        .iter()
        .filter_map(|s| s.parent_station.as_deref())
        .collect();
    table(
        &mut zip,
        "stops.txt",
        &[
            "stop_id",
            "stop_name",
            "stop_lat",
            "stop_lon",
            "location_type",
            "parent_station",
        ],
        &mut network.stops.iter().map(|s| {
            vec![
                s.stop_id.to_string(),
                s.name.clone(),
                format!("{:.6}", s.lat),
                format!("{:.6}", s.lon),
                if stations.contains(s.stop_id.as_str()) {
                    "1"
                } else {
                    "0"
                }
                .to_owned(),
                s.parent_station.as_deref().unwrap_or("").to_owned(),
            ]
        }),
    )?;
    table(
        &mut zip,
        "routes.txt",
        &[
            "route_id",
            "agency_id",
            "route_short_name",
            "route_long_name",
            "route_type",
            "route_color",
            "route_text_color",
        ],
        &mut network.routes.iter().map(|r| {
            vec![
                r.route_id.to_string(),
                r.agency_id.to_string(),
                r.short_name.clone(),
                r.name.clone(),
                route_type(r.mode).to_owned(),
                r.color.trim_start_matches('#').to_uppercase(),
                text_color(&r.color).to_owned(),
            ]
        }),
    )?;
    table(
        &mut zip,
        "trips.txt",
        &[
            "route_id",
            "service_id",
            "trip_id",
            "trip_headsign",
            "direction_id",
            "shape_id",
            "block_id",
        ],
        &mut trips.iter().map(|t| {
            vec![
                t.route_id.to_string(),
                t.service_id.to_string(),
                t.trip_id.to_string(),
                t.headsign.clone(),
                t.direction_id.to_string(),
                shape_of(network, t).unwrap_or_default(),
                t.block_id.as_deref().unwrap_or("").to_owned(),
            ]
        }),
    )?;
    table(
        &mut zip,
        "stop_times.txt",
        &[
            "trip_id",
            "arrival_time",
            "departure_time",
            "stop_id",
            "stop_sequence",
            "pickup_type",
            "drop_off_type",
            "timepoint",
        ],
        &mut trips.iter().flat_map(|t| {
            t.stop_times.iter().enumerate().map(|(k, st)| {
                vec![
                    t.trip_id.to_string(),
                    hms(st.arrival_s),
                    hms(st.departure_s),
                    st.stop_id.to_string(),
                    st.sequence.unwrap_or(k as u32 + 1).to_string(),
                    if st.pickup { "0" } else { "1" }.to_owned(),
                    if st.drop_off { "0" } else { "1" }.to_owned(),
                    u8::from(st.timepoint).to_string(),
                ]
            })
        }),
    )?;
    if trips.iter().any(|t| !t.frequencies.is_empty()) {
        table(
            &mut zip,
            "frequencies.txt",
            &[
                "trip_id",
                "start_time",
                "end_time",
                "headway_secs",
                "exact_times",
            ],
            &mut trips.iter().flat_map(|t| {
                t.frequencies.iter().map(|f| {
                    vec![
                        t.trip_id.to_string(),
                        hms(f.start_s),
                        hms(f.end_s),
                        f.headway_s.to_string(),
                        u8::from(f.exact_times).to_string(),
                    ]
                })
            }),
        )?;
    }
    table(
        &mut zip,
        "calendar.txt",
        &[
            "service_id",
            "monday",
            "tuesday",
            "wednesday",
            "thursday",
            "friday",
            "saturday",
            "sunday",
            "start_date",
            "end_date",
        ],
        &mut network.services.iter().map(|s| {
            let mut row = vec![s.service_id.to_string()];
            row.extend(s.weekdays.iter().map(|&d| u8::from(d).to_string()));
            row.push(s.start_date.0.to_string());
            row.push(s.end_date.0.to_string());
            row
        }),
    )?;
    if network
        .services
        .iter()
        .any(|s| !s.added.is_empty() || !s.removed.is_empty())
    {
        table(
            &mut zip,
            "calendar_dates.txt",
            &["service_id", "date", "exception_type"],
            &mut network.services.iter().flat_map(|s| {
                let added = s.added.iter().map(move |d| (s, d, "1"));
                let removed = s.removed.iter().map(move |d| (s, d, "2"));
                added.chain(removed).map(|(s, d, kind)| {
                    vec![s.service_id.to_string(), d.0.to_string(), kind.to_owned()]
                })
            }),
        )?;
    }
    // Each shape as drawn, and reversed where a trip runs it backwards.
    let reversed: HashSet<&str> = network
        .trips
        .iter()
        .filter(|t| runs_backwards(network, t))
        .filter_map(|t| t.shape_id.as_deref())
        .collect();
    table(
        &mut zip,
        "shapes.txt",
        &[
            "shape_id",
            "shape_pt_lat",
            "shape_pt_lon",
            "shape_pt_sequence",
        ],
        &mut network.shapes.iter().flat_map(|s| {
            let forward = s.points.iter().enumerate().map(move |(k, p)| {
                vec![
                    s.shape_id.to_string(),
                    format!("{:.6}", p[0]),
                    format!("{:.6}", p[1]),
                    (k + 1).to_string(),
                ]
            });
            let backward = reversed
                .contains(s.shape_id.as_str())
                .then(|| {
                    s.points.iter().rev().enumerate().map(move |(k, p)| {
                        vec![
                            format!("{}-reversed", s.shape_id),
                            format!("{:.6}", p[0]),
                            format!("{:.6}", p[1]),
                            (k + 1).to_string(),
                        ]
                    })
                })
                .into_iter()
                .flatten();
            forward.chain(backward)
        }),
    )?;
    let (first, last) = network
        .service_range()
        .map_or((String::new(), String::new()), |(a, b)| {
            (a.0.to_string(), b.0.to_string())
        });
    table(
        &mut zip,
        "feed_info.txt",
        &[
            "feed_publisher_name",
            "feed_publisher_url",
            "feed_lang",
            "feed_start_date",
            "feed_end_date",
            "feed_version",
            "feed_contact_url",
        ],
        &mut std::iter::once(vec![
            "StreamCity".to_owned(),
            "https://example.org/streamcity".to_owned(),
            "en".to_owned(),
            first,
            last,
            network.hash().to_owned(),
            "https://example.org/streamcity".to_owned(),
        ]),
    )?;
    Ok(zip.finish()?)
}
