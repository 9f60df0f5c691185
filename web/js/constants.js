// Constants: thresholds and timings, severities, and the vehicle draw styles with their
// colours (read once from style.css's :root custom properties). The alert kinds come
// from the server (/api/status), not from here.

export const ON_TIME_S = 120;            // |delay_s| below this counts as on time
export const VERY_LATE_S = 300;          // darker "late" colour from here
export const SILENT_MS = 30000;          // no report for this long (server time) = silent
export const HIT_RADIUS_PX = 10;         // click / hover tolerance around a vehicle
export const MAX_EXTRAPOLATION_MS = 500; // keep moving at most this long past the latest report
export const SNAP_DISTANCE_M = 2000;     // a jump longer than this is not animated
export const BACKOFF_MIN_MS = 500, BACKOFF_MAX_MS = 10000;
export const OFFLINE_AFTER_MS = 30000;   // "reconnecting" turns into "offline" after this long
export const RESYNC_MIN_INTERVAL_MS = 10000; // a seq gap reconnects with ?since= at most this often
export const STOP_REFRESH_MS = 5000;     // open stop popup: refetch its activity this often
export const STOP_FETCH_TIMEOUT_MS = 8000;
export const STOP_TAPS_SHOWN = 8;        // most recent taps listed in a stop popup
export const INCIDENT_DEFAULT_RADIUS_M = 150; // incident alert without evidence.radius_m
export const SEVERITIES = ['low', 'moderate', 'high', 'critical'];

// Vehicle draw styles; the colours live in style.css (:root custom properties)
// so that the legend and the canvas share one definition.
export const STYLE = { ONTIME: 0, EARLY: 1, LATE: 2, VERYLATE: 3, BROKEN: 4, SILENT: 5 };
const css = getComputedStyle(document.documentElement);
const cssVar = (name) => css.getPropertyValue(name).trim();
export const STYLE_COLORS = ['--ontime', '--early', '--late', '--verylate', '--broken', '--silent'].map(cssVar);
export const RING_COLOR = cssVar('--ring');
export const SEV_COLORS = Object.fromEntries(SEVERITIES.map((s) => [s, cssVar(`--sev-${s}`)]));
export const DRAW_ORDER = [STYLE.SILENT, STYLE.ONTIME, STYLE.EARLY, STYLE.LATE, STYLE.VERYLATE, STYLE.BROKEN];
export const ANGLE_STEPS = 36;           // sprites every 10° of bearing
export const OCC_LEVELS = 5;             // occupancy ring thicknesses
