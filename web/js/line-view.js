// The line view: a line's vehicles in order along it in each direction, each with its
// headway to the vehicle ahead against the timetable's (and its delay), and the line's
// string line: every vehicle's distance along the route over the last hour (x =
// simulated time, y = km along the route, one trace per vehicle), from
// GET /api/lines/{route_id}, refreshed every 5 s while open.

import { $, esc, formatDelay } from './format.js';
import { state } from './state.js';
import { map } from './map.js';
import { trackPosition } from './tracks.js';
import { openVehiclePopup } from './popups.js';
import { authFetch } from './auth.js';
import { cityOffsetMin } from './clock.js';
import { timeAxis } from './charts.js';
import { showPane, hidePane, paneShown, onPaneResize } from './drawer.js';

const REFRESH_MS = 5000;
const BUNCHED = 0.75, GAPPED = 1.5; // as the processor's bunching and gapping

const view = { routeId: null, data: null, error: null, timer: null, run: 0, plot: null, plotKey: '' };

/** "4:05" for 245 s; "–" when unknown. */
function mmss(s) {
  if (!Number.isFinite(s)) return '–';
  const t = Math.round(s);
  return `${Math.floor(t / 60)}:${String(t % 60).padStart(2, '0')}`;
}

/** A delay as a signed m:ss ("+1:05" late, "−0:40" early). */
function signedMmss(s) {
  if (!Number.isFinite(s)) return '–';
  return `${s > 0 ? '+' : s < 0 ? '−' : ''}${mmss(Math.abs(s))}`;
}

function headwayClass(v) {
  if (!Number.isFinite(v.headway_ratio)) return '';
  return v.headway_ratio < BUNCHED ? 'bunched' : v.headway_ratio > GAPPED ? 'gapped' : 'regular';
}

function renderTable() {
  const d = view.data, body = $('line-vehicles').querySelector('tbody');
  if (!d) { body.innerHTML = ''; return; }
  const stops = d.stops || [];
  const ends = [stops.length ? stops[stops.length - 1].name : 'the end', stops.length ? stops[0].name : 'the start'];
  const rows = [];
  for (const direction of [0, 1]) {
    const vs = d.vehicles.filter((v) => v.direction === direction);
    if (!vs.length) continue;
    rows.push(`<tr class="direction"><th colspan="5">towards ${esc(ends[direction])} <small>(${vs.length}, rear first)</small></th></tr>`);
    for (const v of vs) {
      const title = v.headway_from === 'trail'
        ? `when ${v.ahead} passed here`
        : v.headway_from === 'distance' ? `${Math.round(v.gap_m)} m behind ${v.ahead}, at the timetable's speed` : 'front of the line';
      rows.push(`<tr data-vehicle-id="${esc(v.vehicle_id)}" tabindex="0">
        <td class="vid">${esc(v.vehicle_id)}</td>
        <td class="next">${esc(v.next_stop_name || v.next_stop_id)}</td>
        <td class="headway ${headwayClass(v)}" title="${esc(title)}">${v.ahead ? mmss(v.headway_s) : '—'}</td>
        <td class="sched">${mmss(d.scheduled_headway_s)}</td>
        <td class="delay" title="${esc(formatDelay(v.delay_s))}">${signedMmss(v.delay_s)}</td></tr>`);
    }
  }
  body.innerHTML = rows.join('') || '<tr><td colspan="5" class="muted">No vehicles on this line now.</td></tr>';
}

function plotSize() {
  const box = $('string-line');
  return { width: Math.max(200, box.clientWidth - 4), height: Math.max(120, box.clientHeight - 34) };
}

