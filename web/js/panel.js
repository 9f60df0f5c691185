// The side panel: the live alerts list (with each alert's Acknowledge button and mute
// menu; acknowledged alerts dimmed, muted ones collapsed under "muted (n)") and its kind
// filter, the line filter, the headline counters, and the panel's show/hide toggle.

import { ON_TIME_S, SILENT_MS, SEVERITIES } from './constants.js';
import { $, esc, formatAgo } from './format.js';
import { state, serverNow } from './state.js';
import { map, flashRenderer, routeLines } from './map.js';
import { trackPosition } from './tracks.js';
import { vehiclePopup, agoText } from './popups.js';
import { vehicleLayer } from './vehicle-layer.js';
import { incidentCircles, openIncidentPopup, applyIncidentVisibility } from './incidents.js';
import { acknowledge, muteOptions, muteFromOption, ackText, mutedText, isMuted, isPending } from './operator.js';
import { openLineView } from './line-view.js';

let alertsDirty = true;
const alertEls = new Map(); // alert_id -> <li>, reused so focus survives updates

export function sortedAlerts() {
  return [...state.alerts.values()].sort((a, b) => (b.raised_at - a.raised_at) || (b.timestamp - a.timestamp));
}

function alertElement(a) {
  let li = alertEls.get(a.alert_id);
  if (!li) {
    li = document.createElement('li');
    li.className = 'alert-item';
    li.tabIndex = 0;
    li.setAttribute('role', 'button');
    li.dataset.alertId = a.alert_id;
    li.dataset.kind = a.kind;
    li.innerHTML = `<span class="badge kind-${esc(a.kind)}">${esc(a.kind)}</span><span class="msg"></span><time class="rel"></time><span class="action"></span>
      <span class="ack-info"></span>
      <span class="ops"><button type="button" class="ack">Acknowledge</button><select class="mute" aria-label="Mute this line or kind">${muteOptions(a)}</select></span>`;
    li.addEventListener('click', () => focusAlert(li.dataset.alertId));
    li.addEventListener('keydown', (e) => {
      if (e.target !== li) return; // the buttons inside handle their own keys
      if (e.key === 'Enter' || e.key === ' ') { e.preventDefault(); focusAlert(li.dataset.alertId); }
    });
    const ops = li.querySelector('.ops');
    ops.addEventListener('click', (e) => e.stopPropagation());
    li.querySelector('.ack').addEventListener('click', () => acknowledge(li.dataset.alertId, renderAlerts));
    // The menu names the alert's line: built again when opened (the network may have
    // come after the alert).
    li.querySelector('.mute').addEventListener('focus', (e) => {
      const current = state.alerts.get(li.dataset.alertId);
      if (current) e.target.innerHTML = muteOptions(current);
    });
    li.querySelector('.mute').addEventListener('change', (e) => {
      const value = e.target.value;
      e.target.value = '';
      muteFromOption(value);
    });
    alertEls.set(a.alert_id, li);
  }
  const acked = !!a.acknowledged;
  li.className = `alert-item sev-${SEVERITIES.includes(a.severity) ? a.severity : 'low'}` + (acked ? ' acked' : '')
    + (isMuted(a) ? ' muted' : '') + (li.classList.contains('flash') ? ' flash' : '');
  li.querySelector('.msg').textContent = a.message;
  li.querySelector('.action').textContent = a.action || '';
  li.querySelector('.ack-info').textContent = [ackText(a), mutedText(a)].filter(Boolean).join(' · ');
  const ack = li.querySelector('.ack');
  ack.hidden = acked;
  ack.disabled = isPending(a.alert_id);
  li.title = `${a.kind} · ${a.severity} · ${a.subject_kind} ${a.subject_id}`;
  return li;
}

// When the next mute ends (wall ms): the list is drawn again then.
let nextUnmute = Infinity;

