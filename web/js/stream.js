// The live stream: the WebSocket connection to /ws (resume with ?since=, resync on a
// gap, reconnect with backoff), the snapshot and delta messages applied to the state,
// and the connection indicator.

import { BACKOFF_MIN_MS, BACKOFF_MAX_MS, OFFLINE_AFTER_MS, RESYNC_MIN_INTERVAL_MS } from './constants.js';
import { $ } from './format.js';
import { state } from './state.js';
import { map } from './map.js';
import { upsertVehicle } from './tracks.js';
import { vehiclePopup, refreshVehiclePopup } from './popups.js';
// incidentsDirty is a live binding: read as incidents.js last set it.
import { incidentCircles, incidentsDirty, upsertIncident, removeIncident, orderIncidents } from './incidents.js';
import { markAlertsDirty } from './panel.js';
import { upsertSurge, removeSurge, syncSurges } from './surges.js';
import { settle } from './operator.js';
import { wsAuthParam } from './auth.js';

function applySnapshot(msg, now) {
  state.epoch = msg.epoch ?? null; // identifies the server run; a resume names it
  const seen = new Set();
  for (const v of msg.vehicles || []) { upsertVehicle(v, now); seen.add(v.vehicle_id); }
  for (const id of [...state.tracks.keys()]) {
    if (!seen.has(id)) { state.tracks.delete(id); state.vehicles.delete(id); }
  }
  state.alerts.clear();
  for (const a of msg.alerts || []) state.alerts.set(a.alert_id, a);
  // Incident areas: redraw from the snapshot's active alerts (kept circles stay put).
  for (const id of [...incidentCircles.keys()]) if (!state.alerts.has(id)) removeIncident(id);
  for (const a of state.alerts.values()) { upsertIncident(a); settle(a); }
  syncSurges();
  if (state.selectedId && !state.tracks.has(state.selectedId)) map.closePopup(vehiclePopup);
}

function applyDelta(msg, now) {
  for (const v of msg.vehicles || []) upsertVehicle(v, now);
  for (const a of msg.alerts || []) {
    settle(a);
    if (a.state === 'cleared') { state.alerts.delete(a.alert_id); removeIncident(a.alert_id); removeSurge(a.alert_id); }
    else { state.alerts.set(a.alert_id, a); upsertIncident(a); upsertSurge(a); }
  }
  state.eventCount += (msg.vehicles || []).length + (msg.alerts || []).length;
}

// A snapshot is applied whenever it comes: first on a fresh connection, after a
// `subscribe`, after a resume the server could not serve from its replay buffer, or
// when the server dropped our backlog. Deltas must follow on from lastSeq.
function handleMessage(data) {
  let msg;
  try { msg = JSON.parse(data); } catch { return; } // not ours to crash on
  if (!msg || typeof msg !== 'object' || !Number.isFinite(msg.seq)) return;
  const now = performance.now();
  if (msg.type === 'snapshot') {
    applySnapshot(msg, now);
  } else if (msg.type === 'delta') {
    if (state.lastSeq !== null && msg.seq <= state.lastSeq) return; // duplicate/stale
    if (state.lastSeq !== null && msg.seq !== state.lastSeq + 1) {
      // A missed delta: resume from the last one applied, so that the server replays
      // the missing ones (or sends a snapshot). Rate-limited; otherwise keep going.
      state.gaps++;
      if (now - conn.resyncAt >= RESYNC_MIN_INTERVAL_MS) { conn.resyncAt = now; resync(); return; }
    }
    applyDelta(msg, now);
  } else {
    return;
  }
  if (incidentsDirty) orderIncidents();
  state.lastSeq = msg.seq;
  if (msg.type === 'snapshot' || (msg.alerts && msg.alerts.length)) markAlertsDirty();
  if (msg.time) { state.serverTime = msg.time; state.serverTimeAt = now; }
  refreshVehiclePopup();
}

// Connection with automatic reconnect: 0.5 s doubling to 10 s; resume with ?since=.
const conn = { ws: null, backoff: BACKOFF_MIN_MS, timer: null, downSince: performance.now(), resyncAt: -Infinity };
export const isConnected = () => !!conn.ws && conn.ws.readyState === WebSocket.OPEN;

export function connect() {
  clearTimeout(conn.timer);
  const proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
  // Resume names the run's epoch: a restarted server answers with a snapshot.
  const since = state.lastSeq !== null
    ? `?since=${state.lastSeq}` + (state.epoch != null ? `&epoch=${state.epoch}` : '')
    : '';
  let ws;
  // A token kept in this browser goes along (reads may need it; a browser's
  // WebSocket cannot send a header).
  const auth = wsAuthParam(since ? '&' : '?');
  try { ws = new WebSocket(`${proto}//${location.host}/ws${since}${auth}`); } catch { scheduleReconnect(); return; }
  conn.ws = ws;
  ws.onopen = () => { conn.backoff = BACKOFF_MIN_MS; conn.downSince = null; setConnection('connected'); };
  ws.onmessage = (e) => { if (conn.ws === ws) handleMessage(e.data); }; // ignore a replaced socket
  ws.onclose = () => { if (conn.ws === ws) { conn.ws = null; scheduleReconnect(); } };
  ws.onerror = () => {}; // a close event always follows
}

// Drop the current socket and reconnect at once with ?since=lastSeq.
function resync() {
  const ws = conn.ws;
  conn.ws = null; // its close and any message still queued on it are ignored
  if (ws) ws.close(1000, 'resync');
  connect();
}

function scheduleReconnect() {
  if (conn.downSince === null) conn.downSince = performance.now();
  updateConnectionState();
  clearTimeout(conn.timer);
  conn.timer = setTimeout(connect, conn.backoff);
  conn.backoff = Math.min(conn.backoff * 2, BACKOFF_MAX_MS);
}

export function updateConnectionState() {
  if (isConnected()) return setConnection('connected');
  const longDown = conn.downSince !== null && performance.now() - conn.downSince > OFFLINE_AFTER_MS;
  setConnection(!navigator.onLine || longDown ? 'offline' : 'reconnecting');
}

function setConnection(s) {
  const text = s === 'reconnecting' && state.lastSeq === null ? 'connecting…' : s;
  if ($('connection').dataset.state !== s) $('connection').dataset.state = s;
  if ($('connection-text').textContent !== text) $('connection-text').textContent = text;
}

window.addEventListener('online', () => { if (!conn.ws) { conn.backoff = BACKOFF_MIN_MS; connect(); } });
window.addEventListener('offline', updateConnectionState);
