// The operator's page in a real browser (Debian's Chromium driven by playwright-core,
// against real twins started here): the simulated clock, the search box, surging stops
// on the map, the charts of the last hour, the line view with its headways and string
// line, and acknowledging and muting alerts with the token. Every wait has a deadline;
// every test fails loudly. Screenshots go to target/browser/.
//
//   node --test tests/browser/
//
// STREAMCITY_BIN overrides the binary (default target/release/streamcity);
// CHROMIUM the browser (default /usr/bin/chromium).

import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, existsSync } from 'node:fs';
import { chromium } from 'playwright-core';
import path from 'node:path';
import { ARGS, BIN, CHROMIUM, OUT, startTwin as start, stopTwin } from './twin.mjs';

const TOKEN = 'operator-page-token-0123456789';
// Samples for the charts every 2 s instead of 10 where the twin takes it.
const ENV = { ...process.env, STREAMCITY_SERIES_EVERY_MS: '2000' };
const startTwin = (args) => start(args, ENV);

let browser;

before(async () => {
  assert.ok(existsSync(BIN), `the twin's binary is missing: ${BIN} (run cargo build --release)`);
  assert.ok(existsSync(CHROMIUM), `Chromium is missing: ${CHROMIUM} (apt-get install chromium)`);
  mkdirSync(OUT, { recursive: true });
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ARGS, timeout: 30_000 });
});

after(async () => {
  await browser?.close();
});

/**
 * Opens the page, collecting console errors and warnings and page errors (`allowed`:
 * patterns of messages expected, e.g. a 401 the page answers by asking for the token).
 */
async function open(url, allowed = []) {
  const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
  page.setDefaultTimeout(20_000);
  const problems = [];
  page.on('console', (m) => {
    if ((m.type() === 'error' || m.type() === 'warning') && !allowed.some((re) => re.test(m.text()))) {
      problems.push(`${m.type()}: ${m.text()}`);
    }
  });
  page.on('pageerror', (e) => problems.push(`pageerror: ${e.message}`));
  await page.goto(url, { timeout: 20_000 });
  return { page, problems };
}

/** Metres between two {lat, lng} points (equirectangular: fine at city scale). */
function metres(a, b) {
  const k = Math.cos((a.lat * Math.PI) / 180);
  return Math.hypot(a.lat - b.lat, (a.lng - b.lng) * k) * 111_320;
}

/** Opens the charts and waits until each has `points` samples with values. */
async function chartsDrawn(page, points) {
  if ((await page.locator('#charts-toggle').getAttribute('aria-pressed')) !== 'true') await page.locator('#charts-toggle').click();
  await page.waitForFunction((n) => {
    const c = window.streamcity.charts;
    return c.length === 4 && c.every((chart) => chart.points >= n && chart.series.some((k) => k >= n));
  }, points, { timeout: 60_000 });
  return page.evaluate(() => window.streamcity.charts);
}

/** Opens the line view of `routeId` through the search box (its short name). */
async function openLineBySearch(page, routeId) {
  await page.waitForFunction(() => document.querySelectorAll('#line-filter input').length > 0, null, { timeout: 20_000 });
  const route = await page.evaluate(async (id) => (await (await fetch('/api/routes')).json()).find((r) => r.route_id === id), routeId);
  assert.ok(route, `line ${routeId} exists`);
  await page.locator('#search').fill(route.short_name || route.route_id);
  const match = page.locator(`#search-results li[data-type="line"][data-id="${routeId}"]`);
  await match.waitFor({ timeout: 5_000 });
  await match.click();
  return route;
}