function renderStringLine() {
  const d = view.data;
  if (!d || typeof uPlot === 'undefined') return;
  const sl = d.string_lines || { sim_ms: [], dist_m: {} };
  const keep = (sl.sim_ms || []).map((t, i) => (Number.isFinite(t) ? i : -1)).filter((i) => i >= 0);
  const offset = cityOffsetMin() * 60;
  const xs = keep.map((i) => sl.sim_ms[i] / 1000 + offset);
  const ids = Object.keys(sl.dist_m || {}).sort();
  const ys = ids.map((id) => keep.map((i) => {
    const m = sl.dist_m[id][i];
    return m == null ? null : Math.round(m) / 1000;
  }));
  const key = `${d.route_id}|${ids.join(',')}`;
  if (!view.plot || view.plotKey !== key) {
    if (view.plot) view.plot.destroy();
    $('string-line').innerHTML = '';
    const color = d.color || '#1565c0';
    const { width, height } = plotSize();
    view.plot = new uPlot({
      title: `String line, line ${d.short_name || d.route_id} (km along the route)`,
      width, height,
      tzDate: (ts) => uPlot.tzDate(new Date(ts * 1e3), 'Etc/UTC'),
      legend: { show: false },
      cursor: { drag: { x: false, y: false } },
      scales: { x: { time: true }, y: { range: [0, Math.max(0.1, d.length_m / 1000)] } },
      axes: [{ size: 24, space: 70, font: '11px system-ui', values: timeAxis }, { size: 40, font: '11px system-ui' }],
      series: [{}, ...ids.map((id) => ({ label: id, stroke: color, width: 1.5 }))],
    }, [xs, ...ys], $('string-line'));
    view.plotKey = key;
  } else {
    view.plot.setData([xs, ...ys]);
  }
}

function render() {
  const d = view.data;
  if (!d) return;
  $('line-title').innerHTML = `<i class="sw" style="--c:${esc(d.color)}"></i>Line ${esc(d.short_name || d.route_id)} <small>${esc(d.name)}</small>`;
  const n = d.vehicles.length;
  $('line-note').textContent = view.error
    ? `update failed (${view.error})`
    : `${n} vehicle${n === 1 ? '' : 's'} · ${(d.length_m / 1000).toFixed(1)} km · every ${mmss(d.scheduled_headway_s)} scheduled`;
  renderTable();
  renderStringLine();
}

async function refresh(routeId) {
  try {
    const res = await authFetch(`/api/lines/${encodeURIComponent(routeId)}`, { cache: 'no-store' });
    const body = await res.json().catch(() => null);
    if (!res.ok) throw new Error((body && body.error) || `HTTP ${res.status}`);
    if (routeId !== view.routeId) return;
    view.data = body;
    view.error = null;
  } catch (err) {
    if (routeId !== view.routeId) return;
    view.error = err.message;
  }
  if (paneShown('line-pane')) render();
}

async function poll(run, routeId) {
  await refresh(routeId);
  if (run !== view.run || !paneShown('line-pane')) return;
  view.timer = setTimeout(() => poll(run, routeId), REFRESH_MS);
}

/** Opens the line view of `routeId` (replacing another line's). */
export function openLineView(routeId) {
  if (!routeId) return;
  if (view.routeId !== routeId) {
    view.data = null;
    view.error = null;
    const r = state.routes.get(routeId);
    $('line-title').textContent = `Line ${r ? r.short_name || routeId : routeId}`;
    $('line-note').textContent = 'loading…';
    $('line-vehicles').querySelector('tbody').innerHTML = '';
  }
  view.routeId = routeId;
  showPane('line-pane');
  clearTimeout(view.timer);
  view.run++;
  poll(view.run, routeId);
}

export function closeLineView() {
  hidePane('line-pane');
  clearTimeout(view.timer);
  view.run++;
  view.routeId = null;
}

/** What the line view shows (for the tests). */
export const lineShown = () => (paneShown('line-pane') && view.data ? {
  routeId: view.data.route_id,
  vehicles: view.data.vehicles.length,
  rows: $('line-vehicles').querySelectorAll('tbody tr[data-vehicle-id]').length,
  traces: view.plot ? view.plot.series.length - 1 : 0,
  points: view.plot ? view.plot.data.slice(1).reduce((n, ys) => n + ys.filter((y) => y != null).length, 0) : 0,
} : null);

// A vehicle's row: fly to it and open its popup.
function flyToVehicle(id) {
  const tr = state.tracks.get(id);
  if (!tr) return;
  trackPosition(tr, performance.now());
  map.setView(map.unproject([tr.px, tr.py], 0), Math.max(map.getZoom(), 15), { animate: false });
  openVehiclePopup(id);
}
$('line-vehicles').addEventListener('click', (e) => {
  const row = e.target.closest('tr[data-vehicle-id]');
  if (row) flyToVehicle(row.dataset.vehicleId);
});
$('line-vehicles').addEventListener('keydown', (e) => {
  const row = e.target.closest('tr[data-vehicle-id]');
  if (row && (e.key === 'Enter' || e.key === ' ')) { e.preventDefault(); flyToVehicle(row.dataset.vehicleId); }
});
onPaneResize('line-pane', () => { if (view.plot) view.plot.setSize(plotSize()); else render(); });
$('line-pane').querySelector('.pane-close').addEventListener('click', closeLineView);
