// The drawer under the map: the charts pane and the line view pane, shown side by side
// when both are open. The map shrinks to make room (and is told so).

import { $ } from './format.js';
import { map } from './map.js';

const resizers = new Map(); // pane id -> function redrawing its charts at the new size

/** Calls `fn` whenever pane `id` changes size while shown. */
export function onPaneResize(id, fn) { resizers.set(id, fn); }

function layout() {
  const panes = [...$('drawer').querySelectorAll('.pane')];
  $('drawer').hidden = panes.every((p) => p.hidden);
  map.invalidateSize({ pan: false });
  // After the browser has laid the drawer out: charts take their pane's size.
  requestAnimationFrame(() => {
    for (const p of panes) if (!p.hidden && resizers.has(p.id)) resizers.get(p.id)();
  });
}

export function showPane(id) {
  if (!$(id).hidden) return;
  $(id).hidden = false;
  layout();
}

export function hidePane(id) {
  if ($(id).hidden) return;
  $(id).hidden = true;
  layout();
}

export const paneShown = (id) => !$(id).hidden;

let resizeTimer = null;
window.addEventListener('resize', () => {
  clearTimeout(resizeTimer);
  resizeTimer = setTimeout(layout, 150);
});
