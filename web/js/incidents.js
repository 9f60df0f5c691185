// Incident areas: every active incident alert with a place drawn as a circle on the
// map, coloured by severity, with its popup.

import { INCIDENT_DEFAULT_RADIUS_M, SEV_COLORS } from './constants.js';
import { esc, words } from './format.js';
import { state } from './state.js';
import { map, sharedCanvas, incidentsLayer } from './map.js';
import { agoHtml, lineChips, sevClass, openVehiclePopup } from './popups.js';
import { hitVehicle } from './vehicle-layer.js';

// Every active `incident` alert with a place is a translucent circle (evidence.radius_m)
// coloured by severity, on the shared canvas *behind* the stops, largest at the back,
// so a stop or a smaller area inside a larger one stays clickable. Vehicles (own canvas,
// hit-tested) win any click over an area.
export const incidentCircles = new Map(); // alert_id -> L.Circle
const incidentPopup = L.popup({ className: 'incident-popup', maxWidth: 320, minWidth: 220 });
let incidentPopupId = null;
export let incidentsDirty = false;        // a circle was added or resized: reorder (orderIncidents)

const incidentRadius = (a) => {
  const r = Number(a.evidence && a.evidence.radius_m);
  return Number.isFinite(r) && r > 0 ? r : INCIDENT_DEFAULT_RADIUS_M;
};

function incidentPopupHtml(a) {
  const ev = a.evidence || {}, rows = [];
  if (ev.incident_kind) rows.push(['Kind', esc(words(ev.incident_kind))]);
  if (ev.area) rows.push(['Area', esc(ev.area)]);
  rows.push(['Radius', `${Math.round(incidentRadius(a)).toLocaleString('en-US')} m`]);
  if (Number.isFinite(ev.speed_factor)) rows.push(['Traffic', `${Math.round(ev.speed_factor * 100)}% of normal speed`]);
  if (ev.transit_effect) rows.push(['Transit', esc(words(ev.transit_effect))]);
  if (Array.isArray(ev.affected_routes) && ev.affected_routes.length) rows.push(['Lines', lineChips(ev.affected_routes)]);
  if (Number.isFinite(ev.affected_customers)) rows.push(['Customers', ev.affected_customers.toLocaleString('en-US')]);
  rows.push(['Raised', agoHtml(a.raised_at)]);
  return `<div class="popup incident" data-alert-id="${esc(a.alert_id)}">
    <h3><span class="sev-badge ${sevClass(a.severity)}">${esc(a.severity)}</span> Incident <small>${esc(a.subject_id)}</small></h3>
    <p class="msg">${esc(a.message)}</p>
    <dl>${rows.map(([k, v]) => `<dt>${k}</dt><dd>${v}</dd>`).join('')}</dl></div>`;
}

export function openIncidentPopup(id, latlng) {
  const a = state.alerts.get(id), c = incidentCircles.get(id);
  if (!a || !c) return;
  incidentPopupId = id;
  incidentPopup.setLatLng(latlng || c.getLatLng()).setContent(incidentPopupHtml(a)).openOn(map);
}
incidentPopup.on('remove', () => { incidentPopupId = null; });

function onIncidentClick(e, id) {
  L.DomEvent.stopPropagation(e);
  const vid = hitVehicle(e.containerPoint);
  if (vid) openVehiclePopup(vid);
  else openIncidentPopup(id, e.latlng);
}

export function upsertIncident(a) {
  if (a.kind !== 'incident' || !Number.isFinite(a.lat) || !Number.isFinite(a.lon)) return;
  const color = SEV_COLORS[a.severity] || SEV_COLORS.low, radius = incidentRadius(a);
  // City-wide areas (km of radius) often overlap: fainter fill so the map stays readable.
  const style = { color, fillColor: color, weight: 1.5, opacity: 0.85, fillOpacity: radius > 1000 ? 0.07 : 0.16 };
  let c = incidentCircles.get(a.alert_id);
  if (c) {
    c.setLatLng([a.lat, a.lon]).setRadius(radius).setStyle(style);
  } else {
    const id = a.alert_id;
    c = L.circle([a.lat, a.lon], { ...style, radius, renderer: sharedCanvas, interactive: true })
      .on('click', (e) => onIncidentClick(e, id));
    incidentCircles.set(id, c);
    if (!state.hiddenKinds.has('incident')) incidentsLayer.addLayer(c);
  }
  incidentsDirty = true;
  if (incidentPopupId === a.alert_id && incidentPopup.isOpen()) incidentPopup.setContent(incidentPopupHtml(a));
}

export function removeIncident(id) {
  const c = incidentCircles.get(id);
  if (!c) return;
  incidentsLayer.removeLayer(c);
  incidentCircles.delete(id);
  if (incidentPopupId === id) map.closePopup(incidentPopup);
}

// Canvas draw order = click priority: areas behind the stops, big areas behind small ones.
export function orderIncidents() {
  incidentsDirty = false;
  [...incidentCircles.values()].filter((c) => map.hasLayer(c))
    .sort((p, q) => p.getRadius() - q.getRadius())
    .forEach((c) => c.bringToBack());
}
incidentsLayer.on('add', orderIncidents); // re-enabled from the layer control

// The "incident" chip of the alert-kind filter hides the areas as well.
export function applyIncidentVisibility() {
  const show = !state.hiddenKinds.has('incident');
  for (const c of incidentCircles.values()) {
    if (show && !incidentsLayer.hasLayer(c)) incidentsLayer.addLayer(c);
    else if (!show) incidentsLayer.removeLayer(c);
  }
  if (!show) map.closePopup(incidentPopup);
  orderIncidents();
}
