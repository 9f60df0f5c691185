// StreamCity — live map page. Consumes the contract in dashboard/PROTOCOL.md:
// GET /api/status, GET /api/routes, GET /api/stops, and the /ws snapshot + delta stream.
// Plain ES2020 modules (js/), no build step; Leaflet 1.9 is the only dependency (global `L`,
// loaded by a classic script before this entry module). This module wires the others
// together: the layer control, the panel's timers, the test hooks; then it starts.

import { state } from './js/state.js';
import { map, routesLayer, stopsLayer, incidentsLayer, osm } from './js/map.js';
import { vehicleLayer } from './js/vehicle-layer.js';
import { renderAlerts, renderAlertsIfDirty, updateRelativeTimes, buildKindFilter, updateCounters } from './js/panel.js';
import { loadNetwork } from './js/network.js';
import { connect, updateConnectionState } from './js/stream.js';
import { exposeTestHooks } from './js/test-hooks.js';
import { startClock } from './js/clock.js';

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

// The alert kinds offered as filters are the server's (from /api/status).
startClock((status) => buildKindFilter(status.alert_kinds || []));
renderAlerts();
loadNetwork();
connect();
