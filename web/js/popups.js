// The vehicle popup (opened on a vehicle, following it while it moves) and the small
// HTML pieces the other popups share: relative times, line chips, severity classes.

import { ON_TIME_S, SEVERITIES } from './constants.js';
import { esc, words, formatDelay, formatAgo } from './format.js';
import { state, serverNow } from './state.js';
import { map } from './map.js';
import { authFetch } from './auth.js';

export const vehiclePopup = L.popup({ className: 'vehicle-popup', autoPan: true, maxWidth: 320 });
let lastPopupVehicle = null; // the report the open popup shows

// Trips' headsigns from GET /api/trips/{id} (vehicles of a feed's timetable, whose
// reports name their service day), fetched once per trip while popups open (at most
// TRIPS_KEPT kept: a day of a large feed has tens of thousands).
const TRIPS_KEPT = 500;
const trips = new Map(); // trip_id → headsign ('' when the trip has none or is unknown)

function headsign(v) {
  if (!v.start_date) return null; // not a trip of a timetable (the built-in city's shuttles)
  if (trips.has(v.trip_id)) return trips.get(v.trip_id);
  if (trips.size >= TRIPS_KEPT) trips.clear();
  trips.set(v.trip_id, null); // asked
  authFetch(`/api/trips/${encodeURIComponent(v.trip_id)}`, { cache: 'no-store' })
    .then((res) => (res.ok ? res.json() : null))
    .then((t) => {
      trips.set(v.trip_id, (t && t.headsign) || '');
      lastPopupVehicle = null; // redraw with it
      refreshVehiclePopup();
    })
    .catch(() => trips.set(v.trip_id, ''));
  return null;
}

function vehiclePopupHtml(v) {
  const route = state.routes.get(v.route_id), stop = state.stops.get(v.next_stop_id);
  const towards = headsign(v);
  const pct = v.capacity ? Math.round((100 * v.passengers) / v.capacity) : 0;
  const late = v.delay_s >= ON_TIME_S ? 'late' : v.delay_s <= -ON_TIME_S ? 'early' : 'ok';
  return `<div class="popup" data-vehicle-id="${esc(v.vehicle_id)}">
    <h3><i class="sw" style="--c:${esc(route ? route.color : '#888')}"></i>Line ${esc((route && route.short_name) || v.route_id)}${route ? ` <small>${esc(route.name)}</small>` : ''}</h3>
    <dl>
      <dt>Vehicle</dt><dd>${esc(v.vehicle_id)}</dd>
      ${towards ? `<dt>To</dt><dd class="headsign">${esc(towards)}</dd>` : ''}
      <dt>Trip</dt><dd>${esc(v.trip_id)}${v.start_time ? ` <small>from ${esc(v.start_time.slice(0, 5))}</small>` : ''}</dd>
      <dt>Next stop</dt><dd>${esc(stop ? stop.name : v.next_stop_id)} <small>${esc(v.next_stop_id)}</small></dd>
      <dt>Delay</dt><dd class="delay-${late}">${esc(formatDelay(v.delay_s))}</dd>
      <dt>Occupancy</dt><dd>${v.passengers}/${v.capacity} (${pct}%) — ${esc(words(v.occupancy_status))}</dd>
      <dt>Speed</dt><dd>${Math.round((v.speed_mps || 0) * 3.6)} km/h</dd>
      <dt>Status</dt><dd>${esc(words(v.status))}${/_(to|at)$/.test(v.status) && stop ? ` ${esc(stop.name)}` : ''}</dd>
      <dt>Last report</dt><dd>${formatAgo(state.serverTime - v.timestamp)}</dd>
    </dl></div>`;
}

export function openVehiclePopup(id) {
  const v = state.vehicles.get(id), tr = state.tracks.get(id);
  if (!v || !tr) return;
  state.selectedId = id;
  vehiclePopup.options.autoPan = true;
  vehiclePopup.setLatLng(map.unproject([tr.px, tr.py], 0)).setContent(vehiclePopupHtml(v)).openOn(map);
  vehiclePopup.options.autoPan = false; // it follows the vehicle every frame: don't pan each time
  lastPopupVehicle = v;
}

// Relative time of a server timestamp, as a <time> that updateRelativeTimes keeps fresh.
export function agoHtml(ts) {
  return `<time data-ts="${Number(ts)}" datetime="${new Date(ts).toISOString()}">${esc(agoText(ts))}</time>`;
}
export function agoText(ts) {
  // Before the first WebSocket message there is no server clock: show the time of day (UTC).
  return state.serverTime ? formatAgo(serverNow() - ts) : `at ${new Date(ts).toISOString().slice(11, 19)} UTC`;
}

export function lineChips(routeIds) {
  return (routeIds || []).map((id) => {
    const r = state.routes.get(id);
    return `<span class="line-chip" style="--c:${esc(r ? r.color : '#888')}">${esc(r ? r.short_name || id : id)}</span>`;
  }).join(' ');
}

export const sevClass = (sev) => `sev-${SEVERITIES.includes(sev) ? sev : 'low'}`;

vehiclePopup.on('remove', () => { state.selectedId = null; });

// After a message: if the open popup's vehicle has a newer report, show it.
export function refreshVehiclePopup() {
  const sel = state.selectedId && state.vehicles.get(state.selectedId);
  if (sel && vehiclePopup.isOpen() && sel !== lastPopupVehicle) {
    vehiclePopup.setContent(vehiclePopupHtml(sel));
    lastPopupVehicle = sel;
  }
}
