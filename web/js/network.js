// The static network: routes and stops loaded from GET /api/routes and GET /api/stops
// (retried until they come) and drawn on the map.

import { $ } from './format.js';
import { state } from './state.js';
import { map, sharedCanvas, routesLayer, stopsLayer, routeLines } from './map.js';
import { onStopClick } from './stop-popup.js';
import { buildLineFilter, applyLineFilter } from './panel.js';
import { authFetch } from './auth.js';

async function fetchJson(url) {
  const res = await authFetch(url, { cache: 'no-store' });
  if (!res.ok) throw new Error(`${url}: HTTP ${res.status}`);
  return res.json();
}

export async function loadNetwork() {
  try {
    const [routes, stops] = await Promise.all([fetchJson('/api/routes'), fetchJson('/api/stops')]);
    drawNetwork(routes, stops);
  } catch (err) {
    $('substats').textContent = `Could not load the network (${err.message}); retrying…`;
    setTimeout(loadNetwork, 5000);
  }
}

function drawNetwork(routes, stops) {
  routesLayer.clearLayers(); stopsLayer.clearLayers(); routeLines.clear();
  const bounds = L.latLngBounds([]);
  for (const r of routes) {
    state.routes.set(r.route_id, r);
    if (!r.shape || r.shape.length < 2) continue;
    const line = L.polyline(r.shape, { renderer: sharedCanvas, color: r.color, weight: r.mode === 'rail' || r.mode === 'subway' ? 5 : r.mode === 'bus' ? 2.5 : 3.5, dashArray: r.mode === 'ferry' ? '6 6' : null, opacity: 0.8, interactive: false });
    routeLines.set(r.route_id, line.addTo(routesLayer));
    bounds.extend(line.getBounds());
  }
  for (const s of stops) {
    state.stops.set(s.stop_id, s);
    L.circleMarker([s.lat, s.lon], { renderer: sharedCanvas, radius: 3, weight: 1, color: '#37474f', fillColor: '#fff', fillOpacity: 1 })
      .on('click', (e) => onStopClick(e, s)).addTo(stopsLayer);
  }
  if (bounds.isValid()) map.fitBounds(bounds, { padding: [20, 20] });
  buildLineFilter(routes);
  applyLineFilter();
}
