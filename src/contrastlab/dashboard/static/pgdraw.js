// Drawing the playground's frame: points and arrows (pixels written into ImageData, arrows as paths),
// the batch's similarity matrix, the anchor's softmax bars, the curves. `pg` holds the page state:
// {dom, frame, labels, view, arrowScale, history}.
import { classColour, divergingRGB, el, fitCanvas, fmt, lineChart, pct } from "./common.js";
import { pointRenderer } from "./glpoints.js";

export function project(p, dim, view) {                          // unit vector -> [x, y, depth] in [-1, 1]
  if (dim === 2) return [p[0], p[1], 0];
  const cy = Math.cos(view.yaw), sy = Math.sin(view.yaw), cp = Math.cos(view.pitch), sp = Math.sin(view.pitch);
  const x1 = cy * p[0] + sy * p[2], z1 = -sy * p[0] + cy * p[2];
  return [x1, cp * p[1] - sp * z1, sp * p[1] + cp * z1];
}

export function screen(c) {
  const w = c.clientWidth, h = c.clientHeight;
  const r = 0.43 * Math.min(w, h);
  return { cx: w / 2, cy: h / 2, r };
}

// Pixel offsets of a filled disc of radius r (device pixels), for stamping points into ImageData: [dx..., dy...].
const discs = new Map();
function disc(r) {
  if (!discs.has(r)) {
    const dx = [], dy = [];
    for (let y = -r; y <= r; y++) for (let x = -r; x <= r; x++) if (x * x + y * y <= r * r + r * 0.6) { dx.push(x); dy.push(y); }
    discs.set(r, { dx: Int32Array.from(dx), dy: Int32Array.from(dy), r });
  }
  return discs.get(r);
}
// Each point's [solid, faint] colour words (little-endian RGBA; faint = 35% over white), once per labels array.
const wordCache = new WeakMap();
function labelWords(labels, n) {
  let w = wordCache.get(labels);
  if (!w || w.solid.length < n) {
    const solid = new Uint32Array(n), faint = new Uint32Array(n);
    const pack = (a) => ((255 << 24) | (a[2] << 16) | (a[1] << 8) | a[0]) >>> 0;
    for (let i = 0; i < n; i++) {
      const v = parseInt(classColour(labels[i] ?? 0).slice(1), 16);
      const rgb = [(v >> 16) & 255, (v >> 8) & 255, v & 255];
      solid[i] = pack(rgb); faint[i] = pack(rgb.map((x) => Math.round(255 - 0.35 * (255 - x))));
    }
    w = { solid, faint };
    wordCache.set(labels, w);
  }
  return w;
}
let pixels = null;

// Screen coordinates (CSS px) and depth of every point: one pass, no per-point allocation.
function projectAll(positions, n, dim, view, cx, cy, r) {
  const xy = new Float32Array(2 * n), depth = new Float32Array(n);
  if (dim === 2) {
    for (let i = 0; i < n; i++) { xy[2 * i] = cx + r * positions[2 * i]; xy[2 * i + 1] = cy - r * positions[2 * i + 1]; }
    return { xy, depth };
  }
  const cyw = Math.cos(view.yaw), syw = Math.sin(view.yaw), cp = Math.cos(view.pitch), sp = Math.sin(view.pitch);
  for (let i = 0; i < n; i++) {
    const x = positions[3 * i], y = positions[3 * i + 1], z = positions[3 * i + 2];
    const x1 = cyw * x + syw * z, z1 = -syw * x + cyw * z;
    xy[2 * i] = cx + r * x1; xy[2 * i + 1] = cy - r * (cp * y - sp * z1); depth[i] = sp * y + cp * z1;
  }
  return { xy, depth };
}

// Which points are in the batch: 0 outside, 1 anchor, 2 positive (a point that is both: 2).
function batchRoles(batch, n) {
  const roles = new Uint8Array(n), b = batch.length / 2;
  for (let j = 0; j < b; j++) roles[batch[j]] = 1;
  for (let j = b; j < 2 * b; j++) roles[batch[j]] = 2;
  return roles;
}

