// The vehicle sprite atlas: every vehicle glyph pre-rendered once per size and pixel
// ratio, and the blit that composites one into the vehicle layer's pixel buffer.

import { STYLE, STYLE_COLORS, RING_COLOR, ANGLE_STEPS, OCC_LEVELS } from './constants.js';

// Sprite atlas: every glyph (style × occupancy level × bearing step) is drawn once
// per glyph size and pixel ratio with ordinary canvas paths, then read back and kept
// as a list of its non-transparent pixels: offset (dx, dy), RGBA value, alpha.
export function buildAtlas(s, dpr, key) {
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
export function setAtlasStride(atlas, W) {
  atlas.rel = new Int32Array(atlas.px.length);
  for (let j = 0; j < atlas.px.length; j++) atlas.rel[j] = atlas.dy[j] * W + atlas.dx[j];
  atlas.relWidth = W;
}

// Composite sprite k centred on device pixel (cx, cy) into the ImageData buffer.
// Opaque pixels and pixels landing on an empty spot are plain copies; antialiased
// overlaps use an integer "source over" that treats the destination colour as
// opaque (exact where it is, invisible error on the rare semi-transparent edges).
export function blitSprite(u8, u32, W, H, atlas, k, cx, cy) {
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
