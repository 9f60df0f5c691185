-- Vehicle alerts: delays, reported breakdowns, crowding.
--
-- Processor equivalent: processor/src/vehicles.rs, published on alerts. Differences:
-- the processor raises each alert once and clears it on recovery (these queries emit
-- a row per report while the condition holds); a delay must last 60 s before it is
-- raised, clears only below 180 s (hysteresis), and names a nearby active incident as
-- its likely cause; a vehicle standing still between stops is "stranded", one not
-- heard from for 60 s has "lost contact"; bunching and gapping compare departures
-- with the timetable's headway. None of these has a direct ksqlDB form.

CREATE STREAM IF NOT EXISTS delayed_vehicles
    WITH (KAFKA_TOPIC = 'delayed_vehicles', VALUE_FORMAT = 'JSON') AS
SELECT vehicle_id, route_id, `timestamp`, lat, lon, delay_s
FROM vehicle_locations
WHERE delay_s > 300
EMIT CHANGES;

CREATE STREAM IF NOT EXISTS broken_down_vehicles
    WITH (KAFKA_TOPIC = 'broken_down_vehicles', VALUE_FORMAT = 'JSON') AS
SELECT vehicle_id, route_id, `timestamp`, lat, lon, passengers
FROM vehicle_locations
WHERE status = 'broken_down'
EMIT CHANGES;

CREATE STREAM IF NOT EXISTS crowded_vehicles
    WITH (KAFKA_TOPIC = 'crowded_vehicles', VALUE_FORMAT = 'JSON') AS
SELECT vehicle_id, route_id, `timestamp`, passengers, capacity
FROM vehicle_locations
WHERE CAST(passengers AS DOUBLE) / capacity > 0.9
EMIT CHANGES;