export function drawPoints(pg) {
  const { dom, frame, labels, view } = pg;
  const { ctx } = fitCanvas(dom.canvas);
  const { n, dim, positions, batch, pull, push } = frame;
  const roles = frame.roles || (frame.roles = batchRoles(batch, n));
  const { cx, cy, r } = screen(dom.canvas);
  const dpr = window.devicePixelRatio || 1;
  const cw = dom.canvas.width, ch = dom.canvas.height;
  const { xy, depth } = projectAll(positions, n, dim, view, cx, cy, r);
  frame.screen = xy;
  frame.depth = depth;
  const { solid, faint } = labelWords(labels, n);
  const big = disc(Math.round(3 * dpr)), small = disc(Math.round(2.2 * dpr)), tiny = disc(Math.max(1, Math.round(1.5 * dpr)));
  // every point in drawing order: faint ones (outside the batch, or behind the sphere) first, then the batch's
  const eachPoint = (visit) => {
    for (let i = 0; i < n; i++) {
      const front = dim === 2 || depth[i] >= 0;
      if (!(roles[i] > 0 && front)) visit(i, front ? small : tiny, faint[i]);
    }
    for (let i = 0; i < n; i++) if (roles[i] > 0 && (dim === 2 || depth[i] >= 0)) visit(i, big, solid[i]);
  };
  const gl = pointRenderer().gl;
  if (gl) glPoints(gl, ctx, eachPoint, { n, xy, dpr, cw, ch });
  else stampPoints(ctx, eachPoint, { xy, dpr, cw, ch });
  drawArrows(pg, ctx, { dim, positions, batch, pull, push, xy, depth, cx, cy, r, view });
  drawAnchorRings(ctx, frame.meta.anchor, xy);
}

// The points stamped straight into the canvas's pixels.
function stampPoints(ctx, eachPoint, { xy, dpr, cw, ch }) {
  if (!pixels || pixels.img.width !== cw || pixels.img.height !== ch) {
    const img = ctx.createImageData(cw, ch);
    pixels = { img, words: new Uint32Array(img.data.buffer) };
  }
  const px = pixels.words;
  px.fill(0xffffffff);
  eachPoint((i, d, word) => {
    const x0 = Math.round(xy[2 * i] * dpr), y0 = Math.round(xy[2 * i + 1] * dpr);
    const { dx, dy } = d, m = dx.length;
    if (x0 >= d.r && y0 >= d.r && x0 + d.r < cw && y0 + d.r < ch) {      // wholly inside: no test per pixel
      const o = y0 * cw + x0;
      for (let k = 0; k < m; k++) px[o + dy[k] * cw + dx[k]] = word;
      return;
    }
    for (let k = 0; k < m; k++) {
      const x = x0 + dx[k], y = y0 + dy[k];
      if (x >= 0 && y >= 0 && x < cw && y < ch) px[y * cw + x] = word;
    }
  });
  ctx.putImageData(pixels.img, 0, 0);
}

// The same discs by the WebGL2 point shader (glpoints.js), in the same order, drawn as the 2-D canvas's base layer.
let glArrays = null;
function glPoints(gl, ctx, eachPoint, { n, xy, dpr, cw, ch }) {
  if (!glArrays || glArrays.colours.length !== n) {
    glArrays = { xy: new Float32Array(2 * n), colours: new Uint32Array(n), sizes: new Float32Array(n) };
  }
  const { xy: at, colours, sizes } = glArrays;
  let m = 0;
  eachPoint((i, d, word) => {
    at[2 * m] = xy[2 * i] * dpr; at[2 * m + 1] = xy[2 * i + 1] * dpr; colours[m] = word; sizes[m] = 2 * d.r + 1; m++;
  });
  gl.draw({ xy: at, colours, count: m, k: [1, 1], o: [0, 0], size: sizes, round: true, width: cw, height: ch,
            background: [1, 1, 1, 1] });
  ctx.save();
  ctx.setTransform(1, 0, 0, 1, 0, 0);
  ctx.drawImage(gl.canvas, 0, 0);
  ctx.restore();
}

