// The operator's actions on alerts: acknowledging one (POST /api/alerts/{id}/ack) and
// muting a line or a kind of alert for 30, 60 or 120 minutes (POST /api/mutes), with
// the token (js/auth.js). The server shows an action once it has read it back from
// the bus, so the alert changes with the next message; until then it is "pending".

import { $, esc, words } from './format.js';
import { state } from './state.js';
import { authFetch, operatorName } from './auth.js';

export const MUTE_MINUTES = [30, 60, 120];
const pendingAcks = new Set(); // alert ids acknowledged, not shown back yet

/** The line an alert is about: its route, a vehicle's line, or its evidence's. */
export function lineOf(a) {
  if (a.subject_kind === 'route' && state.routes.has(a.subject_id)) return a.subject_id;
  if (a.subject_kind === 'vehicle') {
    const v = state.vehicles.get(a.subject_id);
    if (v && state.routes.has(v.route_id)) return v.route_id;
  }
  const ev = a.evidence || {};
  for (const key of ['route_id', 'line']) if (typeof ev[key] === 'string' && state.routes.has(ev[key])) return ev[key];
  return null;
}

export const lineName = (id) => {
  const r = state.routes.get(id);
  return (r && r.short_name) || id;
};

/** Whether an alert is muted now (a mute's end is wall-clock time). */
export const isMuted = (a) => Number.isFinite(a.muted_until) && a.muted_until > Date.now();
export const isPending = (id) => pendingAcks.has(id);

/** Says what happened (or went wrong) under the alerts list for a while. */
function say(text, error = false) {
  const p = $('operator-message');
  p.textContent = text;
  p.classList.toggle('error', error);
  p.hidden = !text;
  clearTimeout(say.timer);
  say.timer = setTimeout(() => { p.hidden = true; }, 8000);
}

async function post(url, body, what) {
  let res;
  try {
    res = await authFetch(url, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify(body),
    }, `${what} needs the operator's token.`);
  } catch (err) {
    say(`${what} failed: ${err.message}`, true);
    return false;
  }
  if (res.ok) return true;
  const answer = await res.json().catch(() => null);
  const why = (answer && answer.error) || `HTTP ${res.status}`;
  say(res.status === 401 ? `${what}: no valid token given.` : `${what} failed: ${why}`, true);
  return false;
}

/** Acknowledges alert `id`; `onChange` redraws the list. */
export async function acknowledge(id, onChange) {
  if (pendingAcks.has(id)) return;
  pendingAcks.add(id);
  onChange();
  const ok = await post(`/api/alerts/${encodeURIComponent(id)}/ack`, { by: operatorName() }, 'Acknowledging');
  if (!ok) pendingAcks.delete(id);
  else say('Acknowledged.');
  onChange();
}

/** Mutes `scope` ({line} or {kind}) for `minutes`. */
export async function mute(scope, minutes) {
  const what = scope.line ? `line ${lineName(scope.line)}` : `${words(scope.kind)} alerts`;
  const ok = await post('/api/mutes', { ...scope, minutes, by: operatorName() }, `Muting ${what}`);
  if (ok) say(`Muted ${what} for ${minutes} min.`);
}

/** An alert came back with its acknowledgement (or went): nothing is pending for it. */
export function settle(a) {
  if (a.acknowledged || a.state === 'cleared') pendingAcks.delete(a.alert_id);
}

/** The mute menu's options for alert `a`: its line's, then its kind's. */
export function muteOptions(a) {
  const line = lineOf(a), options = ['<option value="">Mute…</option>'];
  if (line) {
    options.push(`<optgroup label="Line ${esc(lineName(line))}">${MUTE_MINUTES.map((m) =>
      `<option value="line|${esc(line)}|${m}">line ${esc(lineName(line))} for ${m} min</option>`).join('')}</optgroup>`);
  }
  options.push(`<optgroup label="All ${esc(words(a.kind))} alerts">${MUTE_MINUTES.map((m) =>
    `<option value="kind|${esc(a.kind)}|${m}">${esc(words(a.kind))} alerts for ${m} min</option>`).join('')}</optgroup>`);
  return options.join('');
}

/** Mutes what a mute menu's option value names (`line|B07|30`, `kind|surge|60`). */
export function muteFromOption(value) {
  const [what, id, minutes] = String(value).split('|');
  const m = Number(minutes);
  if (!id || !MUTE_MINUTES.includes(m)) return;
  if (what === 'line') mute({ line: id }, m);
  else if (what === 'kind') mute({ kind: id }, m);
}

/** "acknowledged by X at 14:02" for an acknowledged alert. */
export function ackText(a) {
  const ack = a.acknowledged;
  if (!ack) return isPending(a.alert_id) ? 'acknowledging…' : '';
  const at = Number.isFinite(ack.at) ? new Date(ack.at).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit', hourCycle: 'h23' }) : '?';
  return `✓ acknowledged by ${ack.by || 'someone'} at ${at}`;
}

/** "muted until 15:30" for a muted alert. */
export function mutedText(a) {
  return isMuted(a) ? `muted until ${new Date(a.muted_until).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit', hourCycle: 'h23' })}` : '';
}
