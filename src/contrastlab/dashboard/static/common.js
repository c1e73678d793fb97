// Shared helpers of the dashboard page: colours, DOM, line charts. No third-party code.

// Class colours (colour-blind-friendly order, then more); -1 / unknown -> grey.
export const PALETTE = [
  "#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7",
  "#9c755f", "#bab0ac", "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b",
  "#e377c2", "#7f7f7f", "#bcbd22", "#17becf",
];
export const GREY = "#9aa0a6";

export function classColour(label) {
  return label >= 0 ? PALETTE[label % PALETTE.length] : GREY;
}

// "#rrggbb" -> 0xAABBGGRR for a little-endian Uint32 view of ImageData.
export function packedColour(hex, alpha = 255) {
  const v = parseInt(hex.slice(1), 16);
  const r = (v >> 16) & 255, g = (v >> 8) & 255, b = v & 255;
  return ((alpha << 24) | (b << 16) | (g << 8) | r) >>> 0;
}

export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") node.className = v;
    else if (k === "text") node.textContent = v;
    else if (k === "style") node.style.cssText = v;          // CSSOM: allowed by the page's CSP
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else if (v !== undefined && v !== null && v !== false) node.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children) if (c !== null && c !== undefined) node.append(c);
  return node;
}

export function fmt(x, digits = 3) {
  if (x === null || x === undefined || Number.isNaN(x)) return "–";
  const a = Math.abs(x);
  if (a !== 0 && (a < 1e-3 || a >= 1e5)) return x.toExponential(2);
  return Number(x.toFixed(digits)).toString();
}

export function pct(p) {
  return p >= 0.01 ? `${(100 * p).toFixed(0)}%` : `${(100 * p).toPrecision(1)}%`;
}

// Canvas sized to its CSS box at the device pixel ratio; returns the 2-D context scaled to CSS px.
export function fitCanvas(canvas) {
  const dpr = window.devicePixelRatio || 1;
  const w = Math.max(1, Math.round(canvas.clientWidth)), h = Math.max(1, Math.round(canvas.clientHeight));
  if (canvas.width !== Math.round(w * dpr) || canvas.height !== Math.round(h * dpr)) {
    canvas.width = Math.round(w * dpr);
    canvas.height = Math.round(h * dpr);
  }
  const ctx = canvas.getContext("2d");
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  return { ctx, w, h };
}

// A small line chart: series = [{x: [...], y: [...], colour, label}], drawn on `canvas`.
export function lineChart(canvas, series, { title = "", logY = false } = {}) {
  const { ctx, w, h } = fitCanvas(canvas);
  ctx.clearRect(0, 0, w, h);
  const pad = { l: 44, r: 8, t: 16, b: 18 };
  ctx.font = "11px system-ui, sans-serif";
  ctx.fillStyle = "#444";
  ctx.fillText(title, pad.l, 11);
  let x0 = Infinity, x1 = -Infinity, y0 = Infinity, y1 = -Infinity;
  const tr = (y) => (logY ? Math.log10(Math.max(y, 1e-12)) : y);
  for (const s of series) {
    for (let i = 0; i < s.x.length; i++) {
      const y = s.y[i];
      if (y === null || y === undefined || !Number.isFinite(y)) continue;
      x0 = Math.min(x0, s.x[i]); x1 = Math.max(x1, s.x[i]);
      y0 = Math.min(y0, tr(y)); y1 = Math.max(y1, tr(y));
    }
  }
  ctx.strokeStyle = "#ddd";
  ctx.strokeRect(pad.l, pad.t, w - pad.l - pad.r, h - pad.t - pad.b);
  if (!Number.isFinite(x0)) {
    ctx.fillStyle = "#999";
    ctx.fillText("no data yet", pad.l + 8, pad.t + 16);
    return;
  }
  if (x1 === x0) x1 = x0 + 1;
  if (y1 === y0) { y1 += 0.5; y0 -= 0.5; }
  const px = (x) => pad.l + ((x - x0) / (x1 - x0)) * (w - pad.l - pad.r);
  const py = (y) => pad.t + (1 - (tr(y) - y0) / (y1 - y0)) * (h - pad.t - pad.b);
  ctx.fillStyle = "#666";
  const lab = (v) => fmt(logY ? 10 ** v : v, 3);
  ctx.fillText(lab(y1), 2, pad.t + 8);
  ctx.fillText(lab(y0), 2, h - pad.b);
  ctx.fillText(fmt(x0, 0), pad.l, h - 4);
  const xl = fmt(x1, 0);
  ctx.fillText(xl, w - pad.r - ctx.measureText(xl).width, h - 4);
  let legendX = pad.l + ctx.measureText(title).width + 12;
  for (const s of series) {
    ctx.strokeStyle = s.colour;
    ctx.lineWidth = 1.5;
    ctx.beginPath();
    let pen = false;
    for (let i = 0; i < s.x.length; i++) {
      const y = s.y[i];
      if (y === null || y === undefined || !Number.isFinite(y)) { pen = false; continue; }
      if (pen) ctx.lineTo(px(s.x[i]), py(y)); else ctx.moveTo(px(s.x[i]), py(y));
      pen = true;
    }
    ctx.stroke();
    if (s.label && series.length > 1) {
      ctx.fillStyle = s.colour;
      ctx.fillText(s.label, legendX, 11);
      legendX += ctx.measureText(s.label).width + 10;
    }
  }
}

// Diverging colour for a cosine in [-1, 1]: blue (-1) - white (0) - red (+1), as [r, g, b].
export function divergingRGB(v) {
  const t = Math.max(-1, Math.min(1, v));
  if (t >= 0) return [255, Math.round(255 * (1 - t * 0.85)), Math.round(255 * (1 - t * 0.9))];
  return [Math.round(255 * (1 + t * 0.85)), Math.round(255 * (1 + t * 0.6)), 255];
}

export async function fetchJSON(url) {
  const r = await fetch(url, { cache: "no-store" });
  if (!r.ok) throw new Error(`${url}: ${r.status}`);
  return r.json();
}