function drawArrows(pg, ctx, { dim, positions, batch, pull, push, xy, depth, cx, cy, r, view }) {
  ctx.strokeStyle = "#d0d4d9";
  ctx.lineWidth = 1;
  ctx.beginPath(); ctx.arc(cx, cy, r, 0, 2 * Math.PI); ctx.stroke();
  // arrows: the batch rows' tangent vectors, projected like the points
  const rows = batch.length;
  const mags = [];
  for (let j = 0; j < rows; j++) {
    for (const v of [pull, push]) {
      let m = 0;
      for (let d = 0; d < dim; d++) m += v[j * dim + d] ** 2;
      if (m > 0) mags.push(Math.sqrt(m));
    }
  }
  if (mags.length) {
    mags.sort((a, b) => a - b);
    const q = mags[Math.floor(0.95 * (mags.length - 1))] || 1;
    const target = 30 / q;
    pg.arrowScale = pg.arrowScale === null ? target : Math.exp(0.8 * Math.log(pg.arrowScale) + 0.2 * Math.log(target));
  }
  const s = (pg.arrowScale || 1) / r;
  const tip = new Float32Array(dim);
  for (const [v, colour] of [[pull, "rgba(30,150,70,0.85)"], [push, "rgba(210,50,50,0.85)"]]) {
    ctx.strokeStyle = colour;
    ctx.fillStyle = colour;
    ctx.lineWidth = 1.3;
    ctx.beginPath();
    for (let j = 0; j < rows; j++) {
      const i = batch[j];
      if (dim === 3 && depth[i] < -0.2) continue;
      let m = 0;
      for (let d = 0; d < dim; d++) { tip[d] = positions[i * dim + d] + v[j * dim + d] * s; m += v[j * dim + d] ** 2; }
      if (m === 0) continue;
      const t = project(tip, dim, view);
      const x0 = xy[2 * i], y0 = xy[2 * i + 1];
      let x1 = cx + r * t[0], y1 = cy - r * t[1];
      const len = Math.hypot(x1 - x0, y1 - y0);
      if (len < 1.5) continue;
      if (len > 60) { x1 = x0 + ((x1 - x0) * 60) / len; y1 = y0 + ((y1 - y0) * 60) / len; }
      ctx.moveTo(x0, y0); ctx.lineTo(x1, y1);
      const a = Math.atan2(y1 - y0, x1 - x0);
      ctx.moveTo(x1, y1); ctx.lineTo(x1 - 5 * Math.cos(a - 0.45), y1 - 5 * Math.sin(a - 0.45));
      ctx.moveTo(x1, y1); ctx.lineTo(x1 - 5 * Math.cos(a + 0.45), y1 - 5 * Math.sin(a + 0.45));
    }
    ctx.stroke();
  }
}

// The anchor, its positive and its hardest negatives.
function drawAnchorRings(ctx, an, xy) {
  const ring = (i, colour, rad, width = 2) => {
    ctx.strokeStyle = colour; ctx.lineWidth = width;
    ctx.beginPath(); ctx.arc(xy[2 * i], xy[2 * i + 1], rad, 0, 2 * Math.PI); ctx.stroke();
  };
  for (const neg of an.negatives.slice(0, 3)) ring(neg.point, "#c62828", 6, 1.5);
  ctx.setLineDash([4, 3]);
  ctx.strokeStyle = "#1b5e20"; ctx.lineWidth = 1.5;
  ctx.beginPath(); ctx.moveTo(xy[2 * an.point], xy[2 * an.point + 1]);
  ctx.lineTo(xy[2 * an.positive.point], xy[2 * an.positive.point + 1]); ctx.stroke();
  ctx.setLineDash([]);
  ring(an.positive.point, "#1b5e20", 6);
  ring(an.point, "#111", 7, 2.5);
}

// The similarity colour scale, tabulated: cosine -1..1 in DIVERGING_STEPS steps, as 0xBBGGRR.
const DIVERGING_STEPS = 1024;
const DIVERGING = Uint32Array.from({ length: DIVERGING_STEPS + 1 }, (_, i) => {
  const [r, g, b] = divergingRGB((2 * i) / DIVERGING_STEPS - 1);
  return (b << 16) | (g << 8) | r;
});
let heat = null;

