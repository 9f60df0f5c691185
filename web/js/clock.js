// The twin's simulated clock and what the server says of itself: GET /api/status,
// read at start and every 10 s (retried until it comes). The panel shows the simulated
// time ticking at the producer's speed, the speed-up, the service day and the network;
// the alert kinds the page offers as filters come from here too (the server's list).

import { $ } from './format.js';
import { authFetch } from './auth.js';

const STATUS_REFRESH_MS = 10000;
const WEEKDAYS = ['Sunday', 'Monday', 'Tuesday', 'Wednesday', 'Thursday', 'Friday', 'Saturday'];

// The latest reading: simulated time at performance.now() `at`, advancing `speed`×.
const clock = { time: null, at: 0, speed: null, running: false, day: null, source: null, offsetMin: 0 };

/** The city's offset from UTC, minutes (for times shown in local time). */
export const cityOffsetMin = () => clock.offsetMin;

/** Simulated time now (ms since the epoch), or null before the first reading. */
export function simNow() {
  if (clock.time === null) return null;
  const speed = clock.running && clock.speed !== null ? clock.speed : 0;
  return clock.time + (performance.now() - clock.at) * speed;
}

async function fetchStatus() {
  const res = await authFetch('/api/status', { cache: 'no-store' });
  if (!res.ok) throw new Error(`/api/status: HTTP ${res.status}`);
  return res.json();
}

function applyStatus(status) {
  const c = status.clock;
  if (c) {
    Object.assign(clock, { time: c.time, at: performance.now(), speed: c.speed, running: c.running,
      day: c.service_day, source: c.source, offsetMin: c.utc_offset_min || 0 });
  }
  const net = status.network;
  if (net) $('sim-network').textContent = net.name;
  renderClock();
}

/** Shows the simulated clock; called every second. */
export function renderClock() {
  const now = simNow();
  if (now === null) return;
  // The city's local time (a feed's agency_timezone; UTC for the built-in city).
  const d = new Date(now + clock.offsetMin * 60000);
  $('sim-time').textContent = d.toISOString().slice(11, 19);
  $('sim-clock').dataset.ms = String(Math.round(now));
  const speed = clock.speed === null ? '' : clock.running ? (clock.speed === 1 ? 'real time' : `×${clock.speed}`) : 'stopped';
  $('sim-speed').textContent = speed;
  if (clock.day) {
    const [y, m, day] = clock.day.split('-').map(Number);
    $('sim-day').textContent = `${WEEKDAYS[new Date(Date.UTC(y, m - 1, day)).getUTCDay()]} ${clock.day}`;
  }
  const sign = clock.offsetMin < 0 ? '−' : '+', off = Math.abs(clock.offsetMin);
  const utc = clock.offsetMin === 0
    ? 'UTC'
    : `UTC${sign}${Math.floor(off / 60)}${off % 60 ? `:${String(off % 60).padStart(2, '0')}` : ''}`;
  $('sim-zone').textContent = utc;
  const zone = `local time, ${utc}`;
  $('sim-clock').title = clock.source === 'producer'
    ? `Simulated time (${zone}), from the producer's clock`
    : `Latest event time seen (${zone}; no producer clock yet)`;
}

/**
 * Reads /api/status now and every STATUS_REFRESH_MS; calls `onFirst(status)` once,
 * with the first answer (retried every 5 s until one comes).
 */
export function startClock(onFirst, status = null) {
  let first = true;
  if (status) { applyStatus(status); first = false; onFirst(status); }
  const load = async () => {
    try {
      const status = await fetchStatus();
      applyStatus(status);
      if (first) { first = false; onFirst(status); }
      setTimeout(load, STATUS_REFRESH_MS);
    } catch (err) {
      $('substats').textContent = `Could not load the status (${err.message}); retrying…`;
      setTimeout(load, 5000);
    }
  };
  if (status) setTimeout(load, STATUS_REFRESH_MS); else load();
  setInterval(renderClock, 1000);
}
