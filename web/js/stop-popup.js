// The stop popup: a stop's lines and live activity (waiting riders, recent taps, an
// active surge) from GET /api/stops/{id}, polled while the popup stays open.

import { STOP_REFRESH_MS, STOP_FETCH_TIMEOUT_MS, STOP_TAPS_SHOWN } from './constants.js';
import { esc, formatAgo } from './format.js';
import { map } from './map.js';
import { agoHtml, lineChips, sevClass, openVehiclePopup } from './popups.js';
import { hitVehicle } from './vehicle-layer.js';
import { isConnected } from './stream.js';
import { authFetch } from './auth.js';

// Live activity from GET /api/stops/{id}: fetched when the popup opens, then every
// STOP_REFRESH_MS while it stays open (one request at a time, stale answers ignored).
const stopPopup = L.popup({ className: 'stop-popup', maxWidth: 340, minWidth: 230 });
const stopView = { stop: null, data: null, error: null, fetchedAt: 0, timer: null, ctrl: null, token: 0 };

function stopPopupHtml() {
  const { stop, data, error } = stopView, s = data || stop;
  let activity = '';
  if (data) {
    const taps = Array.isArray(data.recent_taps) ? data.recent_taps.slice(0, STOP_TAPS_SHOWN) : [];
    const surge = data.active_surge;
    activity = `<dl>
        <dt>Waiting</dt><dd class="waiting">≈ ${Number(data.waiting_estimate || 0).toLocaleString('en-US')} riders waiting</dd>
        <dt>Taps, 5 min</dt><dd class="taps-5min">${Number(data.taps_last_5_min || 0).toLocaleString('en-US')}</dd>
      </dl>
      <h4>Recent taps</h4>
      ${taps.length ? `<ol class="taps">${taps.map((t) =>
        `<li>${agoHtml(t.timestamp)} <small>${esc(t.rider_id)}</small></li>`).join('')}</ol>` : '<p class="muted">No taps recently.</p>'}
      ${surge ? `<p class="surge ${sevClass(surge.severity)}"><b>Surge · ${esc(surge.severity)}</b> <small>raised ${agoHtml(surge.raised_at)}</small><br>${esc(surge.message)}</p>` : ''}`;
  } else if (!error) {
    activity = '<p class="loading" role="status">loading…</p>';
  }
  const errorLine = error ? `<p class="popup-error" role="alert">${data
    ? `Update failed (${esc(error)}); showing data from ${formatAgo(performance.now() - stopView.fetchedAt)}.`
    : `Could not load this stop's activity (${esc(error)}). Retrying…`}</p>` : '';
  return `<div class="popup" data-stop-id="${esc(s.stop_id)}">
    <h3>${esc(s.name)} <small>${esc(s.stop_id)}</small></h3>
    <dl><dt>Lines</dt><dd>${lineChips(s.route_ids) || '—'}</dd></dl>
    ${activity}${errorLine}</div>`;
}

function renderStopPopup() {
  if (!stopView.stop || !stopPopup.isOpen()) return;
  stopPopup.setContent(stopPopupHtml());
  // Pan once so the full popup is visible when the data first arrives; never on refreshes.
  if (stopView.data || stopView.error) stopPopup.options.autoPan = false;
}

/** Opens stop `stop`'s popup (from a click, the search box or a surge ring). */
export function openStopPopup(stop) {
  stopStopRefresh();
  Object.assign(stopView, { stop, data: null, error: null, fetchedAt: 0 });
  stopPopup.options.autoPan = true;
  stopPopup.setLatLng([stop.lat, stop.lon]).setContent(stopPopupHtml()).openOn(map);
  refreshStop();
  stopView.timer = setInterval(refreshStop, STOP_REFRESH_MS);
}

function stopStopRefresh() {
  clearInterval(stopView.timer);
  stopView.timer = null;
  stopView.token++; // any answer still on its way is for a popup that is gone
  if (stopView.ctrl) { stopView.ctrl.abort(); stopView.ctrl = null; }
}

async function refreshStop() {
  const stop = stopView.stop;
  if (!stop || stopView.ctrl) return;
  // While the live connection is down the server is most likely unreachable too: say so
  // instead of firing requests that can only fail (and log network errors).
  if (!isConnected()) {
    stopView.error = 'no connection to the server';
    renderStopPopup();
    return;
  }
  const ctrl = new AbortController(), token = stopView.token;
  stopView.ctrl = ctrl;
  const timeout = setTimeout(() => ctrl.abort(), STOP_FETCH_TIMEOUT_MS);
  let data = null, error = null;
  try {
    const res = await authFetch(`/api/stops/${encodeURIComponent(stop.stop_id)}`, { cache: 'no-store', signal: ctrl.signal });
    const body = await res.json().catch(() => null);
    if (!res.ok) error = (body && body.error) || `HTTP ${res.status}`;
    else if (!body || typeof body !== 'object') error = 'unexpected answer';
    else data = body;
  } catch (err) {
    error = err && err.name === 'AbortError' ? 'timed out' : (err && err.message) || 'network error';
  } finally {
    clearTimeout(timeout);
    if (stopView.ctrl === ctrl) stopView.ctrl = null;
  }
  if (token !== stopView.token) return; // closed, or another stop opened meanwhile
  if (data) { stopView.data = data; stopView.error = null; stopView.fetchedAt = performance.now(); }
  else stopView.error = error;
  renderStopPopup();
}

stopPopup.on('remove', () => { stopStopRefresh(); stopView.stop = null; });

// A vehicle is drawn above the stops, so it wins a click that also hits a stop.
export function onStopClick(e, stop) {
  L.DomEvent.stopPropagation(e); // handled here, not again by the map's click
  const id = hitVehicle(e.containerPoint);
  if (id) openVehiclePopup(id);
  else openStopPopup(stop);
}
