// Screenshots of the operator's page for the docs: `node tests/browser/screenshots.mjs`
// (after `cargo build --release` and `npm ci` here) writes docs/console/*.png: the
// default city as it starts, and 17:00 at ten times real time with the charts open,
// then the line view of B07. STREAMCITY_BIN and CHROMIUM as for the browser tests.

import { chromium } from 'playwright-core';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { ARGS, CHROMIUM, root, startTwin, stopTwin } from './twin.mjs';

const out = path.join(root, 'docs', 'console');
mkdirSync(out, { recursive: true });
const browser = await chromium.launch({ executablePath: CHROMIUM, args: ARGS });
const deadline = setTimeout(() => { console.error('screenshots: not done within 5 minutes'); process.exit(1); }, 300_000);

async function shoot(args, name, after) {
  const twin = await startTwin(args);
  try {
    const page = await browser.newPage({ viewport: { width: 1440, height: 900 } });
    await page.goto(twin.url);
    await page.waitForFunction(() => window.streamcity && window.streamcity.vehicles.size >= 100, null, { timeout: 30_000 });
    await page.waitForTimeout(20_000); // alerts and charts gather
    await page.screenshot({ path: path.join(out, `${name}.png`) });
    if (after) await after(page, name);
    await page.close();
  } finally {
    await stopTwin(twin);
  }
}

await shoot([], 'default-city');
await shoot(['--start', '17:00', '--speed', '10', '--crowd', 'S0042@17:00+3x600'], 'evening-x10', async (page, name) => {
  await page.locator('#charts-toggle').click();
  await page.waitForTimeout(3_000);
  await page.screenshot({ path: path.join(out, `${name}-charts.png`) });
  await page.locator('#search').fill('B07');
  const line = page.locator('#search-results li[data-type="line"]').first();
  await line.waitFor({ timeout: 5_000 });
  await line.click();
  await page.waitForTimeout(3_000);
  await page.screenshot({ path: path.join(out, `${name}-line.png`) });
});
clearTimeout(deadline);
await browser.close();
console.log(`screenshots in ${out}`);
