// StreamCity — live map page. Consumes the contract in dashboard/PROTOCOL.md:
// GET /api/status, GET /api/routes, GET /api/stops, the /ws snapshot + delta stream,
// GET /api/series and GET /api/lines/{id} (charts, line view), and the operator's
// POST /api/alerts/{id}/ack and POST /api/mutes. Plain ES2020 modules (js/), no build
// step; Leaflet 1.9 and uPlot are the dependencies (globals `L` and `uPlot`, loaded by
// classic scripts before this entry module). This module wires the others together:
// the layer control, the panel's timers, the test hooks; then it starts (once reads
// are allowed: when they need the operator's token, the page asks for it first).

import { state } from './js/state.js';
import { map, routesLayer, stopsLayer, incidentsLayer, osm } from './js/map.js';
import { vehicleLayer } from './js/vehicle-layer.js';
import { renderAlerts, renderAlertsIfDirty, updateRelativeTimes, buildKindFilter, updateCounters } from './js/panel.js';
import { loadNetwork } from './js/network.js';
import { connect, updateConnectionState } from './js/stream.js';
import { exposeTestHooks } from './js/test-hooks.js';
import { $ } from './js/format.js';
import { startClock } from './js/clock.js';
import { readAccess } from './js/auth.js';
import './js/search.js';
import './js/charts.js';

const overlays = { 'Routes': routesLayer, 'Stops': stopsLayer, 'Vehicles': vehicleLayer, 'Incident areas': incidentsLayer,
  'OpenStreetMap basemap (online)': osm };
L.control.layers(null, overlays, { position: 'topleft' }).addTo(map);

// Events per second: count per 1 s window, exponentially smoothed.
setInterval(() => {
  state.eventRate = state.eventRate === null ? state.eventCount : 0.6 * state.eventRate + 0.4 * state.eventCount;
  state.eventCount = 0;
}, 1000);
setInterval(() => {
  updateCounters();
  renderAlertsIfDirty();
  updateConnectionState();
}, 500);
setInterval(updateRelativeTimes, 1000);

// Read-only test hooks: window.streamcity.
exposeTestHooks();

renderAlerts();
// Reads may need the operator's token: /api/status says so (401) before anything else
// is asked, /ws included. The alert kinds offered as filters are the server's.
readAccess((why) => { $('substats').textContent = why; }).then((status) => {
  startClock((s) => buildKindFilter(s.alert_kinds || []), status);
  loadNetwork();
  connect();
});
