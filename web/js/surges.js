// Surging stops: every active (raised, not yet cleared) surge alert puts a pulsing ring
// on its stop, removed when the alert clears. The ring lets clicks through to the stop
// and the vehicles under it.

import { esc } from './format.js';
import { state } from './state.js';
import { map } from './map.js';

export const surgeMarkers = new Map(); // alert_id -> L.Marker
const surgeLayer = L.layerGroup().addTo(map);

// Where a surge is: its stop's position (else the alert's own place).
function placeOf(a) {
  const s = a.subject_kind === 'stop' ? state.stops.get(a.subject_id) : null;
  if (s) return [s.lat, s.lon];
  return Number.isFinite(a.lat) && Number.isFinite(a.lon) ? [a.lat, a.lon] : null;
}

/** Shows (or moves) the ring of an active surge alert; other alerts are ignored. */
export function upsertSurge(a) {
  if (a.kind !== 'surge') return;
  if (a.state === 'cleared') { removeSurge(a.alert_id); return; }
  const at = placeOf(a);
  if (!at) return;
  let m = surgeMarkers.get(a.alert_id);
  if (m) { m.setLatLng(at); return; }
  const stop = a.subject_kind === 'stop' ? a.subject_id : '';
  const icon = L.divIcon({
    className: `surge-marker sev-${esc(a.severity)}`,
    html: `<span class="pulse" data-stop-id="${esc(stop)}" data-alert-id="${esc(a.alert_id)}"></span>`,
    iconSize: [34, 34],
    iconAnchor: [17, 17],
  });
  m = L.marker(at, { icon, keyboard: false, interactive: false, zIndexOffset: -500 });
  surgeMarkers.set(a.alert_id, m.addTo(surgeLayer));
}

export function removeSurge(id) {
  const m = surgeMarkers.get(id);
  if (!m) return;
  surgeLayer.removeLayer(m);
  surgeMarkers.delete(id);
}

/** After a snapshot: the rings of exactly the active surges. */
export function syncSurges() {
  for (const id of [...surgeMarkers.keys()]) if (!state.alerts.has(id)) removeSurge(id);
  for (const a of state.alerts.values()) upsertSurge(a);
}

/** Stops marked as surging (for the tests). */
export const surgingStops = () => [...surgeMarkers.keys()]
  .map((id) => state.alerts.get(id)).filter(Boolean).map((a) => a.subject_id);
