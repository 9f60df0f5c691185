// The search box: a vehicle by id, a stop by name (case-insensitive substring, best
// matches first) or id, a line by short name, id or name. Choosing a match flies the
// map to it: a vehicle's position and popup, a stop's position and popup, a line's
// whole shape (and its line view).

import { $, esc } from './format.js';
import { state } from './state.js';
import { map, routeLines } from './map.js';
import { trackPosition } from './tracks.js';
import { openVehiclePopup } from './popups.js';
import { openStopPopup } from './stop-popup.js';
import { openLineView } from './line-view.js';

const MAX_RESULTS = 8;
let results = [];   // [{type, id, label, detail, score}]
let active = -1;    // highlighted result

// How well `text` matches `q` (both lower case): 0 no match; exact > prefix > a word's
// start > anywhere, shorter texts first among equals.
function score(text, q) {
  const t = String(text || '').toLowerCase();
  if (!q || !t) return 0;
  const i = t.indexOf(q);
  if (i < 0) return 0;
  const base = t === q ? 400 : i === 0 ? 300 : /[\s\-–/(.,]/.test(t[i - 1]) ? 200 : 100;
  return base - Math.min(99, t.length / 4);
}

/** The best matches of `query`, at most MAX_RESULTS, lines and exact hits first. */
export function search(query) {
  const q = query.trim().toLowerCase();
  if (!q) return [];
  const found = [];
  for (const r of state.routes.values()) {
    const s = Math.max(score(r.short_name, q) + 60, score(r.route_id, q) + 50, score(r.name, q));
    if (s > 60) found.push({ type: 'line', id: r.route_id, label: `Line ${r.short_name || r.route_id}`, detail: r.name, color: r.color, score: s + 30 });
  }
  for (const s of state.stops.values()) {
    const sc = Math.max(score(s.name, q), score(s.stop_id, q) - 20);
    if (sc > 0) found.push({ type: 'stop', id: s.stop_id, label: s.name, detail: s.stop_id, score: sc });
  }
  for (const v of state.vehicles.values()) {
    const sc = score(v.vehicle_id, q);
    if (sc > 0) {
      const r = state.routes.get(v.route_id);
      found.push({ type: 'vehicle', id: v.vehicle_id, label: v.vehicle_id, detail: `vehicle, line ${(r && r.short_name) || v.route_id}`, score: sc - 10 });
    }
  }
  found.sort((a, b) => b.score - a.score || a.label.localeCompare(b.label));
  return found.slice(0, MAX_RESULTS);
}

function render() {
  const list = $('search-results'), input = $('search');
  list.innerHTML = results.map((r, i) =>
    `<li role="option" id="search-opt-${i}" data-index="${i}" data-type="${r.type}" data-id="${esc(r.id)}" aria-selected="${i === active}">
      <span class="kind">${r.type}</span>${r.color ? `<i class="sw" style="--c:${esc(r.color)}"></i>` : ''}<b>${esc(r.label)}</b> <small>${esc(r.detail || '')}</small></li>`).join('')
    || (input.value.trim() ? '<li class="none" aria-disabled="true">No vehicle, stop or line matches.</li>' : '');
  const open = !!input.value.trim() && document.activeElement === input;
  list.hidden = !open;
  input.setAttribute('aria-expanded', String(open));
  if (active >= 0) input.setAttribute('aria-activedescendant', `search-opt-${active}`);
  else input.removeAttribute('aria-activedescendant');
}

/** Flies to a match: a vehicle or a stop with its popup, a line's shape and its view. */
export function choose(r) {
  if (!r) return;
  $('search-results').hidden = true;
  $('search').setAttribute('aria-expanded', 'false');
  if (r.type === 'vehicle') {
    const tr = state.tracks.get(r.id);
    if (!tr) return;
    trackPosition(tr, performance.now());
    map.setView(map.unproject([tr.px, tr.py], 0), Math.max(map.getZoom(), 16), { animate: false });
    openVehiclePopup(r.id);
  } else if (r.type === 'stop') {
    const s = state.stops.get(r.id);
    if (!s) return;
    map.setView([s.lat, s.lon], Math.max(map.getZoom(), 16), { animate: false });
    openStopPopup(s);
  } else if (r.type === 'line') {
    const line = routeLines.get(r.id);
    if (line) map.fitBounds(line.getBounds(), { padding: [30, 30], animate: false });
    openLineView(r.id);
  }
}

const input = $('search');
input.addEventListener('input', () => { results = search(input.value); active = results.length ? 0 : -1; render(); });
input.addEventListener('focus', () => { if (input.value.trim()) { results = search(input.value); render(); } });
input.addEventListener('blur', () => setTimeout(() => { $('search-results').hidden = true; input.setAttribute('aria-expanded', 'false'); }, 150));
input.addEventListener('keydown', (e) => {
  if (e.key === 'ArrowDown' || e.key === 'ArrowUp') {
    e.preventDefault();
    if (!results.length) return;
    active = (active + (e.key === 'ArrowDown' ? 1 : results.length - 1)) % results.length;
    render();
  } else if (e.key === 'Enter') {
    e.preventDefault();
    choose(results[Math.max(0, active)]);
  } else if (e.key === 'Escape') {
    input.value = ''; results = []; active = -1; render();
  }
});
// mousedown, not click: it comes before the input's blur hides the list.
$('search-results').addEventListener('mousedown', (e) => {
  const li = e.target.closest('li[data-index]');
  if (!li) return;
  e.preventDefault();
  choose(results[Number(li.dataset.index)]);
});
