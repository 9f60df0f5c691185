// StreamCity — live map page. Consumes the contract in dashboard/PROTOCOL.md:
// GET /api/routes, GET /api/stops, and the /ws snapshot + delta stream.
// Plain ES2020, no build step; Leaflet 1.9 is the only dependency (global `L`).
'use strict';

(() => {
  // ---------------------------------------------------------------- constants
  const ON_TIME_S = 120;            // |delay_s| below this counts as on time
  const VERY_LATE_S = 300;          // darker "late" colour from here
  const SILENT_MS = 30000;          // no report for this long (server time) = silent
  const HIT_RADIUS_PX = 10;         // click / hover tolerance around a vehicle
  const MAX_EXTRAPOLATION_MS = 500; // keep moving at most this long past the latest report
  const SNAP_DISTANCE_M = 2000;     // a jump longer than this is not animated
  const BACKOFF_MIN_MS = 500, BACKOFF_MAX_MS = 10000;
  const OFFLINE_AFTER_MS = 30000;   // "reconnecting" turns into "offline" after this long
  const RESYNC_MIN_INTERVAL_MS = 10000; // a seq gap reconnects with ?since= at most this often
  const STOP_REFRESH_MS = 5000;     // open stop popup: refetch its activity this often
  const STOP_FETCH_TIMEOUT_MS = 8000;
  const STOP_TAPS_SHOWN = 8;        // most recent taps listed in a stop popup
  const INCIDENT_DEFAULT_RADIUS_M = 150; // incident alert without evidence.radius_m
  const ALERT_KINDS = ['surge', 'delay', 'breakdown', 'bunching', 'gapping', 'crowding', 'incident'];
  const SEVERITIES = ['low', 'moderate', 'high', 'critical'];

  // Vehicle draw styles; the colours live in style.css (:root custom properties)
  // so that the legend and the canvas share one definition.
  const STYLE = { ONTIME: 0, EARLY: 1, LATE: 2, VERYLATE: 3, BROKEN: 4, SILENT: 5 };
  const css = getComputedStyle(document.documentElement);
  const cssVar = (name) => css.getPropertyValue(name).trim();
  const STYLE_COLORS = ['--ontime', '--early', '--late', '--verylate', '--broken', '--silent'].map(cssVar);
  const RING_COLOR = cssVar('--ring');
  const SEV_COLORS = Object.fromEntries(SEVERITIES.map((s) => [s, cssVar(`--sev-${s}`)]));
  const DRAW_ORDER = [STYLE.SILENT, STYLE.ONTIME, STYLE.EARLY, STYLE.LATE, STYLE.VERYLATE, STYLE.BROKEN];
  const ANGLE_STEPS = 36;           // sprites every 10° of bearing
  const OCC_LEVELS = 5;             // occupancy ring thicknesses

  // ---------------------------------------------------------------- state
  const state = {
    routes: new Map(),    // route_id -> route
    stops: new Map(),     // stop_id -> stop
    vehicles: new Map(),  // vehicle_id -> latest VehiclePosition
    tracks: new Map(),    // vehicle_id -> Track (animation state, see upsertVehicle)
    alerts: new Map(),    // alert_id -> active Alert
    lastSeq: null,
    epoch: null,          // the server run the last snapshot came from
    serverTime: 0,        // latest `time` received from the server
    serverTimeAt: 0,      // performance.now() when it was received
    gaps: 0,
    hiddenLines: new Set(),
    hiddenKinds: new Set(),
    eventCount: 0,        // vehicle updates + alert records since the last rate tick
    eventRate: null,
    selectedId: null,     // vehicle whose popup is open
  };

  const $ = (id) => document.getElementById(id);
  const esc = (s) => String(s ?? '').replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
  const words = (s) => String(s || '').replace(/_/g, ' ');
  // Server clock estimate, immune to a skewed client clock.
  const serverNow = () => state.serverTime + (performance.now() - state.serverTimeAt);

  // ---------------------------------------------------------------- formatting
  function formatDuration(totalS) {
    const m = Math.floor(totalS / 60), s = totalS % 60;
    return [m ? `${m} min` : '', s || !m ? `${s} s` : ''].filter(Boolean).join(' ');
  }
  function formatDelay(d) {
    if (!d) return 'on time';
    return d > 0 ? `+${formatDuration(d)} late` : `${formatDuration(-d)} early`;
  }
  function formatAgo(ms) {
    const s = Math.max(0, Math.round(ms / 1000));
    if (s < 60) return `${s} s ago`;
    if (s < 3600) return `${Math.floor(s / 60)} min ago`;
    return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min ago`;
  }

  function styleOf(v) {
    if (v.status === 'broken_down') return STYLE.BROKEN;
    if (state.serverTime - v.timestamp > SILENT_MS) return STYLE.SILENT;
    if (v.delay_s >= VERY_LATE_S) return STYLE.VERYLATE;
    if (v.delay_s >= ON_TIME_S) return STYLE.LATE;
    if (v.delay_s <= -ON_TIME_S) return STYLE.EARLY;
    return STYLE.ONTIME;
  }

  // ---------------------------------------------------------------- map
  const map = L.map('map', { zoomControl: true, minZoom: 3, maxZoom: 19 }).setView([40.7128, -74.006], 12);
  const sharedCanvas = L.canvas({ padding: 0.3 });
  const flashRenderer = L.svg();
  const routesLayer = L.layerGroup().addTo(map);
  const stopsLayer = L.layerGroup().addTo(map);
  const incidentsLayer = L.layerGroup().addTo(map); // incident areas, see upsertIncident
  const routeLines = new Map(); // route_id -> L.Polyline
  // Optional basemap: off by default, so nothing is fetched from outside unless asked.
  const osm = L.tileLayer('https://tile.openstreetmap.org/{z}/{x}/{y}.png',
    { maxZoom: 19, attribution: '&copy; OpenStreetMap contributors' });
  L.control.scale({ imperial: false }).addTo(map);

  // ---------------------------------------------------------------- vehicle layer
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

  // Sprite atlas: every glyph (style × occupancy level × bearing step) is drawn once
  // per glyph size and pixel ratio with ordinary canvas paths, then read back and kept
  // as a list of its non-transparent pixels: offset (dx, dy), RGBA value, alpha.
  function buildAtlas(s, dpr, key) {
    const half = Math.ceil((s + 2 + ringWidth(s, OCC_LEVELS - 1)) * dpr), cell = half * 2;
    const sprites = STYLE_COLORS.length * OCC_LEVELS * ANGLE_STEPS;
    const canvas = document.createElement('canvas');
    canvas.width = cell * ANGLE_STEPS; canvas.height = cell * STYLE_COLORS.length * OCC_LEVELS;
    const ctx = canvas.getContext('2d', { willReadFrequently: true });
    for (let row = 0; row < STYLE_COLORS.length * OCC_LEVELS; row++) {
      for (let a = 0; a < ANGLE_STEPS; a++) {
        ctx.setTransform(dpr, 0, 0, dpr, a * cell + half, row * cell + half);
        drawGlyph(ctx, s, Math.floor(row / OCC_LEVELS), row % OCC_LEVELS, (a * 2 * Math.PI) / ANGLE_STEPS);
      }
    }
    const img = ctx.getImageData(0, 0, canvas.width, canvas.height);
    const src32 = new Uint32Array(img.data.buffer), srcA = img.data;
    const dx = [], dy = [], px = [], al = [], start = new Int32Array(sprites + 1);
    for (let k = 0; k < sprites; k++) {
      start[k] = px.length;
      const x0 = (k % ANGLE_STEPS) * cell, y0 = Math.floor(k / ANGLE_STEPS) * cell;
      for (let y = 0; y < cell; y++) {
        for (let x = 0; x < cell; x++) {
          const i = (y0 + y) * canvas.width + x0 + x, a = srcA[i * 4 + 3];
          if (!a) continue;
          dx.push(x - half); dy.push(y - half); px.push(src32[i]); al.push(a);
        }
      }
    }
    start[sprites] = px.length;
    return { key, half, start, dx: Int16Array.from(dx), dy: Int16Array.from(dy),
      px: Uint32Array.from(px), al: Uint8Array.from(al), rel: null, relWidth: 0 };
  }

  // Precompute each sprite pixel's offset in the frame buffer for a row stride W.
  function setAtlasStride(atlas, W) {
    atlas.rel = new Int32Array(atlas.px.length);
    for (let j = 0; j < atlas.px.length; j++) atlas.rel[j] = atlas.dy[j] * W + atlas.dx[j];
    atlas.relWidth = W;
  }

  // Composite sprite k centred on device pixel (cx, cy) into the ImageData buffer.
  // Opaque pixels and pixels landing on an empty spot are plain copies; antialiased
  // overlaps use an integer "source over" that treats the destination colour as
  // opaque (exact where it is, invisible error on the rare semi-transparent edges).
  function blitSprite(u8, u32, W, H, atlas, k, cx, cy) {
    const dx = atlas.dx, dy = atlas.dy, px = atlas.px, al = atlas.al, rel = atlas.rel, half = atlas.half;
    const inside = cx - half >= 0 && cy - half >= 0 && cx + half < W && cy + half < H;
    const base = cy * W + cx;
    for (let j = atlas.start[k], end = atlas.start[k + 1]; j < end; j++) {
      let d;
      if (inside) d = base + rel[j];
      else {
        const x = cx + dx[j], y = cy + dy[j];
        if (x < 0 || y < 0 || x >= W || y >= H) continue;
        d = y * W + x;
      }
      const sa = al[j], p = d << 2, da = u8[p + 3];
      if (sa === 255 || da === 0) { u32[d] = px[j]; continue; }
      const c = px[j], ka = 255 - sa; // little-endian: R is the low byte
      u8[p] = ((c & 255) * sa + u8[p] * ka) * 257 >>> 16;
      u8[p + 1] = (((c >>> 8) & 255) * sa + u8[p + 1] * ka) * 257 >>> 16;
      u8[p + 2] = (((c >>> 16) & 255) * sa + u8[p + 2] * ka) * 257 >>> 16;
      u8[p + 3] = sa + ((da * ka * 257) >>> 16);
    }
  }

  // Occupancy ring thickness for a load level (0 = empty … 4 = full).
  const ringWidth = (s, level) => 0.6 + level * (s / 6.5) * 0.5;

  // One vehicle at the origin: occupancy ring, arrow pointing along the bearing
  // (clockwise from north), and a cross when broken down.
  function drawGlyph(ctx, s, st, level, rad) {
    const lw = ringWidth(s, level);
    ctx.beginPath(); ctx.arc(0, 0, s + 1 + lw / 2, 0, 2 * Math.PI);
    ctx.lineWidth = lw; ctx.strokeStyle = RING_COLOR; ctx.stroke();
    ctx.save(); ctx.rotate(rad);
    ctx.beginPath();
    ctx.moveTo(0, -s); ctx.lineTo(0.7 * s, 0.75 * s); ctx.lineTo(0, 0.3 * s); ctx.lineTo(-0.7 * s, 0.75 * s);
    ctx.closePath();
    ctx.fillStyle = STYLE_COLORS[st]; ctx.fill();
    ctx.lineWidth = 1; ctx.lineJoin = 'round'; ctx.strokeStyle = 'rgba(255,255,255,0.9)';
    if (s >= 5) ctx.stroke();
    ctx.restore();
    if (st === STYLE.BROKEN) {
      const c = s * 0.9;
      ctx.beginPath(); ctx.moveTo(-c, -c); ctx.lineTo(c, c); ctx.moveTo(c, -c); ctx.lineTo(-c, c);
      ctx.lineWidth = 2; ctx.strokeStyle = '#000'; ctx.stroke();
    }
  }

  // Animation model: when a report arrives, the vehicle glides from where it is drawn
  // now (x0,y0) to the reported point (x1,y1) over the interval between its last two
  // reports (≈1 s), then keeps going along the same line for at most
  // MAX_EXTRAPOLATION_MS before holding still.
  function trackPosition(tr, now) {
    const f = Math.min((now - tr.t0) / tr.dur, 1 + MAX_EXTRAPOLATION_MS / tr.dur);
    tr.px = tr.x0 + (tr.x1 - tr.x0) * f;
    tr.py = tr.y0 + (tr.y1 - tr.y0) * f;
  }

  function upsertVehicle(v, now) {
    const prev = state.tracks.get(v.vehicle_id);
    const p = map.project([v.lat, v.lon], 0);
    const tr = prev || { px: p.x, py: p.y };
    if (prev) trackPosition(prev, now);
    const moved = prev && distanceM(prev.v, v) < SNAP_DISTANCE_M;
    tr.x0 = moved ? tr.px : p.x; tr.y0 = moved ? tr.py : p.y;
    tr.x1 = p.x; tr.y1 = p.y; tr.t0 = now;
    const interval = prev ? v.timestamp - prev.v.timestamp : 1000;
    tr.dur = Math.min(3000, Math.max(250, interval || 1000));
    tr.angle = Math.round(((((v.bearing || 0) % 360) + 360) % 360) / (360 / ANGLE_STEPS)) % ANGLE_STEPS;
    tr.occ = v.capacity > 0 ? Math.min(OCC_LEVELS - 1, Math.floor((v.passengers / v.capacity) * OCC_LEVELS)) : 0;
    tr.v = v;
    state.tracks.set(v.vehicle_id, tr);
    state.vehicles.set(v.vehicle_id, v);
  }

  function distanceM(a, b) { // equirectangular, fine at city scale
    const k = Math.cos((a.lat * Math.PI) / 180);
    return Math.hypot(a.lat - b.lat, (a.lon - b.lon) * k) * 111320;
  }

  const vehiclePopup = L.popup({ className: 'vehicle-popup', autoPan: true, maxWidth: 320 });
  let lastPopupVehicle = null; // the report the open popup shows
  const vehicleLayer = new VehicleLayer().addTo(map);
  const overlays = { 'Routes': routesLayer, 'Stops': stopsLayer, 'Vehicles': vehicleLayer, 'Incident areas': incidentsLayer,
    'OpenStreetMap basemap (online)': osm };
  L.control.layers(null, overlays, { position: 'topleft' }).addTo(map);

  // ---------------------------------------------------------------- popups
  function vehiclePopupHtml(v) {
    const route = state.routes.get(v.route_id), stop = state.stops.get(v.next_stop_id);
    const pct = v.capacity ? Math.round((100 * v.passengers) / v.capacity) : 0;
    const late = v.delay_s >= ON_TIME_S ? 'late' : v.delay_s <= -ON_TIME_S ? 'early' : 'ok';
    return `<div class="popup" data-vehicle-id="${esc(v.vehicle_id)}">
      <h3><i class="sw" style="--c:${esc(route ? route.color : '#888')}"></i>Line ${esc(v.route_id)}${route ? ` <small>${esc(route.name)}</small>` : ''}</h3>
      <dl>
        <dt>Vehicle</dt><dd>${esc(v.vehicle_id)}</dd>
        <dt>Trip</dt><dd>${esc(v.trip_id)}</dd>
        <dt>Next stop</dt><dd>${esc(stop ? stop.name : v.next_stop_id)} <small>${esc(v.next_stop_id)}</small></dd>
        <dt>Delay</dt><dd class="delay-${late}">${esc(formatDelay(v.delay_s))}</dd>
        <dt>Occupancy</dt><dd>${v.passengers}/${v.capacity} (${pct}%) — ${esc(words(v.occupancy_status))}</dd>
        <dt>Speed</dt><dd>${Math.round((v.speed_mps || 0) * 3.6)} km/h</dd>
        <dt>Status</dt><dd>${esc(words(v.status))}${/_(to|at)$/.test(v.status) && stop ? ` ${esc(stop.name)}` : ''}</dd>
        <dt>Last report</dt><dd>${formatAgo(state.serverTime - v.timestamp)}</dd>
      </dl></div>`;
  }

  function openVehiclePopup(id) {
    const v = state.vehicles.get(id), tr = state.tracks.get(id);
    if (!v || !tr) return;
    state.selectedId = id;
    vehiclePopup.options.autoPan = true;
    vehiclePopup.setLatLng(map.unproject([tr.px, tr.py], 0)).setContent(vehiclePopupHtml(v)).openOn(map);
    vehiclePopup.options.autoPan = false; // it follows the vehicle every frame: don't pan each time
    lastPopupVehicle = v;
  }

  // Relative time of a server timestamp, as a <time> that updateRelativeTimes keeps fresh.
  function agoHtml(ts) {
    return `<time data-ts="${Number(ts)}" datetime="${new Date(ts).toISOString()}">${esc(agoText(ts))}</time>`;
  }
  function agoText(ts) {
    // Before the first WebSocket message there is no server clock: show the time of day (UTC).
    return state.serverTime ? formatAgo(serverNow() - ts) : `at ${new Date(ts).toISOString().slice(11, 19)} UTC`;
  }

  function lineChips(routeIds) {
    return (routeIds || []).map((id) => {
      const r = state.routes.get(id);
      return `<span class="line-chip" style="--c:${esc(r ? r.color : '#888')}">${esc(r ? r.short_name || id : id)}</span>`;
    }).join(' ');
  }

  const sevClass = (sev) => `sev-${SEVERITIES.includes(sev) ? sev : 'low'}`;

  // ---------------------------------------------------------------- stop popup
  // Live activity from GET /api/stops/{id}: fetched when the popup opens, then every
  // STOP_REFRESH_MS while it stays open (one request at a time, stale answers ignored).
  const stopPopup = L.popup({ className: 'stop-popup', maxWidth: 340, minWidth: 230 });
  const stopView = { stop: null, data: null, error: null, fetchedAt: 0, timer: null, ctrl: null, token: 0 };

  function stopPopupHtml() {
    const { stop, data, error } = stopView, s = data || stop;
    let activity = '';
    if (data) {
      const taps = Array.isArray(data.recent_taps) ? data.recent_taps.slice(0, STOP_TAPS_SHOWN) : [];
      const surge = data.active_surge;
      activity = `<dl>
          <dt>Waiting</dt><dd class="waiting">≈ ${Number(data.waiting_estimate || 0).toLocaleString('en-US')} riders waiting</dd>
          <dt>Taps, 5 min</dt><dd class="taps-5min">${Number(data.taps_last_5_min || 0).toLocaleString('en-US')}</dd>
        </dl>
        <h4>Recent taps</h4>
        ${taps.length ? `<ol class="taps">${taps.map((t) =>
          `<li>${agoHtml(t.timestamp)} <small>${esc(t.rider_id)}</small></li>`).join('')}</ol>` : '<p class="muted">No taps recently.</p>'}
        ${surge ? `<p class="surge ${sevClass(surge.severity)}"><b>Surge · ${esc(surge.severity)}</b> <small>raised ${agoHtml(surge.raised_at)}</small><br>${esc(surge.message)}</p>` : ''}`;
    } else if (!error) {
      activity = '<p class="loading" role="status">loading…</p>';
    }
    const errorLine = error ? `<p class="popup-error" role="alert">${data
      ? `Update failed (${esc(error)}); showing data from ${formatAgo(performance.now() - stopView.fetchedAt)}.`
      : `Could not load this stop's activity (${esc(error)}). Retrying…`}</p>` : '';
    return `<div class="popup" data-stop-id="${esc(s.stop_id)}">
      <h3>${esc(s.name)} <small>${esc(s.stop_id)}</small></h3>
      <dl><dt>Lines</dt><dd>${lineChips(s.route_ids) || '—'}</dd></dl>
      ${activity}${errorLine}</div>`;
  }

  function renderStopPopup() {
    if (!stopView.stop || !stopPopup.isOpen()) return;
    stopPopup.setContent(stopPopupHtml());
    // Pan once so the full popup is visible when the data first arrives; never on refreshes.
    if (stopView.data || stopView.error) stopPopup.options.autoPan = false;
  }

  function openStopPopup(stop) {
    stopStopRefresh();
    Object.assign(stopView, { stop, data: null, error: null, fetchedAt: 0 });
    stopPopup.options.autoPan = true;
    stopPopup.setLatLng([stop.lat, stop.lon]).setContent(stopPopupHtml()).openOn(map);
    refreshStop();
    stopView.timer = setInterval(refreshStop, STOP_REFRESH_MS);
  }

  function stopStopRefresh() {
    clearInterval(stopView.timer);
    stopView.timer = null;
    stopView.token++; // any answer still on its way is for a popup that is gone
    if (stopView.ctrl) { stopView.ctrl.abort(); stopView.ctrl = null; }
  }

  async function refreshStop() {
    const stop = stopView.stop;
    if (!stop || stopView.ctrl) return;
    // While the live connection is down the server is most likely unreachable too: say so
    // instead of firing requests that can only fail (and log network errors).
    if (!isConnected()) {
      stopView.error = 'no connection to the server';
      renderStopPopup();
      return;
    }
    const ctrl = new AbortController(), token = stopView.token;
    stopView.ctrl = ctrl;
    const timeout = setTimeout(() => ctrl.abort(), STOP_FETCH_TIMEOUT_MS);
    let data = null, error = null;
    try {
      const res = await fetch(`/api/stops/${encodeURIComponent(stop.stop_id)}`, { cache: 'no-store', signal: ctrl.signal });
      const body = await res.json().catch(() => null);
      if (!res.ok) error = (body && body.error) || `HTTP ${res.status}`;
      else if (!body || typeof body !== 'object') error = 'unexpected answer';
      else data = body;
    } catch (err) {
      error = err && err.name === 'AbortError' ? 'timed out' : (err && err.message) || 'network error';
    } finally {
      clearTimeout(timeout);
      if (stopView.ctrl === ctrl) stopView.ctrl = null;
    }
    if (token !== stopView.token) return; // closed, or another stop opened meanwhile
    if (data) { stopView.data = data; stopView.error = null; stopView.fetchedAt = performance.now(); }
    else stopView.error = error;
    renderStopPopup();
  }

  stopPopup.on('remove', () => { stopStopRefresh(); stopView.stop = null; });

  // ---------------------------------------------------------------- incident areas
  // Every active `incident` alert with a place is a translucent circle (evidence.radius_m)
  // coloured by severity, on the shared canvas *behind* the stops, largest at the back,
  // so a stop or a smaller area inside a larger one stays clickable. Vehicles (own canvas,
  // hit-tested) win any click over an area.
  const incidentCircles = new Map(); // alert_id -> L.Circle
  const incidentPopup = L.popup({ className: 'incident-popup', maxWidth: 320, minWidth: 220 });
  let incidentPopupId = null;
  let incidentsDirty = false;        // a circle was added or resized: reorder (orderIncidents)

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

  function openIncidentPopup(id, latlng) {
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

  function upsertIncident(a) {
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

  function removeIncident(id) {
    const c = incidentCircles.get(id);
    if (!c) return;
    incidentsLayer.removeLayer(c);
    incidentCircles.delete(id);
    if (incidentPopupId === id) map.closePopup(incidentPopup);
  }

  // Canvas draw order = click priority: areas behind the stops, big areas behind small ones.
  function orderIncidents() {
    incidentsDirty = false;
    [...incidentCircles.values()].filter((c) => map.hasLayer(c))
      .sort((p, q) => p.getRadius() - q.getRadius())
      .forEach((c) => c.bringToBack());
  }
  incidentsLayer.on('add', orderIncidents); // re-enabled from the layer control

  // The "incident" chip of the alert-kind filter hides the areas as well.
  function applyIncidentVisibility() {
    const show = !state.hiddenKinds.has('incident');
    for (const c of incidentCircles.values()) {
      if (show && !incidentsLayer.hasLayer(c)) incidentsLayer.addLayer(c);
      else if (!show) incidentsLayer.removeLayer(c);
    }
    if (!show) map.closePopup(incidentPopup);
    orderIncidents();
  }

  const hitVehicle = (containerPoint) => map.hasLayer(vehicleLayer) && vehicleLayer.hitTest(containerPoint);

  // A vehicle is drawn above the stops, so it wins a click that also hits a stop.
  function onStopClick(e, stop) {
    L.DomEvent.stopPropagation(e); // handled here, not again by the map's click
    const id = hitVehicle(e.containerPoint);
    if (id) openVehiclePopup(id);
    else openStopPopup(stop);
  }
  map.on('click', (e) => {
    const id = hitVehicle(e.containerPoint);
    if (id) openVehiclePopup(id);
  });
  map.on('mousemove', (e) => map.getContainer().classList.toggle('over-vehicle', !!hitVehicle(e.containerPoint)));
  vehiclePopup.on('remove', () => { state.selectedId = null; });

  // ---------------------------------------------------------------- static data
  async function fetchJson(url) {
    const res = await fetch(url, { cache: 'no-store' });
    if (!res.ok) throw new Error(`${url}: HTTP ${res.status}`);
    return res.json();
  }

  async function loadNetwork() {
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
      const line = L.polyline(r.shape, { renderer: sharedCanvas, color: r.color, weight: r.mode === 'rail' ? 5 : r.mode === 'tram' ? 3.5 : 2.5, opacity: 0.8, interactive: false });
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

  // ---------------------------------------------------------------- live stream
  function applySnapshot(msg, now) {
    state.epoch = msg.epoch ?? null; // identifies the server run; a resume names it
    const seen = new Set();
    for (const v of msg.vehicles || []) { upsertVehicle(v, now); seen.add(v.vehicle_id); }
    for (const id of [...state.tracks.keys()]) {
      if (!seen.has(id)) { state.tracks.delete(id); state.vehicles.delete(id); }
    }
    state.alerts.clear();
    for (const a of msg.alerts || []) state.alerts.set(a.alert_id, a);
    // Incident areas: redraw from the snapshot's active alerts (kept circles stay put).
    for (const id of [...incidentCircles.keys()]) if (!state.alerts.has(id)) removeIncident(id);
    for (const a of state.alerts.values()) upsertIncident(a);
    if (state.selectedId && !state.tracks.has(state.selectedId)) map.closePopup(vehiclePopup);
  }

  function applyDelta(msg, now) {
    for (const v of msg.vehicles || []) upsertVehicle(v, now);
    for (const a of msg.alerts || []) {
      if (a.state === 'cleared') { state.alerts.delete(a.alert_id); removeIncident(a.alert_id); }
      else { state.alerts.set(a.alert_id, a); upsertIncident(a); }
    }
    state.eventCount += (msg.vehicles || []).length + (msg.alerts || []).length;
  }

  // A snapshot is applied whenever it comes: first on a fresh connection, after a
  // `subscribe`, after a resume the server could not serve from its replay buffer, or
  // when the server dropped our backlog. Deltas must follow on from lastSeq.
  function handleMessage(data) {
    let msg;
    try { msg = JSON.parse(data); } catch { return; } // not ours to crash on
    if (!msg || typeof msg !== 'object' || !Number.isFinite(msg.seq)) return;
    const now = performance.now();
    if (msg.type === 'snapshot') {
      applySnapshot(msg, now);
    } else if (msg.type === 'delta') {
      if (state.lastSeq !== null && msg.seq <= state.lastSeq) return; // duplicate/stale
      if (state.lastSeq !== null && msg.seq !== state.lastSeq + 1) {
        // A missed delta: resume from the last one applied, so that the server replays
        // the missing ones (or sends a snapshot). Rate-limited; otherwise keep going.
        state.gaps++;
        if (now - conn.resyncAt >= RESYNC_MIN_INTERVAL_MS) { conn.resyncAt = now; resync(); return; }
      }
      applyDelta(msg, now);
    } else {
      return;
    }
    if (incidentsDirty) orderIncidents();
    state.lastSeq = msg.seq;
    if (msg.type === 'snapshot' || (msg.alerts && msg.alerts.length)) alertsDirty = true;
    if (msg.time) { state.serverTime = msg.time; state.serverTimeAt = now; }
    const sel = state.selectedId && state.vehicles.get(state.selectedId);
    if (sel && vehiclePopup.isOpen() && sel !== lastPopupVehicle) {
      vehiclePopup.setContent(vehiclePopupHtml(sel));
      lastPopupVehicle = sel;
    }
  }

  // Connection with automatic reconnect: 0.5 s doubling to 10 s; resume with ?since=.
  const conn = { ws: null, backoff: BACKOFF_MIN_MS, timer: null, downSince: performance.now(), resyncAt: -Infinity };
  const isConnected = () => !!conn.ws && conn.ws.readyState === WebSocket.OPEN;

  function connect() {
    clearTimeout(conn.timer);
    const proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
    // Resume names the run's epoch: a restarted server answers with a snapshot.
    const since = state.lastSeq !== null
      ? `?since=${state.lastSeq}` + (state.epoch != null ? `&epoch=${state.epoch}` : '')
      : '';
    let ws;
    try { ws = new WebSocket(`${proto}//${location.host}/ws${since}`); } catch { scheduleReconnect(); return; }
    conn.ws = ws;
    ws.onopen = () => { conn.backoff = BACKOFF_MIN_MS; conn.downSince = null; setConnection('connected'); };
    ws.onmessage = (e) => { if (conn.ws === ws) handleMessage(e.data); }; // ignore a replaced socket
    ws.onclose = () => { if (conn.ws === ws) { conn.ws = null; scheduleReconnect(); } };
    ws.onerror = () => {}; // a close event always follows
  }

  // Drop the current socket and reconnect at once with ?since=lastSeq.
  function resync() {
    const ws = conn.ws;
    conn.ws = null; // its close and any message still queued on it are ignored
    if (ws) ws.close(1000, 'resync');
    connect();
  }

  function scheduleReconnect() {
    if (conn.downSince === null) conn.downSince = performance.now();
    updateConnectionState();
    clearTimeout(conn.timer);
    conn.timer = setTimeout(connect, conn.backoff);
    conn.backoff = Math.min(conn.backoff * 2, BACKOFF_MAX_MS);
  }

  function updateConnectionState() {
    if (isConnected()) return setConnection('connected');
    const longDown = conn.downSince !== null && performance.now() - conn.downSince > OFFLINE_AFTER_MS;
    setConnection(!navigator.onLine || longDown ? 'offline' : 'reconnecting');
  }

  function setConnection(s) {
    const text = s === 'reconnecting' && state.lastSeq === null ? 'connecting…' : s;
    if ($('connection').dataset.state !== s) $('connection').dataset.state = s;
    if ($('connection-text').textContent !== text) $('connection-text').textContent = text;
  }

  window.addEventListener('online', () => { if (!conn.ws) { conn.backoff = BACKOFF_MIN_MS; connect(); } });
  window.addEventListener('offline', updateConnectionState);

  // ---------------------------------------------------------------- side panel
  let alertsDirty = true;
  const alertEls = new Map(); // alert_id -> <li>, reused so focus survives updates

  function sortedAlerts() {
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
      li.innerHTML = `<span class="badge kind-${esc(a.kind)}">${esc(a.kind)}</span><span class="msg"></span><time class="rel"></time>`;
      li.addEventListener('click', () => focusAlert(li.dataset.alertId));
      li.addEventListener('keydown', (e) => {
        if (e.key === 'Enter' || e.key === ' ') { e.preventDefault(); focusAlert(li.dataset.alertId); }
      });
      alertEls.set(a.alert_id, li);
    }
    li.className = `alert-item sev-${SEVERITIES.includes(a.severity) ? a.severity : 'low'}` + (li.classList.contains('flash') ? ' flash' : '');
    li.querySelector('.msg').textContent = a.message;
    li.title = `${a.kind} · ${a.severity} · ${a.subject_kind} ${a.subject_id}`;
    return li;
  }

  // Keyed update: create/remove only what changed and move an item only when out of place.
  function renderAlerts() {
    const list = $('alerts'), wanted = sortedAlerts().filter((a) => !state.hiddenKinds.has(a.kind)).slice(0, 200);
    const keep = new Set(wanted.map((a) => a.alert_id));
    for (const [id, li] of alertEls) if (!keep.has(id)) { li.remove(); alertEls.delete(id); }
    wanted.forEach((a, i) => {
      const li = alertElement(a);
      if (list.children[i] !== li) list.insertBefore(li, list.children[i] || null);
    });
    $('alerts-empty').hidden = wanted.length > 0;
    updateRelativeTimes();
  }

  function updateRelativeTimes() {
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

  function buildKindFilter() {
    const box = $('kind-filter');
    box.innerHTML = '<legend class="sr-only">Alert kinds</legend>' + ALERT_KINDS.map((k) =>
      `<label class="chip"><input type="checkbox" value="${k}" checked><span class="badge kind-${k}">${k}</span></label>`).join('');
    box.addEventListener('change', (e) => {
      if (e.target.checked) state.hiddenKinds.delete(e.target.value); else state.hiddenKinds.add(e.target.value);
      renderAlerts();
      if (e.target.value === 'incident') applyIncidentVisibility();
    });
  }

  function buildLineFilter(routes) {
    const box = $('line-filter');
    box.innerHTML = '<legend class="sr-only">Lines</legend>' + routes.map((r) =>
      `<label class="line-option" title="${esc(r.name)} (${esc(r.mode)})"><input type="checkbox" value="${esc(r.route_id)}" ${state.hiddenLines.has(r.route_id) ? '' : 'checked'}>
        <i class="sw" style="--c:${esc(r.color)}"></i><span>${esc(r.short_name || r.route_id)}</span></label>`).join('');
  }

  function setLinesVisible(visible) {
    state.hiddenLines.clear();
    if (!visible) for (const id of state.routes.keys()) state.hiddenLines.add(id);
    for (const input of $('line-filter').querySelectorAll('input')) input.checked = visible;
    applyLineFilter();
  }

  // Hidden lines: their vehicles are not drawn and their route lines are dimmed.
  function applyLineFilter() {
    for (const [id, line] of routeLines) line.setStyle({ opacity: state.hiddenLines.has(id) ? 0.12 : 0.8 });
    const sel = state.selectedId && state.vehicles.get(state.selectedId);
    if (sel && state.hiddenLines.has(sel.route_id)) map.closePopup(vehiclePopup);
    if (map.hasLayer(vehicleLayer)) vehicleLayer._reset();
  }

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

  function updateCounters() {
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

  // Events per second: count per 1 s window, exponentially smoothed.
  setInterval(() => {
    state.eventRate = state.eventRate === null ? state.eventCount : 0.6 * state.eventRate + 0.4 * state.eventCount;
    state.eventCount = 0;
  }, 1000);
  setInterval(() => {
    updateCounters();
    if (alertsDirty) { alertsDirty = false; renderAlerts(); }
    updateConnectionState();
  }, 500);
  setInterval(updateRelativeTimes, 1000);

  // ---------------------------------------------------------------- test hooks (read-only)
  window.streamcity = Object.freeze({
    get vehicles() { return state.vehicles; },
    get alerts() { return sortedAlerts(); },
    get lastSeq() { return state.lastSeq; },
    get gaps() { return state.gaps; },
    get fps() { return vehicleLayer.fps; },
    get map() { return map; },
    // Vehicle's current position in page (client) coordinates, or null.
    screenPointOf(id) {
      const p = vehicleLayer.containerPointOf(id);
      if (!p) return null;
      const rect = map.getContainer().getBoundingClientRect();
      return { x: rect.left + p.x, y: rect.top + p.y };
    },
  });

  buildKindFilter();
  renderAlerts();
  loadNetwork();
  connect();
})();