describe('the operator\'s page at 17:00, ten times real time', () => {
  // A crowd of 600 riders pours into S0042 from 17:00: a surge within seconds.
  let twin, page, problems;

  before(async () => {
    twin = await startTwin(['--start', '17:00', '--speed', '10', '--crowd', 'S0042@17:00+3x600']);
    ({ page, problems } = await open(twin.url));
    await page.waitForFunction(() => window.streamcity && window.streamcity.vehicles.size >= 100, null, { timeout: 20_000 });
  });

  after(async () => {
    await page?.close();
    await stopTwin(twin);
  });

  test('(a) the header shows the twin\'s simulated time', async () => {
    await page.waitForFunction(() => document.getElementById('sim-clock').dataset.ms, null, { timeout: 20_000 });
    assert.match(await page.locator('#sim-time').innerText(), /^17:0\d:\d\d$/);
    assert.match(await page.locator('#sim-speed').innerText(), /×10/);
    const t0 = Number(await page.locator('#sim-clock').getAttribute('data-ms'));
    await page.waitForTimeout(1_500);
    const t1 = Number(await page.locator('#sim-clock').getAttribute('data-ms'));
    assert.ok(t1 - t0 >= 10_000, `the clock ran ${t1 - t0} simulated ms in 1.5 s at ×10`);
  });

  test('(b) the search box finds a stop by name and flies to it with its popup', async () => {
    // A stop whose name no other stop has, typed in lower case and in part.
    const stop = await page.evaluate(async () => {
      const stops = await (await fetch('/api/stops')).json();
      const count = new Map();
      for (const s of stops) count.set(s.name, (count.get(s.name) || 0) + 1);
      return stops.find((s) => count.get(s.name) === 1 && s.name.length >= 6 && !s.parent_station);
    });
    assert.ok(stop, 'a stop with a name of its own');
    await page.waitForFunction(() => document.querySelectorAll('#line-filter input').length > 0, null, { timeout: 20_000 });
    await page.locator('#search').fill(stop.name.toLowerCase());
    const first = page.locator('#search-results li[data-index="0"]');
    await first.waitFor({ timeout: 5_000 });
    assert.equal(await first.getAttribute('data-type'), 'stop', await page.locator('#search-results').innerText());
    assert.equal(await first.getAttribute('data-id'), stop.stop_id);
    // A part of the name finds it too, among the best matches.
    await page.locator('#search').fill(stop.name.toLowerCase().slice(1, -1));
    await page.locator(`#search-results li[data-type="stop"][data-id="${stop.stop_id}"]`).waitFor({ timeout: 5_000 });
    await page.locator('#search').press('Escape');
    await page.locator('#search').fill(stop.name.toUpperCase());
    await first.waitFor({ timeout: 5_000 });
    await page.locator('#search').press('Enter');
    // The map flies there and the stop's popup opens with its live activity.
    const popup = page.locator(`.leaflet-popup-content [data-stop-id="${stop.stop_id}"]`);
    await popup.waitFor({ timeout: 5_000 });
    await page.locator('.leaflet-popup-content .waiting').waitFor({ timeout: 10_000 });
    const view = await page.evaluate(() => ({ c: window.streamcity.map.getCenter(), z: window.streamcity.map.getZoom() }));
    const off = metres(view.c, { lat: stop.lat, lng: stop.lon });
    assert.ok(off < 400, `the map is centred ${Math.round(off)} m from ${stop.name}`);
    assert.ok(view.z >= 16, `zoomed in to ${view.z}`);
    assert.match(await popup.innerText(), new RegExp(stop.name.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')));
    // A vehicle by its id: the map goes to it and opens its popup.
    await page.locator('#search').fill('b07-003');
    const vehicle = page.locator('#search-results li[data-index="0"][data-type="vehicle"][data-id="B07-003"]');
    await vehicle.waitFor({ timeout: 5_000 });
    await vehicle.click();
    await page.locator('.leaflet-popup-content [data-vehicle-id="B07-003"]').waitFor({ timeout: 5_000 });
    const near = await page.evaluate(() => {
      const p = window.streamcity.screenPointOf('B07-003');
      const r = window.streamcity.map.getContainer().getBoundingClientRect();
      return p && p.x > r.left && p.x < r.right && p.y > r.top && p.y < r.bottom;
    });
    assert.ok(near, 'the vehicle is in view');
    await page.evaluate(() => { window.streamcity.map.closePopup(); });
  });

  test('(c) a surging stop is marked on the map while its surge lasts', async () => {
    await page.waitForFunction(() => window.streamcity.surgingStops.includes('S0042'), null, { timeout: 45_000 });
    const ring = page.locator('.surge-marker .pulse[data-stop-id="S0042"]');
    assert.equal(await ring.count(), 1, 'one ring on S0042');
    // The ring is on the stop: centre the map on it and compare screen positions.
    const stop = await page.evaluate(async () => (await (await fetch('/api/stops/S0042')).json()));
    await page.evaluate((s) => { window.streamcity.map.setView([s.lat, s.lon], 15, { animate: false }); }, stop);
    const box = await ring.boundingBox();
    const at = await page.evaluate((s) => {
      const p = window.streamcity.map.latLngToContainerPoint([s.lat, s.lon]);
      const r = window.streamcity.map.getContainer().getBoundingClientRect();
      return { x: r.left + p.x, y: r.top + p.y };
    }, stop);
    assert.ok(box, 'the ring is drawn');
    const dx = box.x + box.width / 2 - at.x, dy = box.y + box.height / 2 - at.y;
    assert.ok(Math.hypot(dx, dy) < 4, `the ring is ${Math.hypot(dx, dy).toFixed(1)} px off the stop`);
    // It is the active surge alert's: the alert names the stop, and is listed.
    assert.ok(stop.active_surge && stop.active_surge.subject_id === 'S0042', JSON.stringify(stop.active_surge));
    await page.locator('#alerts .alert-item[data-kind="surge"]').first().waitFor({ timeout: 10_000 });
  });

  test('(d) the charts of the last hour draw the series', async () => {
    const charts = await chartsDrawn(page, 2);
    assert.deepEqual(charts.map((c) => c.id), ['on-time', 'alerts', 'waiting', 'events']);
    assert.equal(await page.locator('#charts .chart canvas').count(), 4, 'four uPlot canvases');
    const size = await page.locator('#charts .chart canvas').first().boundingBox();
    assert.ok(size.width > 100 && size.height > 40, `the canvas is ${size.width}×${size.height}`);
    // The series behind them: the twin's own figures.
    const series = await page.evaluate(async () => (await fetch('/api/series')).json());
    const n = series.wall_ms.length;
    assert.ok(n >= 2, `${n} samples`);
    assert.ok(series.vehicles[n - 1] >= 100, `vehicles: ${series.vehicles}`);
    assert.ok(series.events_per_s.some((e) => e > 0), `events per second: ${series.events_per_s}`);
    assert.ok(series.sim_ms.filter(Number.isFinite).every((t) => new Date(t).toISOString().slice(11, 13) === '17'), `sim times: ${series.sim_ms}`);
  });

  test('(e) the line view lists a line\'s vehicles with headways and draws its string line', async () => {
    const route = await openLineBySearch(page, 'B07');
    // The map fits the line's shape.
    const fits = await page.evaluate((shape) => {
      const b = window.streamcity.map.getBounds().pad(0.05);
      return shape.every(([lat, lon]) => b.contains([lat, lon]));
    }, route.shape);
    assert.ok(fits, 'the line\'s shape is in view');
    await page.waitForFunction(() => {
      const l = window.streamcity.lineView;
      return l && l.routeId === 'B07' && l.rows >= 2 && l.traces >= 2 && l.points >= 2 * 2;
    }, null, { timeout: 60_000 });
    const line = await page.evaluate(() => window.streamcity.lineView);
    assert.equal(line.rows, line.vehicles, 'a row per vehicle');
    assert.ok(line.vehicles >= route.vehicles - 2, `${line.vehicles} of the line's ${route.vehicles} vehicles`);
    // Each direction's vehicles but the front one have a headway (m:ss), and the
    // scheduled headway is shown beside it.
    const cells = await page.locator('#line-vehicles tbody tr[data-vehicle-id]').evaluateAll((rows) =>
      rows.map((r) => ({ id: r.dataset.vehicleId, headway: r.querySelector('.headway').textContent, sched: r.querySelector('.sched').textContent, delay: r.querySelector('.delay').textContent })));
    const timed = cells.filter((c) => /^\d+:\d\d$/.test(c.headway));
    assert.ok(timed.length >= cells.length - 2, `headways: ${JSON.stringify(cells)}`);
    const sched = `${Math.floor(Math.round(route.headway_s) / 60)}:${String(Math.round(route.headway_s) % 60).padStart(2, '0')}`;
    assert.ok(cells.every((c) => c.sched === sched), `scheduled ${sched}: ${JSON.stringify(cells)}`);
    assert.ok(cells.every((c) => /^[+−]?\d+:\d\d$/.test(c.delay)), `delays as m:ss: ${JSON.stringify(cells)}`);
    assert.match(await page.locator('#line-vehicles').innerText(), /towards/);
    assert.ok(await page.locator('#string-line canvas').count() >= 1, 'the string line is drawn');
    // The charts and the line view side by side, at 17:00.
    await chartsDrawn(page, 2);
    await page.waitForTimeout(500);
    await page.screenshot({ path: path.join(OUT, 'operator-1700.png') });
    assert.deepEqual(problems, [], 'no console errors or warnings');
  });
});

test('(f) the operator gives the token once, then acknowledges and mutes from the page', async () => {
  // Reads need the token too: the page asks for it before opening /ws.
  const twin = await startTwin(['--api-token', TOKEN, '--require-token-for-reads',
    '--speed', '10', '--start', '08:00', '--crowd', 'S0042@08:00+3x600']);
  try {
    const { page, problems } = await open(twin.url, [/status of 401/]);
    const dialog = page.locator('#token-dialog');
    await dialog.waitFor({ state: 'visible', timeout: 10_000 });
    assert.match(await page.locator('#token-reason').innerText(), /token/);
    assert.equal(await page.evaluate(() => window.streamcity.lastSeq), null, 'nothing streamed before the token');
    // A wrong token: refused, asked again.
    await page.locator('#token-input').fill('not-the-right-token-000');
    await page.locator('#token-ok').click();
    await page.waitForFunction(() => document.getElementById('token-dialog').open
      && /refused/.test(document.getElementById('token-reason').textContent), null, { timeout: 10_000 });
    // The right one, with a name for the acknowledgements.
    await page.locator('#token-input').fill(TOKEN);
    await page.locator('#token-name').fill('control room 7');
    await page.locator('#token-ok').click();
    await dialog.waitFor({ state: 'hidden', timeout: 5_000 });
    await page.waitForFunction(() => window.streamcity.vehicles.size >= 100, null, { timeout: 20_000 });
    assert.equal(await page.evaluate(() => localStorage.getItem('streamcity.token')), TOKEN, 'the token is kept');

    // The crowd's surge: acknowledged from its button, no token asked again.
    const surge = page.locator('#alerts .alert-item[data-kind="surge"]').first();
    await surge.waitFor({ timeout: 45_000 });
    const id = await surge.getAttribute('data-alert-id');
    await surge.locator('button.ack').click();
    const item = page.locator(`.alert-item[data-alert-id="${id}"]`);
    await page.waitForFunction((id) => {
      const li = document.querySelector(`.alert-item[data-alert-id="${CSS.escape(id)}"]`);
      return li && li.classList.contains('acked');
    }, id, { timeout: 15_000 });
    assert.equal(await dialog.isVisible(), false, 'no second ask');
    assert.match(await item.locator('.ack-info').innerText(), /acknowledged by control room 7 at \d\d:\d\d/);
    assert.equal(await item.locator('button.ack').isVisible(), false, 'no Acknowledge button once acknowledged');
    const opacity = Number(await item.evaluate((li) => getComputedStyle(li).opacity));
    assert.ok(opacity < 0.9, `an acknowledged alert is dimmed (opacity ${opacity})`);
    // The server has it too.
    const server = await page.evaluate(async ([id, token]) => {
      const res = await fetch('/api/alerts?kind=surge', { headers: { Authorization: `Bearer ${token}` } });
      return (await res.json()).active.find((a) => a.alert_id === id);
    }, [id, TOKEN]);
    assert.equal(server.acknowledged.by, 'control room 7');

    // Muting surges for 30 min: the alert collapses under "muted (n)".
    await item.locator('select.mute').selectOption(`kind|surge|30`);
    await page.waitForFunction((id) => {
      const muted = document.getElementById('alerts-muted');
      return !document.getElementById('muted-alerts').hidden && muted.querySelector(`[data-alert-id="${CSS.escape(id)}"]`);
    }, id, { timeout: 15_000 });
    assert.match(await page.locator('#muted-alerts summary').innerText(), /^muted \(\d+\)$/);
    assert.equal(await page.locator(`#alerts [data-alert-id="${id}"]`).count(), 0, 'not in the live list any more');
    assert.equal(await page.locator('#muted-alerts').getAttribute('open'), null, 'collapsed');
    const mutes = await page.evaluate(async (token) => (await fetch('/api/mutes', { headers: { Authorization: `Bearer ${token}` } })).json(), TOKEN);
    assert.ok(mutes.some((m) => m.scope === 'kind' && m.value === 'surge' && m.by === 'control room 7'), JSON.stringify(mutes));
    const firstUntil = mutes.find((m) => m.value === 'surge').until;

    // A token that stopped working (changed on the server, say): the next write is
    // refused with a 401, the page asks again, and the write goes through.
    await page.evaluate(() => localStorage.setItem('streamcity.token', 'an-old-token-that-is-wrong'));
    await page.locator('#muted-alerts summary').click();
    await page.locator(`#alerts-muted [data-alert-id="${id}"] select.mute`).selectOption('kind|surge|120');
    await page.waitForFunction(() => document.getElementById('token-dialog').open
      && /refused/.test(document.getElementById('token-reason').textContent), null, { timeout: 10_000 });
    await page.locator('#token-input').fill(TOKEN);
    await page.locator('#token-ok').click();
    await dialog.waitFor({ state: 'hidden', timeout: 5_000 });
    await page.waitForFunction(async ([token, before]) => {
      const now = await (await fetch('/api/mutes', { headers: { Authorization: `Bearer ${token}` } })).json();
      const m = now.find((x) => x.value === 'surge');
      return m && m.until > before + 80 * 60_000;
    }, [TOKEN, firstUntil], { timeout: 10_000, polling: 250 });
    assert.equal(await page.evaluate(() => localStorage.getItem('streamcity.token')), TOKEN, 'the new token is kept');
    assert.deepEqual(problems, [], 'no console errors or warnings but the expected 401s');
    await page.close();
  } finally {
    await stopTwin(twin);
  }
});

test('the default city with the charts and a line view open (screenshot)', async () => {
  const twin = await startTwin([]);
  try {
    const { page, problems } = await open(twin.url);
    await page.waitForFunction(() => window.streamcity && window.streamcity.vehicles.size >= 100, null, { timeout: 20_000 });
    await openLineBySearch(page, 'T1');
    await chartsDrawn(page, 2);
    await page.waitForFunction(() => {
      const l = window.streamcity.lineView;
      return l && l.routeId === 'T1' && l.rows >= 1 && l.points >= 2;
    }, null, { timeout: 60_000 });
    await page.waitForTimeout(500);
    await page.screenshot({ path: path.join(OUT, 'operator-default.png') });
    assert.deepEqual(problems, [], 'no console errors or warnings');
    await page.close();
  } finally {
    await stopTwin(twin);
  }
});