export function drawHeatmap(pg) {
  const { dom, frame, labels } = pg;
  const { s, similarity, meta: m } = frame;
  const { ctx, w, h } = fitCanvas(dom.heatmap);
  ctx.clearRect(0, 0, w, h);
  if (!s) return;
  if (!heat || heat.img.width !== s) {                           // one image and canvas per matrix size
    const off = new OffscreenCanvas(s, s);
    heat = { img: new ImageData(s, s), off, ctx: off.getContext("2d") };
  }
  const { img, off } = heat, data = img.data;
  for (let i = 0; i < s * s; i++) {
    const v = DIVERGING[Math.round((Math.max(-1, Math.min(1, similarity[i])) + 1) * 0.5 * DIVERGING_STEPS)];
    data[4 * i] = v & 255; data[4 * i + 1] = (v >> 8) & 255; data[4 * i + 2] = (v >> 16) & 255; data[4 * i + 3] = 255;
  }
  heat.ctx.putImageData(img, 0, 0);
  const strip = 6, size = Math.min(w, h) - strip - 2;
  ctx.imageSmoothingEnabled = false;
  ctx.drawImage(off, strip + 2, strip + 2, size, size);
  const cell = size / s;
  m.similarity_rows.forEach((p, i) => {
    ctx.fillStyle = classColour(labels[p]);
    ctx.fillRect(0, strip + 2 + i * cell, strip, Math.max(cell, 1));
  });
  m.similarity_cols.forEach((p, j) => {
    ctx.fillStyle = classColour(labels[p]);
    ctx.fillRect(strip + 2 + j * cell, 0, Math.max(cell, 1), strip);
  });
  const row = m.similarity_rows.indexOf(m.anchor.point);
  if (row >= 0) {
    ctx.strokeStyle = "#111"; ctx.lineWidth = 1.5;
    ctx.strokeRect(strip + 2, strip + 2 + row * cell, size, cell);
  }
}

export function drawBars(pg) {
  const { dom, frame } = pg;
  const an = frame.meta.anchor;
  const rows = [{ kind: "positive", ...an.positive }, ...an.negatives.map((x) => ({ kind: "negative", ...x }))];
  if (an.rest > 0) rows.push({ kind: "rest", p: an.rest, label: "", point: null, cos: null });
  const box = dom.bars;
  while (box.children.length < rows.length) {
    box.append(el("div", { class: "bar" }, el("span", { class: "name" }), el("span", { class: "track" },
      el("span", { class: "fill" })), el("span", { class: "p" })));
  }
  while (box.children.length > rows.length) box.lastChild.remove();
  const maxP = Math.max(...rows.map((r) => r.p), 1e-9);
  rows.forEach((r, i) => {
    const node = box.children[i];
    node.dataset.kind = r.kind;
    node.dataset.p = String(r.p);
    const role = r.kind === "positive" ? "positive" : i <= 3 ? `hard negative ${i}` : "negative";
    const name = r.kind === "rest" ? `${an.n_negatives - an.negatives.length} other negatives`
      : `${role} #${r.point} (${r.label}) cos ${fmt(r.cos, 2)}`;
    node.children[0].textContent = name;
    node.children[1].firstChild.style.width = `${(100 * r.p) / maxP}%`;
    node.children[2].textContent = pct(r.p);
  });
  dom.entropy.textContent = `anchor #${an.point} (cluster ${an.label}) · entropy ${fmt(an.entropy, 3)} nats · ` +
    `${an.n_negatives} negatives · temperature ${fmt(frame.meta.settings.temperature, 3)}`;
}

export function drawCharts(pg) {
  const { dom, history } = pg;
  const x = history.step;
  lineChart(dom.lossChart, [{ x, y: history.loss, colour: "#4e79a7" }], { title: "loss" });
  lineChart(dom.alignChart, [{ x, y: history.alignment, colour: "#59a14f" }],
            { title: "alignment (lower: positives closer)" });
  lineChart(dom.unifChart, [{ x, y: history.uniformity, colour: "#e15759" }],
            { title: "uniformity (lower: more spread; 0: collapsed)" });
}
