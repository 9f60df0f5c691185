// The vehicle layer: every vehicle drawn on one canvas from the sprite atlas, its
// hit-testing, and the map clicks and hovers that pick a vehicle.

import { ON_TIME_S, VERY_LATE_S, SILENT_MS, HIT_RADIUS_PX, STYLE, DRAW_ORDER, ANGLE_STEPS, OCC_LEVELS } from './constants.js';
import { state } from './state.js';
import { map } from './map.js';
import { trackPosition } from './tracks.js';
import { buildAtlas, setAtlasStride, blitSprite } from './atlas.js';
import { vehiclePopup, openVehiclePopup } from './popups.js';

function styleOf(v) {
  if (v.status === 'broken_down') return STYLE.BROKEN;
  if (state.serverTime - v.timestamp > SILENT_MS) return STYLE.SILENT;
  if (v.delay_s >= VERY_LATE_S) return STYLE.VERYLATE;
  if (v.delay_s >= ON_TIME_S) return STYLE.LATE;
  if (v.delay_s <= -ON_TIME_S) return STYLE.EARLY;
  return STYLE.ONTIME;
}

// All vehicles in one canvas. Positions are kept in Web-Mercator pixels at zoom 0
// (map.project(latlng, 0)), so a frame needs one multiply-add per vehicle instead
// of a latLngToContainerPoint call: container = p0 * 2^zoom - pixelOrigin + panePos.
const VehicleLayer = L.Layer.extend({
  onAdd(map) {
    const pane = map.getPane('vehicles') || map.createPane('vehicles');
    pane.style.zIndex = 450;           // above routes/stops (400), below markers and popups
    pane.style.pointerEvents = 'none'; // clicks go through to the stops; we hit-test on map 'click'
    this._canvas = L.DomUtil.create('canvas', 'vehicle-canvas leaflet-zoom-animated', pane);
    this._ctx = this._canvas.getContext('2d');
    this._buf = { n: 0, cap: 0 };
    this._frames = 0; this._fpsSince = performance.now(); this.fps = 0;
    this._drawMs = 0; this._lowRes = false; this._adaptedAt = 0;
    this._reset();
    this._tickBound = this._tick.bind(this);
    this._raf = requestAnimationFrame(this._tickBound);
  },
  onRemove() {
    cancelAnimationFrame(this._raf);
    L.DomUtil.remove(this._canvas);
    this._buf.n = 0; this.fps = 0;
  },
  getEvents() {
    return { move: this._reset, zoom: this._reset, viewreset: this._reset, resize: this._reset, zoomanim: this._animateZoom };
  },

  // Put the canvas back over the viewport (in layer coordinates) and redraw now,
  // so panning never shows a stale frame.
  _reset() {
    const map = this._map, size = map.getSize(), dpr = this._lowRes ? 1 : window.devicePixelRatio || 1;
    this._topLeft = map.containerPointToLayerPoint([0, 0]);
    L.DomUtil.setPosition(this._canvas, this._topLeft);
    if (!this._size || !size.equals(this._size) || dpr !== this._dpr) {
      this._size = size; this._dpr = dpr;
      this._canvas.width = Math.round(size.x * dpr);
      this._canvas.height = Math.round(size.y * dpr);
      this._canvas.style.width = size.x + 'px';
      this._canvas.style.height = size.y + 'px';
      const image = this._ctx.createImageData(this._canvas.width, this._canvas.height);
      this._frame = { image, width: image.width, height: image.height,
        u8: image.data, u32: new Uint32Array(image.data.buffer) };
    }
    this._draw();
    this._drawnThisFrame = true;
  },

  // CSS-scale the current bitmap during Leaflet's zoom animation (same maths as
  // Leaflet's own renderers); `zoom`/`move` at the end of the animation call _reset.
  _animateZoom(e) {
    const map = this._map, scale = map.getZoomScale(e.zoom, map.getZoom());
    const newOrigin = map.project(e.center, e.zoom)
      .subtract(map.getSize().divideBy(2)).add(map.layerPointToContainerPoint([0, 0])).round();
    const offset = this._topLeft.add(map.getPixelOrigin()).multiplyBy(scale).subtract(newOrigin);
    L.DomUtil.setTransform(this._canvas, offset, scale);
  },

  _tick(now) {
    if (!this._drawnThisFrame) {
      const t = performance.now();
      this._draw();
      this._adaptResolution(performance.now() - t);
    }
    this._drawnThisFrame = false;
    this._frames++;
    if (now - this._fpsSince >= 1000) {
      this.fps = Math.round((this._frames * 1000) / (now - this._fpsSince));
      this._frames = 0; this._fpsSince = now;
    }
    this._raf = requestAnimationFrame(this._tickBound);
  },

  // On a HiDPI screen, drop to one canvas pixel per CSS pixel while frames take too
  // long to draw (4× fewer pixels at dpr 2), and go back up once there is headroom.
  // Smoothed draw time, at most one switch per 5 s.
  _adaptResolution(ms) {
    this._drawMs += (ms - this._drawMs) * 0.1;
    const dpr = window.devicePixelRatio || 1, now = performance.now();
    if (dpr <= 1 || now - this._adaptedAt < 5000) return;
    if (!this._lowRes && this._drawMs > 14) this._lowRes = true;
    else if (this._lowRes && this._drawMs * dpr * dpr < 8) this._lowRes = false;
    else return;
    this._adaptedAt = now; this._drawMs = 8;
    this._reset();
  },

  // Canvas-relative offset: x_canvas = p0.x * scale - off.x
  _transform() {
    const map = this._map, origin = map.getPixelOrigin();
    return { scale: map.getZoomScale(map.getZoom(), 0), ox: origin.x + this._topLeft.x, oy: origin.y + this._topLeft.y };
  },

  // Glyph size (arrow half-length, px) by zoom: small at city scale, bigger up close.
  _glyphSize() {
    const z = this._map.getZoom();
    return z >= 16 ? 8 : z >= 14 ? 6.5 : z >= 12 ? 5 : 3.5;
  },

  _ensureBuffers(n) {
    const b = this._buf;
    if (b.cap >= n) return b;
    b.cap = Math.max(1024, n * 1.5 | 0);
    b.x = new Float32Array(b.cap); b.y = new Float32Array(b.cap);
    b.style = new Uint8Array(b.cap); b.tracks = new Array(b.cap);
    return b;
  },

  // Project the visible vehicles to canvas pixels, then blit one pre-rendered sprite
  // each straight into an ImageData buffer (see buildAtlas / blitSprite). Canvas
  // paths or drawImage cost a few µs per call on a software canvas: too slow for
  // 10,000 vehicles at 60 fps, whereas writing pixels ourselves costs ~3 ms a frame.
  _draw() {
    const w = this._size.x, h = this._size.y, dpr = this._dpr;
    const b = this._ensureBuffers(state.tracks.size);
    const { scale, ox, oy } = this._transform();
    const now = performance.now(), s = this._glyphSize(), margin = s * 2;
    let n = 0;
    for (const tr of state.tracks.values()) {
      if (state.hiddenLines.has(tr.v.route_id)) continue;
      trackPosition(tr, now);
      const x = tr.px * scale - ox, y = tr.py * scale - oy;
      if (x < -margin || y < -margin || x > w + margin || y > h + margin) continue;
      b.x[n] = x; b.y[n] = y; b.style[n] = styleOf(tr.v); b.tracks[n] = tr; n++;
    }
    b.n = n;
    const key = `${s}@${dpr}`;
    if (!this._atlas || this._atlas.key !== key) this._atlas = buildAtlas(s, dpr, key);
    const frame = this._frame, W = frame.width;
    if (this._atlas.relWidth !== W) setAtlasStride(this._atlas, W);
    frame.u32.fill(0);
    // One pass per style so that problems (late, broken) end up on top.
    for (const st of DRAW_ORDER) {
      for (let i = 0; i < n; i++) {
        if (b.style[i] !== st) continue;
        const tr = b.tracks[i];
        blitSprite(frame.u8, frame.u32, W, frame.height, this._atlas, (st * OCC_LEVELS + tr.occ) * ANGLE_STEPS + tr.angle,
          Math.round(b.x[i] * dpr), Math.round(b.y[i] * dpr));
      }
    }
    this._ctx.putImageData(frame.image, 0, 0);
    this._ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    this._drawSelection(this._ctx, scale, ox, oy, s);
  },

  // Highlight the vehicle whose popup is open, and keep the popup on it.
  _drawSelection(ctx, scale, ox, oy, s) {
    const tr = state.selectedId && state.tracks.get(state.selectedId);
    if (!tr || !vehiclePopup.isOpen()) return;
    const x = tr.px * scale - ox, y = tr.py * scale - oy;
    ctx.beginPath(); ctx.arc(x, y, s + 6, 0, 2 * Math.PI);
    ctx.lineWidth = 2.5; ctx.strokeStyle = '#1565c0'; ctx.stroke();
    // Follow the vehicle without panning, whatever autoPan says right now: while the
    // popup opens (autoPan on) Leaflet pans, the pan redraws this layer, and panning
    // again from here would recurse until the stack overflows.
    const pan = vehiclePopup.options.autoPan;
    vehiclePopup.options.autoPan = false;
    vehiclePopup.setLatLng(this._map.unproject([tr.px, tr.py], 0));
    vehiclePopup.options.autoPan = pan;
  },

  // Nearest drawn vehicle within HIT_RADIUS_PX of a container point.
  hitTest(containerPoint) {
    const b = this._buf, p = this._map.containerPointToLayerPoint(containerPoint).subtract(this._topLeft || [0, 0]);
    let best = null, bestD = HIT_RADIUS_PX * HIT_RADIUS_PX;
    for (let i = 0; i < b.n; i++) {
      const dx = b.x[i] - p.x, dy = b.y[i] - p.y, d = dx * dx + dy * dy;
      if (d <= bestD) { bestD = d; best = b.tracks[i]; }
    }
    return best && best.v.vehicle_id;
  },

  // Current (interpolated) position of a vehicle in container pixels.
  containerPointOf(id) {
    const tr = state.tracks.get(id);
    if (!tr || !this._map) return null;
    trackPosition(tr, performance.now());
    const scale = this._map.getZoomScale(this._map.getZoom(), 0), o = this._map.getPixelOrigin();
    return this._map.layerPointToContainerPoint([tr.px * scale - o.x, tr.py * scale - o.y]);
  },
});

export const vehicleLayer = new VehicleLayer().addTo(map);

export const hitVehicle = (containerPoint) => map.hasLayer(vehicleLayer) && vehicleLayer.hitTest(containerPoint);

// A click on the map opens the popup of the vehicle under it; hovering one shows a pointer.
map.on('click', (e) => {
  const id = hitVehicle(e.containerPoint);
  if (id) openVehiclePopup(id);
});
map.on('mousemove', (e) => map.getContainer().classList.toggle('over-vehicle', !!hitVehicle(e.containerPoint)));
