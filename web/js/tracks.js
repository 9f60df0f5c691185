// Vehicle tracks: the animation model that glides each vehicle from where it is drawn
// to its latest report, and the update of a vehicle from a report.

import { MAX_EXTRAPOLATION_MS, SNAP_DISTANCE_M, ANGLE_STEPS, OCC_LEVELS } from './constants.js';
import { state } from './state.js';
import { map } from './map.js';

// Animation model: when a report arrives, the vehicle glides from where it is drawn
// now (x0,y0) to the reported point (x1,y1) over the interval between its last two
// reports (≈1 s), then keeps going along the same line for at most
// MAX_EXTRAPOLATION_MS before holding still.
export function trackPosition(tr, now) {
  const f = Math.min((now - tr.t0) / tr.dur, 1 + MAX_EXTRAPOLATION_MS / tr.dur);
  tr.px = tr.x0 + (tr.x1 - tr.x0) * f;
  tr.py = tr.y0 + (tr.y1 - tr.y0) * f;
}

export function upsertVehicle(v, now) {
  const prev = state.tracks.get(v.vehicle_id);
  const p = map.project([v.lat, v.lon], 0);
  const tr = prev || { px: p.x, py: p.y };
  if (prev) trackPosition(prev, now);
  const moved = prev && distanceM(prev.v, v) < SNAP_DISTANCE_M;
  tr.x0 = moved ? tr.px : p.x; tr.y0 = moved ? tr.py : p.y;
  tr.x1 = p.x; tr.y1 = p.y; tr.t0 = now;
  const interval = prev ? v.timestamp - prev.v.timestamp : 1000;
  tr.dur = Math.min(3000, Math.max(250, interval || 1000));
  tr.angle = Math.round(((((v.bearing || 0) % 360) + 360) % 360) / (360 / ANGLE_STEPS)) % ANGLE_STEPS;
  tr.occ = v.capacity > 0 ? Math.min(OCC_LEVELS - 1, Math.floor((v.passengers / v.capacity) * OCC_LEVELS)) : 0;
  tr.v = v;
  state.tracks.set(v.vehicle_id, tr);
  state.vehicles.set(v.vehicle_id, v);
}

function distanceM(a, b) { // equirectangular, fine at city scale
  const k = Math.cos((a.lat * Math.PI) / 180);
  return Math.hypot(a.lat - b.lat, (a.lon - b.lon) * k) * 111320;
}
