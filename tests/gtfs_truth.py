"""What a GTFS feed says, computed apart from StreamCity (Python's csv and zipfile), for
tests/gtfs.rs to hold the twin's vehicles against.

    python3 gtfs_truth.py FEED.zip YYYYMMDD SECONDS_OF_DAY < vehicles.json

prints JSON: the trips that run on the day, with their first departure and last
arrival (seconds of the service day) and their stops in order; the trips running at
SECONDS_OF_DAY; and for each vehicle given, how far it is from its trip's shape, metres.
"""

import csv
import datetime
import io
import json
import math
import sys
import zipfile


def rows(feed, name):
    if name not in feed.namelist():
        return []
    return list(csv.DictReader(io.TextIOWrapper(feed.open(name), "utf-8-sig")))


def seconds(hms):
    h, m, s = (int(x) for x in hms.strip().split(":"))
    return h * 3600 + m * 60 + s


def main():
    feed = zipfile.ZipFile(sys.argv[1])
    day, at = sys.argv[2], int(sys.argv[3])
    weekday = datetime.datetime.strptime(day, "%Y%m%d").strftime("%A").lower()
    services = {
        r["service_id"]
        for r in rows(feed, "calendar.txt")
        if r["start_date"] <= day <= r["end_date"] and r[weekday] == "1"
    }
    for r in rows(feed, "calendar_dates.txt"):
        if r["date"] == day:
            (services.add if r["exception_type"] == "1" else services.discard)(r["service_id"])
    trips = {r["trip_id"]: r for r in rows(feed, "trips.txt") if r["service_id"] in services}
    calls = {}
    for r in rows(feed, "stop_times.txt"):
        if r["trip_id"] in trips:
            calls.setdefault(r["trip_id"], []).append(r)
    running = {}
    for trip, cs in calls.items():
        cs.sort(key=lambda r: int(r["stop_sequence"]))
        times = [seconds(r["departure_time"] or r["arrival_time"]) for r in cs if r["departure_time"] or r["arrival_time"]]
        running[trip] = {
            "start": times[0],
            "end": times[-1],
            "stops": [r["stop_id"] for r in cs],
        }
    active = sorted(t for t, r in running.items() if r["start"] <= at <= r["end"])

    stops = {r["stop_id"]: (float(r["stop_lat"]), float(r["stop_lon"])) for r in rows(feed, "stops.txt")}
    shapes = {}
    for r in rows(feed, "shapes.txt"):
        shapes.setdefault(r["shape_id"], []).append(
            (int(r["shape_pt_sequence"]), float(r["shape_pt_lat"]), float(r["shape_pt_lon"]))
        )
    for pts in shapes.values():
        pts.sort()

    def line_of(trip):
        shape = trips[trip].get("shape_id", "")
        if shape in shapes:
            return [(lat, lon) for _, lat, lon in shapes[shape]]
        return [stops[s] for s in running[trip]["stops"]]

    def distance(lat, lon, line):
        # Metres on a local plane around the point (good to well under a metre here).
        kx = 111_320.0 * math.cos(math.radians(lat))
        ky = 110_540.0
        pts = [((lo - lon) * kx, (la - lat) * ky) for la, lo in line]
        best = math.inf
        for (ax, ay), (bx, by) in zip(pts, pts[1:]):
            dx, dy = bx - ax, by - ay
            length2 = dx * dx + dy * dy
            t = 0.0 if length2 == 0 else max(0.0, min(1.0, -(ax * dx + ay * dy) / length2))
            best = min(best, math.hypot(ax + t * dx, ay + t * dy))
        return best

    vehicles = json.load(sys.stdin)
    away = {
        v["vehicle_id"]: distance(v["lat"], v["lon"], line_of(v["trip_id"]))
        for v in vehicles
        if v["trip_id"] in trips
    }
    json.dump({"trips": running, "active": active, "away_m": away}, sys.stdout)


main()
