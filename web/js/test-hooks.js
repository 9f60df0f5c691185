// Read-only test hooks for the browser tests: window.streamcity.

import { state } from './state.js';
import { map } from './map.js';
import { vehicleLayer } from './vehicle-layer.js';
import { sortedAlerts } from './panel.js';
import { surgingStops } from './surges.js';
import { chartsShown } from './charts.js';
import { lineShown } from './line-view.js';

export function exposeTestHooks() {
  window.streamcity = Object.freeze({
    get vehicles() { return state.vehicles; },
    get alerts() { return sortedAlerts(); },
    get lastSeq() { return state.lastSeq; },
    get gaps() { return state.gaps; },
    get fps() { return vehicleLayer.fps; },
    get map() { return map; },
    // Stops with a surge ring on the map.
    get surgingStops() { return surgingStops(); },
    // Per chart: its samples and the non-empty values of each series.
    get charts() { return chartsShown(); },
    // The line view: its line, vehicles listed, string line traces and points; or null.
    get lineView() { return lineShown(); },
    // Vehicle's current position in page (client) coordinates, or null.
    screenPointOf(id) {
      const p = vehicleLayer.containerPointOf(id);
      if (!p) return null;
      const rect = map.getContainer().getBoundingClientRect();
      return { x: rect.left + p.x, y: rect.top + p.y };
    },
  });
}