// Keyed update: create/remove only what changed and move an item only when out of place.
// Muted alerts go to the collapsed "muted (n)" list.
export function renderAlerts() {
  const shown = sortedAlerts().filter((a) => !state.hiddenKinds.has(a.kind)).slice(0, 200);
  const live = shown.filter((a) => !isMuted(a)), muted = shown.filter(isMuted);
  nextUnmute = Math.min(Infinity, ...muted.map((a) => a.muted_until));
  const keep = new Set(shown.map((a) => a.alert_id));
  for (const [id, li] of alertEls) if (!keep.has(id)) { li.remove(); alertEls.delete(id); }
  for (const [list, items] of [[$('alerts'), live], [$('alerts-muted'), muted]]) {
    items.forEach((a, i) => {
      const li = alertElement(a);
      if (list.children[i] !== li) list.insertBefore(li, list.children[i] || null);
    });
  }
  $('alerts-empty').hidden = live.length > 0;
  $('muted-alerts').hidden = muted.length === 0;
  $('muted-count').textContent = String(muted.length);
  updateRelativeTimes();
}

export function updateRelativeTimes() {
  const now = serverNow();
  for (const li of alertEls.values()) {
    const a = state.alerts.get(li.dataset.alertId);
    if (a) li.querySelector('.rel').textContent = formatAgo(now - a.raised_at);
  }
  // Relative times inside open popups (stop taps, surge and incident "raised …").
  for (const t of map.getPane('popupPane').querySelectorAll('time[data-ts]')) {
    const text = agoText(Number(t.dataset.ts));
    if (t.textContent !== text) t.textContent = text;
  }
}

// Pan/zoom to an alert (its lat/lon, else its subject) and flash it; an incident
// also gets its area's popup, zoomed so that the whole area fits.
function focusAlert(id) {
  const a = state.alerts.get(id);
  if (!a) return;
  let target = a.lat != null && a.lon != null ? L.latLng(a.lat, a.lon) : null;
  if (!target && a.subject_kind === 'stop' && state.stops.has(a.subject_id)) {
    const s = state.stops.get(a.subject_id); target = L.latLng(s.lat, s.lon);
  }
  if (!target && a.subject_kind === 'vehicle' && state.tracks.has(a.subject_id)) {
    const tr = state.tracks.get(a.subject_id); trackPosition(tr, performance.now());
    target = map.unproject([tr.px, tr.py], 0);
  }
  if (!target && a.subject_kind === 'route' && routeLines.has(a.subject_id)) {
    map.fitBounds(routeLines.get(a.subject_id).getBounds(), { padding: [30, 30] });
  }
  if (target) {
    let zoom = Math.max(map.getZoom(), 15);
    const circle = incidentCircles.get(id);
    if (circle) zoom = Math.min(zoom, map.getBoundsZoom(circle.getLatLng().toBounds(2 * circle.getRadius()), false, L.point(60, 60)));
    map.setView(target, zoom);
    if (circle && map.hasLayer(circle)) openIncidentPopup(id, target);
    const ring = L.circleMarker(target, { renderer: flashRenderer, radius: 22, weight: 4, fill: false, className: `flash-ring sev-${a.severity}`, interactive: false }).addTo(map);
    setTimeout(() => ring.remove(), 2600);
  }
  const li = alertEls.get(id);
  if (li) { li.classList.remove('flash'); void li.offsetWidth; li.classList.add('flash'); }
}

/** The alert kind filter, one chip per kind the server raises (`kinds`). */
export function buildKindFilter(kinds) {
  const box = $('kind-filter');
  box.innerHTML = '<legend class="sr-only">Alert kinds</legend>' + kinds.map((k) =>
    `<label class="chip"><input type="checkbox" value="${esc(k)}" ${state.hiddenKinds.has(k) ? '' : 'checked'}><span class="badge kind-${esc(k)}">${esc(k)}</span></label>`).join('');
  box.addEventListener('change', (e) => {
    if (e.target.checked) state.hiddenKinds.delete(e.target.value); else state.hiddenKinds.add(e.target.value);
    renderAlerts();
    if (e.target.value === 'incident') applyIncidentVisibility();
  });
}

