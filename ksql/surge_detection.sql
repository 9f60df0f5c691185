-- Passenger surges: more than 40 taps at one stop in a 5-minute window advancing every
-- minute.
--
-- Processor equivalent: processor/src/surge.rs (SurgeDetector) over
-- processor/src/window.rs (WindowedCount, hopping, 10 s grace), published on
-- surge_alerts and alerts. Differences: the processor raises ONE alert when a stop
-- crosses the threshold and clears it when the stop calms down (this query emits a row
-- on every tap above the threshold); it also applies an adaptive threshold from the
-- stop's usual count for the hour; windows close on the watermark even when no tap
-- follows; late taps go to late_events.

CREATE TABLE IF NOT EXISTS surge_windows
    WITH (KAFKA_TOPIC = 'surge_windows', VALUE_FORMAT = 'JSON') AS
SELECT
    stop_id,
    WINDOWSTART AS window_start,
    WINDOWEND AS window_end,
    COUNT(*) AS taps
FROM rider_tapped_on
    WINDOW HOPPING (SIZE 5 MINUTES, ADVANCE BY 1 MINUTE, GRACE PERIOD 10 SECONDS)
GROUP BY stop_id
HAVING COUNT(*) > 40
EMIT CHANGES;

-- The alerts as a stream, as the seed's surge_alerts had.
CREATE STREAM IF NOT EXISTS surge_alerts (
    stop_id VARCHAR KEY,
    window_start BIGINT,
    window_end BIGINT,
    taps BIGINT
) WITH (KAFKA_TOPIC = 'surge_windows', VALUE_FORMAT = 'JSON');
