-- Input streams over the simulators' topics. Wire format: core/src/event.rs, fixed by
-- core/tests/golden/. Timestamps are milliseconds since the epoch in `timestamp`.

CREATE STREAM IF NOT EXISTS vehicle_locations (
    vehicle_id VARCHAR KEY,
    route_id VARCHAR,
    trip_id VARCHAR,
    `timestamp` BIGINT,
    lat DOUBLE,
    lon DOUBLE,
    bearing DOUBLE,
    speed_mps DOUBLE,
    next_stop_id VARCHAR,
    passengers INT,
    capacity INT,
    occupancy_status VARCHAR,
    delay_s INT,
    status VARCHAR
) WITH (KAFKA_TOPIC = 'vehicle_locations', VALUE_FORMAT = 'JSON', TIMESTAMP = '`timestamp`');

CREATE STREAM IF NOT EXISTS rider_tapped_on (
    stop_id VARCHAR KEY,
    rider_id VARCHAR,
    route_id VARCHAR,
    `timestamp` BIGINT
) WITH (KAFKA_TOPIC = 'rider_tapped_on', VALUE_FORMAT = 'JSON', TIMESTAMP = '`timestamp`');

CREATE STREAM IF NOT EXISTS traffic_incidents (
    incident_id VARCHAR KEY,
    kind VARCHAR,
    status VARCHAR,
    lat DOUBLE,
    lon DOUBLE,
    radius_m DOUBLE,
    severity VARCHAR,
    speed_factor DOUBLE,
    started_at BIGINT,
    expected_end BIGINT,
    `timestamp` BIGINT
) WITH (KAFKA_TOPIC = 'traffic_incidents', VALUE_FORMAT = 'JSON', TIMESTAMP = '`timestamp`');
