//! Small GTFS feeds written by hand, with a case of everything the loader and the
//! timetable handle: a station with platforms and an entrance, a block of two trips, a
//! trip past midnight, a trip repeated by frequencies (exact and not), a service only on
//! calendar dates, route types simulated as the nearest mode, a trip without stop times.
//! The agency is in Paris (UTC+1 in winter); weekday service runs through 2025.

use std::path::PathBuf;

/// Writes a feed of `files` (name, contents) into a fresh directory.
pub fn feed_dir(name: &str, files: &[(&str, &str)]) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "streamcity-gtfs-{name}-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("writing a test feed")
            .as_nanos()
    ));
    std::fs::create_dir_all(&dir).expect("writing a test feed");
    for (file, text) in files {
        std::fs::write(dir.join(file), text).expect("writing a test feed");
    }
    dir
}

/// `agency.txt`: one agency, in Paris.
pub const AGENCY: &str = "agency_id,agency_name,agency_url,agency_timezone\nA,Harbour Transit,https://example.org,Europe/Paris\n";
/// `stops.txt`: a station with two platforms and an entrance, and two stops.
pub const STOPS: &str = "stop_id,stop_name,stop_lat,stop_lon,location_type,parent_station\n\
    CENTRAL,Central Station,48.8500,2.3500,1,\n\
    P1,Central platform 1,48.8501,2.3501,0,CENTRAL\n\
    P2,Central platform 2,48.8502,2.3502,0,CENTRAL\n\
    S2,Market,48.8550,2.3600,0,\n\
    S3,Harbour,48.8600,2.3700,0,\n\
    E1,Central entrance,48.8499,2.3499,2,CENTRAL\n";
/// `routes.txt`: a bus, a tram, a ferry, an express coach (an extended route type) and
/// a monorail (a type simulated as the nearest mode).
pub const ROUTES: &str = "route_id,agency_id,route_short_name,route_long_name,route_type,route_color\n\
    R1,A,1,Central – Harbour,3,FF8800\n\
    T1,A,T,Tram,0,\n\
    F1,A,F,Ferry,4,\n\
    X1,A,X,Express coach,202,\n\
    M1,A,M,Monorail,12,\n";
/// `trips.txt`: block B1 of two trips, a night trip, a trip repeated by frequencies, a
/// holiday ferry, a coach, a monorail, a trip without stop times.
pub const TRIPS: &str = "route_id,service_id,trip_id,trip_headsign,direction_id,block_id\n\
    R1,WK,R1-a,Harbour,0,B1\n\
    R1,WK,R1-b,Central,1,B1\n\
    R1,WK,R1-night,Harbour,0,\n\
    T1,WK,T1-freq,Harbour,0,\n\
    F1,HOL,F1-a,Harbour,0,\n\
    X1,WK,X1-a,Harbour,0,\n\
    M1,WK,M1-a,Market,0,\n\
    R1,WK,R1-empty,Harbour,0,\n";
/// `stop_times.txt`: with a call between timepoints and times past 24:00.
pub const STOP_TIMES: &str = "trip_id,arrival_time,departure_time,stop_id,stop_sequence\n\
    R1-a,08:00:00,08:00:00,P1,1\n\
    R1-a,,,S2,2\n\
    R1-a,08:10:00,08:11:00,S3,3\n\
    R1-b,08:20:00,08:20:00,S3,1\n\
    R1-b,08:30:00,08:30:00,P2,2\n\
    R1-night,24:50:00,24:50:00,P1,1\n\
    R1-night,25:05:00,25:05:00,S3,2\n\
    T1-freq,06:00:00,06:00:00,P1,1\n\
    T1-freq,06:12:00,06:12:00,S3,2\n\
    F1-a,09:00:00,09:00:00,S2,1\n\
    F1-a,09:20:00,09:20:00,S3,2\n\
    X1-a,07:00:00,07:00:00,P2,1\n\
    X1-a,07:30:00,07:30:00,S3,2\n\
    M1-a,09:00:00,09:00:00,P2,1\n\
    M1-a,09:10:00,09:10:00,S2,2\n";
/// `calendar.txt`: weekday service through 2025.
pub const CALENDAR: &str = "service_id,monday,tuesday,wednesday,thursday,friday,saturday,sunday,start_date,end_date\n\
    WK,1,1,1,1,1,0,0,20250101,20251231\n";
/// `calendar_dates.txt`: 14 July 2025 a holiday (weekday service removed, the ferry added).
pub const CALENDAR_DATES: &str = "service_id,date,exception_type\nHOL,20250714,1\nWK,20250714,2\n";
/// `frequencies.txt`: every 10 minutes exactly from 06:00, every 15 minutes on average from 10:00.
pub const FREQUENCIES: &str = "trip_id,start_time,end_time,headway_secs,exact_times\n\
    T1-freq,06:00:00,10:00:00,600,1\n\
    T1-freq,10:00:00,20:00:00,900,0\n";

/// The small feed's files, as (name, contents).
pub fn small_feed() -> Vec<(&'static str, &'static str)> {
    vec![
        ("agency.txt", AGENCY),
        ("stops.txt", STOPS),
        ("routes.txt", ROUTES),
        ("trips.txt", TRIPS),
        ("stop_times.txt", STOP_TIMES),
        ("calendar.txt", CALENDAR),
        ("calendar_dates.txt", CALENDAR_DATES),
        ("frequencies.txt", FREQUENCIES),
    ]
}
