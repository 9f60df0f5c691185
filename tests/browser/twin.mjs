// What the browser tests share: the binary and the browser they use, and a twin
// started on a free port and stopped again, each with a deadline.
//
// STREAMCITY_BIN overrides the binary (default target/release/streamcity);
// CHROMIUM the browser (default /usr/bin/chromium).

import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import path from 'node:path';

export const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
export const BIN = process.env.STREAMCITY_BIN ?? path.join(root, 'target', 'release', 'streamcity');
export const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';
export const OUT = path.join(root, 'target', 'browser');
export const ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
  '--disable-component-update', '--disable-sync', '--no-first-run'];

/** Starts a twin on a free port (with `env`, the test's own by default); resolves with
 * its URL once it says where it listens, within 30 s. */
export function startTwin(args, env = process.env) {
  return new Promise((resolve, reject) => {
    const child = spawn(BIN, ['--port', '0', ...args], { stdio: ['ignore', 'pipe', 'pipe'], env });
    let out = '';
    const timer = setTimeout(() => { child.kill('SIGKILL'); reject(new Error(`the twin did not start within 30 s: ${out}`)); }, 30_000);
    child.stdout.on('data', (chunk) => {
      out += chunk;
      const m = out.match(/open (http:\/\/localhost:\d+)/);
      if (m) {
        clearTimeout(timer);
        resolve({ url: m[1], child });
      }
    });
    child.stderr.on('data', () => {});
    child.on('exit', (code) => { clearTimeout(timer); reject(new Error(`the twin exited with ${code}: ${out}`)); });
  });
}

/** Stops a twin with SIGTERM (SIGKILL after 10 s). */
export async function stopTwin(twin) {
  if (!twin || twin.child.exitCode !== null) return;
  const exited = new Promise((r) => twin.child.once('exit', r));
  twin.child.kill('SIGTERM');
  const killed = setTimeout(() => twin.child.kill('SIGKILL'), 10_000);
  await exited;
  clearTimeout(killed);
}
