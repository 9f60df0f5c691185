// The map page in a real browser: Debian's Chromium, driven by playwright-core,
// against a real twin started here. Run by scripts/test.sh (after a release build).
//
//   node --test tests/browser/
//
// STREAMCITY_BIN overrides the binary (default target/release/streamcity);
// CHROMIUM the browser (default /usr/bin/chromium).

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, existsSync } from 'node:fs';
import { chromium } from 'playwright-core';
import path from 'node:path';
import { ARGS, BIN, CHROMIUM, OUT, startTwin, stopTwin } from './twin.mjs';

let browser;

before(async () => {
  assert.ok(existsSync(BIN), `the twin's binary is missing: ${BIN} (run cargo build --release)`);
  assert.ok(existsSync(CHROMIUM), `Chromium is missing: ${CHROMIUM} (apt-get install chromium)`);
  mkdirSync(OUT, { recursive: true });
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ARGS });
});

after(async () => {
  await browser?.close();
});

/** Opens the page, collecting console errors and warnings and page errors. */
async function open(url) {
  const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
  const problems = [];
  page.on('console', (m) => {
    if (m.type() === 'error' || m.type() === 'warning') problems.push(`${m.type()}: ${m.text()}`);
  });
  page.on('pageerror', (e) => problems.push(`pageerror: ${e.message}`));
  await page.goto(url);
  return { page, problems };
}

/**
 * Clicks a vehicle in view with no other within 25 px (so the click can only mean it)
 * and resolves with its id and its popup's text. A moving vehicle may leave the spot
 * between being found and being clicked: then another is tried, three times at most.
 */
async function openAVehiclePopup(page) {
  let id = null;
  let popup = null;
  const tried = [];
  for (let attempt = 0; attempt < 3 && !popup; attempt++) {
    await page.evaluate(() => { window.streamcity.map.closePopup(); });
    id = await page.evaluate((tried) => {
      const points = [...window.streamcity.vehicles.keys()]
        .map((k) => [k, window.streamcity.screenPointOf(k)])
        .filter(([, p]) => p && p.x > 50 && p.x < 1000 && p.y > 50 && p.y < 850);
      const alone = points.find(([k, p]) => !tried.includes(k)
        && points.every(([j, q]) => j === k || Math.hypot(p.x - q.x, p.y - q.y) > 25));
      return alone && alone[0];
    }, tried);
    assert.ok(id, 'a vehicle alone in view');
    tried.push(id);
    const at = await page.evaluate((id) => window.streamcity.screenPointOf(id), id);
    await page.mouse.click(at.x, at.y);
    const shown = page.locator('.leaflet-popup-content', { hasText: id });
    try {
      await shown.waitFor({ timeout: 3_000 });
      popup = shown;
    } catch {
      // moved away from the click: another one
    }
  }
  assert.ok(popup, `no vehicle's popup opened in 3 clicks (last ${id})`);
  return { id, popup, text: await popup.innerText() };
}

test('the map shows the city moving, vehicle details and an injected surge', async () => {
  // A crowd of 600 riders pours into S0042 from the start: a surge within seconds.
  const twin = await startTwin(['--speed', '5', '--start', '08:00', '--crowd', 'S0042@08:00+3x600']);
  try {
    const { page, problems } = await open(twin.url);
    await page.waitForFunction(() => window.streamcity && window.streamcity.vehicles.size >= 100, null, { timeout: 20_000 });

    // The simulated clock shows 08:0x on today's service day, and runs at 5x.
    const clock = page.locator('#sim-clock');
    await page.waitForFunction(() => document.getElementById('sim-clock').dataset.ms, null, { timeout: 20_000 });
    const t0 = Number(await clock.getAttribute('data-ms'));
    assert.match(await page.locator('#sim-time').innerText(), /^08:0\d:\d\d$/);
    assert.match(await page.locator('#sim-speed').innerText(), /×5/);
    assert.match(await page.locator('#sim-day').innerText(), new RegExp(new Date().toISOString().slice(0, 10)));
    // Every alert kind the server raises is offered as a filter.
    assert.equal(await page.locator('#kind-filter input').count(), 7);

    // Vehicles move.
    const before = await page.evaluate(() => Object.fromEntries([...window.streamcity.vehicles].map(([id, v]) => [id, [v.lat, v.lon]])));
    await page.waitForTimeout(2_000);
    const moved = await page.evaluate((before) => [...window.streamcity.vehicles].filter(([id, v]) => before[id] && (before[id][0] !== v.lat || before[id][1] !== v.lon)).length, before);
    assert.ok(moved >= 50, `only ${moved} vehicles moved in 2 s`);

    const t1 = Number(await clock.getAttribute('data-ms'));
    assert.ok(t1 - t0 >= 5_000, `the simulated clock advanced ${t1 - t0} ms in over 2 s at 5x`);

    // Clicking vehicles anywhere in view, edges included (opening a popup there pans
    // the map while the vehicle layer redraws), never throws.
    for (let i = 0; i < 30; i++) {
      const p = await page.evaluate((i) => {
        const ids = [...window.streamcity.vehicles.keys()];
        for (let j = 0; j < ids.length; j++) {
          const q = window.streamcity.screenPointOf(ids[(j * 7 + i * 13) % ids.length]);
          if (q && q.x > 5 && q.x < 1030 && q.y > 5 && q.y < 895) return q;
        }
        return null;
      }, i);
      if (p) await page.mouse.click(p.x, p.y);
      await page.waitForTimeout(300);
    }
    assert.deepEqual(problems, [], 'no errors while clicking around');
    await page.evaluate(() => { window.streamcity.map.closePopup(); });

    // Clicking a vehicle shows its details.
    const { id, text } = await openAVehiclePopup(page);
    const route = id.split('-')[0];
    assert.ok(text.includes(route), `the popup names the line ${route}: ${text}`);
    assert.match(text, /late|early|on time/, `the popup shows the delay: ${text}`);

    // The crowd's surge reaches the alerts panel.
    const surge = page.locator('#alerts .alert-item[data-kind="surge"]');
    await surge.first().waitFor({ timeout: 30_000 });
    assert.match(await surge.first().innerText(), /S0042/);

    await page.screenshot({ path: path.join(OUT, 'map.png') });
    assert.deepEqual(problems, [], 'no console errors or warnings');
    await page.close();
  } finally {
    await stopTwin(twin);
  }
});