export function buildLineFilter(routes) {
  const box = $('line-filter');
  box.innerHTML = '<legend class="sr-only">Lines</legend>' + routes.map((r) =>
    `<label class="line-option" title="${esc(r.name)} (${esc(r.mode)})"><input type="checkbox" value="${esc(r.route_id)}" ${state.hiddenLines.has(r.route_id) ? '' : 'checked'}>
      <i class="sw" style="--c:${esc(r.color)}"></i><span>${esc(r.short_name || r.route_id)}</span>${r.short_name && r.name !== r.short_name ? ` <small class="line-name">${esc(r.name)}</small>` : ''}<button type="button" class="line-view-open" data-route-id="${esc(r.route_id)}" title="Line view: its vehicles, headways and string line">view</button></label>`).join('');
}

function setLinesVisible(visible) {
  state.hiddenLines.clear();
  if (!visible) for (const id of state.routes.keys()) state.hiddenLines.add(id);
  for (const input of $('line-filter').querySelectorAll('input')) input.checked = visible;
  applyLineFilter();
}

// Hidden lines: their vehicles are not drawn and their route lines are dimmed.
export function applyLineFilter() {
  for (const [id, line] of routeLines) line.setStyle({ opacity: state.hiddenLines.has(id) ? 0.12 : 0.8 });
  const sel = state.selectedId && state.vehicles.get(state.selectedId);
  if (sel && state.hiddenLines.has(sel.route_id)) map.closePopup(vehiclePopup);
  if (map.hasLayer(vehicleLayer)) vehicleLayer._reset();
}

// A line's "view" button opens the line view (and does not toggle its checkbox).
$('line-filter').addEventListener('click', (e) => {
  const button = e.target.closest && e.target.closest('.line-view-open');
  if (!button) return;
  e.preventDefault();
  openLineView(button.dataset.routeId);
});
$('line-filter').addEventListener('change', (e) => {
  if (e.target.checked) state.hiddenLines.delete(e.target.value); else state.hiddenLines.add(e.target.value);
  applyLineFilter();
});
$('lines-all').addEventListener('click', () => setLinesVisible(true));
$('lines-none').addEventListener('click', () => setLinesVisible(false));

// Small screens start with the panel collapsed so the map is visible.
if (window.matchMedia('(max-width: 760px)').matches) document.body.classList.add('panel-collapsed');
$('panel-toggle').setAttribute('aria-expanded', String(!document.body.classList.contains('panel-collapsed')));
$('panel-toggle').addEventListener('click', () => {
  const collapsed = document.body.classList.toggle('panel-collapsed');
  $('panel-toggle').setAttribute('aria-expanded', String(!collapsed));
});

export function updateCounters() {
  let onTime = 0, silent = 0, broken = 0;
  for (const v of state.vehicles.values()) {
    if (Math.abs(v.delay_s) < ON_TIME_S) onTime++;
    if (v.status === 'broken_down') broken++;
    else if (state.serverTime - v.timestamp > SILENT_MS) silent++;
  }
  const n = state.vehicles.size;
  $('vehicle-count').textContent = n.toLocaleString('en-US');
  $('ontime-share').textContent = n ? `${((100 * onTime) / n).toFixed(1)}%` : '–';
  $('alert-count').textContent = String(state.alerts.size);
  $('event-rate').textContent = state.eventRate === null ? '–' : Math.round(state.eventRate).toLocaleString('en-US');
  $('substats').textContent = `${broken} broken down · ${silent} silent · ${state.gaps} gaps · ${vehicleLayer.fps} fps`;
}

// A message changed the alerts: render the list on the next panel tick.
export function markAlertsDirty() { alertsDirty = true; }

// The panel tick's alerts step: render the list if it changed since.
export function renderAlertsIfDirty() {
  if (alertsDirty || Date.now() >= nextUnmute) { alertsDirty = false; renderAlerts(); }
}
