// Drawing the playground's frame: points and arrows (pixels written into ImageData, arrows as paths),
// the batch's similarity matrix, the anchor's softmax bars, the curves. `pg` holds the page state:
// {dom, frame, labels, view, arrowScale, history}.
import { classColour, divergingRGB, el, fitCanvas, fmt, lineChart, pct } from "./common.js";

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

// Pixel offsets of a filled disc of radius r (device pixels), for stamping points into ImageData.
const discs = new Map();
function disc(r) {
  if (!discs.has(r)) {
    const out = [];
    for (let dy = -r; dy <= r; dy++) for (let dx = -r; dx <= r; dx++) if (dx * dx + dy * dy <= r * r + r * 0.6) out.push([dx, dy]);
    discs.set(r, out);
  }
  return discs.get(r);
}
const faintCache = new Map();
function colours(c) {            // [solid, faint] as little-endian RGBA words (faint = 35% over white)
  if (!faintCache.has(c)) {
    const v = parseInt(classColour(c).slice(1), 16);
    const rgb = [(v >> 16) & 255, (v >> 8) & 255, v & 255];
    const pack = (a) => ((255 << 24) | (a[2] << 16) | (a[1] << 8) | a[0]) >>> 0;
    faintCache.set(c, [pack(rgb), pack(rgb.map((x) => Math.round(255 - 0.35 * (255 - x))))]);
  }
  return faintCache.get(c);
}
let pixels = null;

export function drawPoints(pg) {
  const { dom, frame, labels, view } = pg;
  const { ctx, w, h } = fitCanvas(dom.canvas);
  const { n, dim, positions, pull, push, roles } = frame;
  const { cx, cy, r } = screen(dom.canvas);
  const dpr = window.devicePixelRatio || 1;
  const cw = dom.canvas.width, ch = dom.canvas.height;
  if (!pixels || pixels.img.width !== cw || pixels.img.height !== ch) {
    const img = ctx.createImageData(cw, ch);
    pixels = { img, words: new Uint32Array(img.data.buffer) };
  }
  const px = pixels.words;
  px.fill(0xffffffff);
  const xy = new Float32Array(2 * n), depth = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const q = project(positions.subarray(i * dim, i * dim + dim), dim, view);
    xy[2 * i] = cx + r * q[0]; xy[2 * i + 1] = cy - r * q[1]; depth[i] = q[2];
  }
  frame.screen = xy;
  frame.depth = depth;
  // points straight into the pixel buffer: faint ones (outside the batch, or behind the sphere) first
  const stamp = (i, rad, word) => {
    const x0 = Math.round(xy[2 * i] * dpr), y0 = Math.round(xy[2 * i + 1] * dpr);
    for (const [dx, dy] of disc(rad)) {
      const x = x0 + dx, y = y0 + dy;
      if (x >= 0 && y >= 0 && x < cw && y < ch) px[y * cw + x] = word;
    }
  };
  const big = Math.round(3 * dpr), small = Math.round(2.2 * dpr), tiny = Math.max(1, Math.round(1.5 * dpr));
  for (const layer of [0, 1]) {
    for (let i = 0; i < n; i++) {
      const front = dim === 2 || depth[i] >= 0;
      const solid = roles[i] > 0 && front;
      if ((layer === 1) !== solid) continue;
      const [strong, faint] = colours(labels[i] ?? 0);
      stamp(i, layer ? big : front ? small : tiny, layer ? strong : faint);
    }
  }
  ctx.putImageData(pixels.img, 0, 0);
  ctx.strokeStyle = "#d0d4d9";
  ctx.lineWidth = 1;
  ctx.beginPath(); ctx.arc(cx, cy, r, 0, 2 * Math.PI); ctx.stroke();
  // arrows: tangent vectors projected like the points
  const mags = [];
  for (let i = 0; i < n; i++) {
    if (!roles[i]) continue;
    for (const v of [pull, push]) {
      let m = 0;
      for (let d = 0; d < dim; d++) m += v[i * dim + d] ** 2;
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
  for (const [v, colour] of [[pull, "rgba(30,150,70,0.85)"], [push, "rgba(210,50,50,0.85)"]]) {
    ctx.strokeStyle = colour;
    ctx.fillStyle = colour;
    ctx.lineWidth = 1.3;
    ctx.beginPath();
    for (let i = 0; i < n; i++) {
      if (!roles[i] || (dim === 3 && depth[i] < -0.2)) continue;
      const p = positions.subarray(i * dim, i * dim + dim);
      const tip = new Array(dim);
      let m = 0;
      for (let d = 0; d < dim; d++) { tip[d] = p[d] + v[i * dim + d] * s; m += v[i * dim + d] ** 2; }
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
  // the anchor, its positive and its hardest negatives
  const an = frame.meta.anchor;
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

export function drawHeatmap(pg) {
  const { dom, frame, labels } = pg;
  const { s, similarity, meta: m } = frame;
  const { ctx, w, h } = fitCanvas(dom.heatmap);
  ctx.clearRect(0, 0, w, h);
  if (!s) return;
  const img = new ImageData(s, s);
  for (let i = 0; i < s * s; i++) {
    const [r, g, b] = divergingRGB(similarity[i]);
    img.data[4 * i] = r; img.data[4 * i + 1] = g; img.data[4 * i + 2] = b; img.data[4 * i + 3] = 255;
  }
  const off = new OffscreenCanvas(s, s);
  off.getContext("2d").putImageData(img, 0, 0);
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