test('a GTFS feed: the map opens on its city in its local time, lists its lines, and says where vehicles go', async () => {
  const feed = process.env.STREAMCITY_TEST_CAIRNS;
  assert.ok(feed && existsSync(feed), 'STREAMCITY_TEST_CAIRNS must name the Cairns feed (scripts/test.sh fetches it)');
  // Monday 2 June 2014, 08:00 in Cairns (UTC+10).
  const twin = await startTwin(['--gtfs', feed, '--date', '2014-06-02', '--start', '08:00', '--speed', '5']);
  try {
    const { page, problems } = await open(twin.url);
    await page.waitForFunction(() => window.streamcity && window.streamcity.vehicles.size >= 20, null, { timeout: 20_000 });
    await page.waitForFunction(() => document.getElementById('sim-clock').dataset.ms, null, { timeout: 20_000 });
    assert.match(await page.locator('#sim-time').innerText(), /^08:0\d:\d\d$/, 'the clock shows Cairns time');
    assert.match(await page.locator('#sim-day').innerText(), /Monday 2014-06-02/);
    assert.equal(await page.locator('#sim-zone').innerText(), 'UTC+10');
    // The map opens on Cairns, not on the built-in city's New York.
    const centre = await page.evaluate(() => window.streamcity.map.getCenter());
    assert.ok(centre.lat > -17.3 && centre.lat < -16.6 && centre.lng > 145.5 && centre.lng < 146.0,
      `the map is centred on ${JSON.stringify(centre)}`);
    // The lines panel: the feed's short names, with their long names.
    const lines = await page.locator('#line-filter').innerText();
    assert.match(lines, /110\s+City - Palm Cove/, lines);
    assert.equal(await page.locator('#line-filter input').count(), 22);
    // A vehicle's popup: where its trip goes, its next stop by name, how late it runs.
    const { id, text } = await openAVehiclePopup(page);
    const vehicle = await page.evaluate((id) => window.streamcity.vehicles.get(id), id);
    const trip = await page.evaluate(async (t) => (await fetch(`/api/trips/${encodeURIComponent(t)}`)).json(), vehicle.trip_id);
    assert.ok(trip.headsign, `trip ${vehicle.trip_id} has a headsign`);
    await page.locator('.leaflet-popup-content', { hasText: trip.headsign }).waitFor({ timeout: 5_000 });
    const stop = trip.stop_times.find((s) => s.stop_id === vehicle.next_stop_id);
    assert.ok(stop, `the next stop ${vehicle.next_stop_id} is a call of ${vehicle.trip_id}`);
    assert.ok(text.includes(stop.stop_name), `the popup names the next stop ${stop.stop_name}: ${text}`);
    assert.match(text, /late|early|on time/, `the popup shows the delay: ${text}`);
    await page.screenshot({ path: path.join(OUT, 'map-cairns.png') });
    assert.deepEqual(problems, [], 'no console errors or warnings');
    await page.close();
  } finally {
    await stopTwin(twin);
  }
});

test('the map stays smooth with 10,000 vehicles (measured, reported)', async () => {
  const twin = await startTwin(['--vehicles', '10000']);
  try {
    const { page, problems } = await open(twin.url);
    await page.waitForFunction(() => window.streamcity && window.streamcity.vehicles.size >= 9_000, null, { timeout: 30_000 });
    const samples = [];
    for (let i = 0; i < 5; i++) {
      await page.waitForTimeout(1_000);
      samples.push(await page.evaluate(() => window.streamcity.fps));
    }
    const fps = samples.reduce((a, b) => a + b, 0) / samples.length;
    console.log(`# fps with 10000 vehicles: ${fps.toFixed(1)} (samples ${samples.join(', ')})`);
    assert.ok(fps > 0, 'the vehicle layer draws');
    await page.screenshot({ path: path.join(OUT, 'map-10k.png') });
    assert.deepEqual(problems, [], 'no console errors or warnings');
    await page.close();
  } finally {
    await stopTwin(twin);
  }
});
