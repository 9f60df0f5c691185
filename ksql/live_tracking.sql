-- The live vehicle table: the latest report of every vehicle.
--
-- Processor equivalent: processor/src/table.rs (LatestTable) fed by
-- Processor::on_position in processor/src/lib.rs, published on live_vehicle_table.
-- Differences: the processor keeps the latest by EVENT time (an older report arriving
-- late does not overwrite a newer one); LATEST_BY_OFFSET keeps the last to arrive. It
-- forwards each report's bytes unchanged instead of re-serialising the row.

CREATE TABLE IF NOT EXISTS live_vehicle_table
    WITH (KAFKA_TOPIC = 'live_vehicle_table', VALUE_FORMAT = 'JSON') AS
SELECT
    vehicle_id,
    LATEST_BY_OFFSET(route_id) AS route_id,
    LATEST_BY_OFFSET(trip_id) AS trip_id,
    LATEST_BY_OFFSET(`timestamp`) AS `timestamp`,
    LATEST_BY_OFFSET(lat) AS lat,
    LATEST_BY_OFFSET(lon) AS lon,
    LATEST_BY_OFFSET(bearing) AS bearing,
    LATEST_BY_OFFSET(speed_mps) AS speed_mps,
    LATEST_BY_OFFSET(next_stop_id) AS next_stop_id,
    LATEST_BY_OFFSET(passengers) AS passengers,
    LATEST_BY_OFFSET(capacity) AS capacity,
    LATEST_BY_OFFSET(occupancy_status) AS occupancy_status,
    LATEST_BY_OFFSET(delay_s) AS delay_s,
    LATEST_BY_OFFSET(status) AS status
FROM vehicle_locations
GROUP BY vehicle_id
EMIT CHANGES;
