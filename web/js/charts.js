// The charts of the last hour (uPlot, global `uPlot`): the on-time share of vehicles,
// the active alerts by kind, riders waiting and events ingested per second, from
// GET /api/series (sampled by the dashboard every 10 s), against simulated time in the
// city's local time. Fetched when the pane opens and every sample while it stays open.

import { $ } from './format.js';
import { authFetch } from './auth.js';
import { cityOffsetMin } from './clock.js';
import { showPane, hidePane, paneShown, onPaneResize } from './drawer.js';

const KIND_COLORS = { surge: '#7048e8', delay: '#e67700', breakdown: '#5c0000', bunching: '#0b7285',
  gapping: '#1971c2', crowding: '#a61e4d', incident: '#343a40' };
const CHART_HEIGHT = 96;

const view = { plots: [], timer: null, run: 0, data: null, error: null };

// The four charts: title, y-axis label, and the series taken from the answer.
function specs(series) {
  const kinds = Object.keys(series.alerts || {});
  return [
    { id: 'on-time', title: 'On time (%)', range: [0, 100], series: [{ label: 'on time', stroke: '#2b9348', width: 2,
      values: (series.on_time_share || []).map((v) => (v == null ? null : Math.round(v * 1000) / 10)) }] },
    { id: 'alerts', title: 'Active alerts', series: kinds.map((k) => ({ label: k, stroke: KIND_COLORS[k] || '#546e7a', width: 1.5,
      values: series.alerts[k] })) },
    { id: 'waiting', title: 'Riders waiting', series: [{ label: 'waiting', stroke: '#7048e8', width: 2, fill: 'rgba(112,72,232,0.08)',
      values: series.riders_waiting || [] }] },
    { id: 'events', title: 'Events / s', series: [{ label: 'events/s', stroke: '#1565c0', width: 2,
      values: series.events_per_s || [] }] },
  ];
}

// uPlot's time axis in the city's local time: x is local "UTC" seconds, shown as UTC.
const localDate = (ts) => uPlot.tzDate(new Date(ts * 1e3), 'Etc/UTC');

// Counts start at 0 (and go up to at least 1, so a quiet hour is a flat line at 0).
const fromZero = (u, min, max) => [0, max > 0 ? max * 1.1 : 1];

/** The time axis's labels: HH:MM (with seconds over spans under 10 minutes). */
export function timeAxis(u, splits) {
  const xs = u.data[0], span = xs.length ? xs[xs.length - 1] - xs[0] : 0;
  return splits.map((t) => new Date(t * 1000).toISOString().slice(11, span < 600 ? 19 : 16));
}

function chartWidth() {
  const box = $('charts');
  return Math.max(160, Math.floor((box.clientWidth - 12) / 2));
}

function draw() {
  const s = view.data;
  if (!s || typeof uPlot === 'undefined') return;
  // Samples without a simulated time yet (before the first record) are left out.
  const keep = (s.sim_ms || []).map((t, i) => (Number.isFinite(t) ? i : -1)).filter((i) => i >= 0);
  const offset = cityOffsetMin() * 60;
  const xs = keep.map((i) => s.sim_ms[i] / 1000 + offset);
  const charts = specs(s);
  const width = chartWidth();
  const sameShape = view.plots.length === charts.length
    && charts.every((c, k) => view.plots[k].series.length === c.series.length + 1);
  if (!sameShape) {
    for (const p of view.plots) p.destroy();
    view.plots = [];
    $('charts').innerHTML = '';
    for (const c of charts) {
      const box = document.createElement('div');
      box.className = 'chart';
      box.dataset.chart = c.id;
      $('charts').appendChild(box);
      const opts = {
        title: c.title, width, height: CHART_HEIGHT, tzDate: localDate,
        legend: { show: c.series.length > 1, live: false },
        cursor: { drag: { x: false, y: false } },
        scales: { x: { time: true }, y: { range: c.range || fromZero } },
        axes: [{ size: 24, space: 70, font: '11px system-ui', values: timeAxis }, { size: 52, font: '11px system-ui' }],
        series: [{}, ...c.series.map((x) => ({ label: x.label, stroke: x.stroke, width: x.width, fill: x.fill, spanGaps: true }))],
      };
      view.plots.push(new uPlot(opts, [[], ...c.series.map(() => [])], box));
    }
  }
  charts.forEach((c, k) => {
    view.plots[k].setData([xs, ...c.series.map((x) => keep.map((i) => (x.values[i] ?? null)))]);
  });
  const n = xs.length;
  $('charts-note').textContent = view.error
    ? `update failed (${view.error})`
    : `${n} sample${n === 1 ? '' : 's'}, every ${s.every_s} s${n < 2 ? ' — the lines start with the second' : ''}`;
}

async function refresh() {
  try {
    const res = await authFetch('/api/series', { cache: 'no-store' });
    if (!res.ok) throw new Error(`HTTP ${res.status}`);
    view.data = await res.json();
    view.error = null;
  } catch (err) {
    view.error = err.message;
  }
  if (paneShown('charts-pane')) draw();
}

function resize() {
  const width = chartWidth();
  for (const p of view.plots) p.setSize({ width, height: CHART_HEIGHT });
}

// Fetches now, then again after each sample's interval (2 to 10 s) while open.
async function poll(run) {
  await refresh();
  if (run !== view.run || !paneShown('charts-pane')) return;
  const every = Math.max(2, Math.min(10, Number(view.data && view.data.every_s) || 10));
  view.timer = setTimeout(() => poll(run), every * 1000);
}

export function openCharts() {
  showPane('charts-pane');
  $('charts-toggle').setAttribute('aria-pressed', 'true');
  clearTimeout(view.timer);
  view.run = (view.run || 0) + 1;
  poll(view.run);
}

export function closeCharts() {
  hidePane('charts-pane');
  $('charts-toggle').setAttribute('aria-pressed', 'false');
  clearTimeout(view.timer);
  view.timer = null;
  view.run = (view.run || 0) + 1;
}

/** What the charts show (for the tests): per chart, its samples and series. */
export const chartsShown = () => view.plots.map((p, k) => ({
  id: ['on-time', 'alerts', 'waiting', 'events'][k],
  points: p.data[0].length,
  series: p.data.slice(1).map((ys) => ys.filter((y) => y != null).length),
}));

onPaneResize('charts-pane', () => { if (view.plots.length) resize(); else draw(); });
$('charts-toggle').addEventListener('click', () => (paneShown('charts-pane') ? closeCharts() : openCharts()));
$('charts-pane').querySelector('.pane-close').addEventListener('click', closeCharts);
