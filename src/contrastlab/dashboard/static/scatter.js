// A scatter plot of up to a few hundred thousand points on Canvas2D: points are written straight
// into an ImageData buffer (a Uint32 view), so a frame costs one pass over the points and one
// putImageData, whatever the count. Pan by dragging, zoom with the wheel; new coordinates are
// tweened from the old ones so points move instead of jumping.
//
// Two-modality runs (image-text) get a second layer, drawn with the 2-D context over the points
// (and only for such runs, so plain runs keep their one-pass cost): a thin line from each image to
// its name, the images as small thumbnails framed in their colour, the names as ringed dots with
// short labels (placed where they do not overlap), and the partner of the selected point.
import { packedColour } from "./common.js";
import { pointRenderer } from "./glpoints.js";

const BACKGROUND = packedColour("#ffffff");
const MAX_THUMBS = 800;             // thumbnails drawn per frame at most (more visible: an even share of them)
const MAX_ROUND = 1500;             // more names visible than this: square markers (cheaper than circles)
const MAX_LABELS = 400;             // name labels tried per frame at most
const LABEL_FONT = "11px system-ui, sans-serif";
const LABEL_CHARS = 18;
const PARTNER = "#e8590c";

function cssColour(packed) {         // 0xAABBGGRR -> "rgb(r,g,b)"
  return `rgb(${packed & 255},${(packed >>> 8) & 255},${(packed >>> 16) & 255})`;
}

function shortText(t) {
  return t.length > LABEL_CHARS ? `${t.slice(0, LABEL_CHARS - 1)}…` : t;
}

export class Scatter {
  constructor(canvas, { onHover = null, onClick = null } = {}) {
    this.canvas = canvas;
    this.ctx = canvas.getContext("2d");
    this.xy = null;                 // Float32Array (2P) target coordinates
    this.from = null;               // coordinates at the start of a tween
    this.shown = null;              // coordinates drawn last
    this.colours = null;            // Uint32Array (P)
    this.view = { x: 0, y: 0, k: 1 }; // data -> screen: sx = (x - view.x) * k + w/2
    this.tween = { start: 0, ms: 300 };
    this.selected = -1;
    this.highlight = [];
    this.pairs = null;              // two-modality runs: {modality, pair, thumbRow, texts}
    this.atlas = null;              // {canvas, cols, w, h, count}: the thumbnails of the image points
    this.showLines = true;
    this.partner = -1;              // the selected point's partner (two-modality runs)
    this.stats = { lines: 0, thumbs: 0, labels: 0, names: 0 };   // what the last frame drew of that layer
    this.labelWidths = new Map();   // label -> its width in px (measured once)
    this.fitK = 1;
    this.onHover = onHover;
    this.onClick = onClick;
    this.frameTimes = [];           // ms per draw, for the benchmark
    this.onDrawn = null;            // called after each draw (the run view keeps its frames for "Record")
    this.draws = 0;
    this.pending = false;
    this._wire();
  }

  setColours(colours) { this.colours = colours; this.request(); }

  // pairs: null, or {modality: Uint8Array (P), pair: Int32Array (P) | null, thumbRow: Int32Array (P), texts}
  setPairs(pairs) {
    this.pairs = pairs; this.atlas = null; this.partner = -1; this.labelWidths = new Map();
    this.stats = { lines: 0, thumbs: 0, labels: 0, names: 0 };
    this.request();
  }

  setAtlas(atlas) { this.atlas = atlas; this.request(); }

  // New coordinates; `refit`: frame them afresh (another projection: another scale).
  setData(xy, { animate = true, refit = false } = {}) {
    const first = !this.xy || this.xy.length !== xy.length;
    this.from = !first && animate ? (this.shown || this.xy).slice() : null;
    this.xy = xy;
    if (!this.colours || this.colours.length !== xy.length / 2) {      // no labels (yet): grey points
      this.colours = new Uint32Array(xy.length / 2).fill(packedColour("#7f8a96"));
    }
    this.tween.start = performance.now();
    if (first || refit) this.fit();
    this.request();
  }

  fit() {
    if (!this.xy) return;
    let x0 = Infinity, x1 = -Infinity, y0 = Infinity, y1 = -Infinity;
    for (let i = 0; i < this.xy.length; i += 2) {
      const x = this.xy[i], y = this.xy[i + 1];
      if (x < x0) x0 = x; if (x > x1) x1 = x; if (y < y0) y0 = y; if (y > y1) y1 = y;
    }
    const w = this.canvas.clientWidth || 1, h = this.canvas.clientHeight || 1;
    const span = Math.max(x1 - x0, y1 - y0, 1e-9);
    this.view = { x: (x0 + x1) / 2, y: (y0 + y1) / 2, k: (0.9 * Math.min(w, h)) / span };
    this.fitK = this.view.k;
    this.request();
  }

  request() {
    if (this.pending) return;
    this.pending = true;
    requestAnimationFrame((t) => this.draw(t));
  }

  toScreen(x, y) {
    const w = this.canvas.clientWidth, h = this.canvas.clientHeight;
    return [(x - this.view.x) * this.view.k + w / 2, h / 2 - (y - this.view.y) * this.view.k];
  }

  draw(now) {
    this.pending = false;
    const t0 = performance.now();
    const dpr = window.devicePixelRatio || 1;
    const cw = Math.max(1, Math.round(this.canvas.clientWidth * dpr));
    const ch = Math.max(1, Math.round(this.canvas.clientHeight * dpr));
    if (this.canvas.width !== cw || this.canvas.height !== ch) { this.canvas.width = cw; this.canvas.height = ch; }
    if (!this.image || this.image.width !== cw || this.image.height !== ch) {
      this.image = this.ctx.createImageData(cw, ch);
      this.pixels = new Uint32Array(this.image.data.buffer);
    }
    const px = this.pixels;
    const has = Boolean(this.xy && this.colours);
    const gl = has ? pointRenderer().gl : null;     // WebGL2 points where that is the fast path (glpoints.js)
    if (!gl) px.fill(BACKGROUND);
    let animating = false;
    if (has) {
      let coords = this.xy;
      if (this.from) {
        const a = Math.min(1, (now - this.tween.start) / this.tween.ms);
        const e = a * a * (3 - 2 * a);
        if (a < 1) {
          animating = true;
          if (!this.mix || this.mix.length !== this.xy.length) this.mix = new Float32Array(this.xy.length);
          const f = this.from, to = this.xy, m = this.mix;
          for (let i = 0; i < m.length; i++) m[i] = f[i] + (to[i] - f[i]) * e;
          coords = this.mix;
        } else {
          this.from = null;
        }
      }
      this.shown = coords;
      const n = coords.length / 2;
      const k = this.view.k * dpr, ox = cw / 2 - this.view.x * k, oy = ch / 2 + this.view.y * k;
      const size = Math.max(1, Math.min(4, Math.round((this.view.k / 60) * dpr))) + (n < 5000 ? 1 : 0);
      const cols = this.colours;
      if (gl) {
        gl.draw({ xy: coords, colours: cols, count: n, k: [k, -k], o: [ox, oy], size, width: cw, height: ch,
                  background: [1, 1, 1, 1], fresh: animating });
      } else {
        for (let i = 0; i < n; i++) {
          const sx = (coords[2 * i] * k + ox) | 0, sy = (oy - coords[2 * i + 1] * k) | 0;
          if (sx < 0 || sy < 0 || sx + size > cw || sy + size > ch) continue;
          const c = cols[i];
          let row = sy * cw + sx;
          for (let dy = 0; dy < size; dy++, row += cw) for (let dx = 0; dx < size; dx++) px[row + dx] = c;
        }
      }
    }
    if (gl) {
      this.ctx.setTransform(1, 0, 0, 1, 0, 0);
      this.ctx.drawImage(gl.canvas, 0, 0);
    } else {
      this.ctx.putImageData(this.image, 0, 0);
    }
    this._decorate(dpr);
    this.draws++;
    if (this.onDrawn) this.onDrawn();
    const ms = performance.now() - t0;
    this.frameTimes.push(ms);
    if (this.frameTimes.length > 600) this.frameTimes.splice(0, 300);
    if (animating) this.request();
  }

  _decorate(dpr) {
    if (!this.shown) return;
    const ctx = this.ctx;
    ctx.save();
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    if (this.pairs && this.pairs.modality.length === this.shown.length / 2) this._drawPairs(ctx);
    const ring = (i, colour, r) => {
      if (i < 0 || 2 * i >= this.shown.length) return;
      const [x, y] = this.toScreen(this.shown[2 * i], this.shown[2 * i + 1]);
      ctx.strokeStyle = colour; ctx.lineWidth = 2;
      ctx.beginPath(); ctx.arc(x, y, r, 0, 2 * Math.PI); ctx.stroke();
    };
    for (const j of this.highlight) ring(j, "#333", 5);
    ring(this.selected, "#000", 8);
    ring(this.partner, PARTNER, 9);
    ctx.restore();
  }

  // The image-text layer, in CSS pixels: lines, thumbnails, name dots and labels, the selected pair.
  _drawPairs(ctx) {
    const { modality, pair, thumbRow, texts } = this.pairs;
    const pts = this.shown, n = modality.length;
    const w = this.canvas.clientWidth, h = this.canvas.clientHeight;
    const k = this.view.k, ox = w / 2 - this.view.x * k, oy = h / 2 + this.view.y * k;
    const X = (i) => pts[2 * i] * k + ox, Y = (i) => oy - pts[2 * i + 1] * k;
    const inside = (x, y, m) => x > -m && y > -m && x < w + m && y < h + m;
    const stats = { lines: 0, thumbs: 0, labels: 0, names: 0 };
    if (pair && this.showLines) {                                  // one path: every image -> its name
      ctx.beginPath();
      for (let i = 0; i < n; i++) {
        const j = pair[i];
        if (modality[i] !== 0 || j < 0) continue;
        const x0 = X(i), y0 = Y(i), x1 = X(j), y1 = Y(j);
        if (Math.max(x0, x1) < 0 || Math.min(x0, x1) > w || Math.max(y0, y1) < 0 || Math.min(y0, y1) > h) continue;
        ctx.moveTo(x0, y0); ctx.lineTo(x1, y1);
        stats.lines++;
      }
      ctx.strokeStyle = "rgba(70, 80, 95, 0.38)"; ctx.lineWidth = 0.8;
      ctx.stroke();
    }
    const zoom = Math.sqrt(Math.max(this.view.k / (this.fitK || 1), 1e-6));
    const atlas = this.atlas;
    const frames = new Map();                                      // colour -> Path2D of thumbnail frames
    const colourOf = new Map();
    const css = (c) => {
      let s = colourOf.get(c);
      if (s === undefined) { s = cssColour(c); colourOf.set(c, s); }
      return s;
    };
    if (atlas) {
      const ts = Math.round(Math.max(10, Math.min(64, 16 * zoom)));
      ctx.imageSmoothingEnabled = ts < 2 * atlas.w;
      const visible = [];
      for (let i = 0; i < n; i++) {
        const r = thumbRow[i];
        if (modality[i] === 0 && r >= 0 && r < atlas.count && inside(X(i), Y(i), ts)) visible.push(i);
      }
      const stride = Math.ceil(visible.length / MAX_THUMBS);     // too many on screen: an even share (zoom in)
      for (let v = 0; v < visible.length; v += stride) {
        const i = visible[v], r = thumbRow[i];
        const x = X(i) - ts / 2, y = Y(i) - ts / 2;
        ctx.drawImage(atlas.canvas, (r % atlas.cols) * atlas.w, Math.floor(r / atlas.cols) * atlas.h, atlas.w, atlas.h,
                      x, y, ts, ts);
        const c = this.colours[i];
        let path = frames.get(c);
        if (!path) { path = new Path2D(); frames.set(c, path); }
        path.rect(x - 0.5, y - 0.5, ts + 1, ts + 1);
        stats.thumbs++;
      }
      ctx.lineWidth = 1.5;
      for (const [c, path] of frames) { ctx.strokeStyle = css(c); ctx.stroke(path); }
    }
    const dots = new Map();                                        // names: a dot in the colour, a dark ring
    const rings = new Path2D();
    const rad = Math.max(3, Math.min(6, 3.5 * zoom));
    const shownNames = [];
    for (let i = 0; i < n; i++) if (modality[i] === 1 && inside(X(i), Y(i), rad)) shownNames.push(i);
    const round = shownNames.length <= MAX_ROUND;
    for (const i of shownNames) {
      const x = X(i), y = Y(i), c = this.colours[i];
      let path = dots.get(c);
      if (!path) { path = new Path2D(); dots.set(c, path); }
      if (round) {
        path.moveTo(x + rad, y); path.arc(x, y, rad, 0, 2 * Math.PI);
        rings.moveTo(x + rad, y); rings.arc(x, y, rad, 0, 2 * Math.PI);
      } else {
        path.rect(x - rad, y - rad, 2 * rad, 2 * rad);
        rings.rect(x - rad, y - rad, 2 * rad, 2 * rad);
      }
    }
    for (const [c, path] of dots) { ctx.fillStyle = css(c); ctx.fill(path); }
    ctx.strokeStyle = "#1d232a"; ctx.lineWidth = 1; ctx.stroke(rings);
    stats.names = shownNames.length;
    if (texts) {                                                   // labels where they do not overlap
      ctx.font = LABEL_FONT;
      const widths = this.labelWidths;
      const width = (label) => {
        let v = widths.get(label);
        if (v === undefined) { v = ctx.measureText(label).width; widths.set(label, v); }
        return v;
      };
      ctx.textBaseline = "middle";
      ctx.lineJoin = "round";
      const cell = 24, grid = new Map(), placed = [];
      const free = (x0, y0, x1, y1) => {
        for (let gx = Math.floor(x0 / cell); gx <= Math.floor(x1 / cell); gx++) {
          for (let gy = Math.floor(y0 / cell); gy <= Math.floor(y1 / cell); gy++) {
            for (const b of grid.get(`${gx},${gy}`) || []) {
              if (x0 < b[2] && b[0] < x1 && y0 < b[3] && b[1] < y1) return false;
            }
          }
        }
        return true;
      };
      const take = (box) => {
        for (let gx = Math.floor(box[0] / cell); gx <= Math.floor(box[2] / cell); gx++) {
          for (let gy = Math.floor(box[1] / cell); gy <= Math.floor(box[3] / cell); gy++) {
            const key = `${gx},${gy}`;
            if (!grid.has(key)) grid.set(key, []);
            grid.get(key).push(box);
          }
        }
      };
      const first = [this.selected, this.partner].filter((i) => i >= 0 && i < n && modality[i] === 1);
      const order = first.concat(shownNames.filter((i) => !first.includes(i)));
      for (let t = 0; t < order.length && t < MAX_LABELS; t++) {
        const i = order[t];
        const label = shortText(texts[i] || "");
        if (!label) continue;
        const x = X(i) + rad + 3, y = Y(i);
        const box = [x - 1, y - 7, x + width(label) + 1, y + 7];
        if (t >= first.length && !free(...box)) continue;
        take(box);
        placed.push([label, x, y]);
      }
      ctx.strokeStyle = "rgba(255, 255, 255, 0.85)"; ctx.lineWidth = 3;
      for (const [label, x, y] of placed) ctx.strokeText(label, x, y);
      ctx.fillStyle = "#1d232a";
      for (const [label, x, y] of placed) ctx.fillText(label, x, y);
      stats.labels = placed.length;
    }
    const a = this.selected, b = this.partner;                     // the selected pair, on top
    if (a >= 0 && b >= 0 && a < n && b < n) {
      ctx.strokeStyle = PARTNER; ctx.lineWidth = 2.5;
      ctx.beginPath(); ctx.moveTo(X(a), Y(a)); ctx.lineTo(X(b), Y(b)); ctx.stroke();
    }
    this.stats = stats;
  }

  nearest(mx, my, radius = 8) {
    const pts = this.shown || this.xy;
    if (!pts) return -1;
    const k = this.view.k, w = this.canvas.clientWidth, h = this.canvas.clientHeight;
    const x = (mx - w / 2) / k + this.view.x, y = (h / 2 - my) / k + this.view.y;
    const r2 = (radius / k) ** 2;
    let best = -1, bestD = r2;
    for (let i = 0; i < pts.length; i += 2) {
      const d = (pts[i] - x) ** 2 + (pts[i + 1] - y) ** 2;
      if (d < bestD) { bestD = d; best = i / 2; }
    }
    return best;
  }

  _wire() {
    const c = this.canvas;
    let drag = null, hoverPending = null;
    c.addEventListener("pointerdown", (e) => {
      drag = { x: e.offsetX, y: e.offsetY, moved: false };
      c.setPointerCapture(e.pointerId);
    });
    c.addEventListener("pointermove", (e) => {
      if (drag) {
        const dx = e.offsetX - drag.x, dy = e.offsetY - drag.y;
        if (Math.abs(dx) + Math.abs(dy) > 2) drag.moved = true;
        if (drag.moved) {
          this.view.x -= dx / this.view.k; this.view.y += dy / this.view.k;
          drag.x = e.offsetX; drag.y = e.offsetY;
          this.request();
        }
        return;
      }
      if (this.onHover && !hoverPending) {
        hoverPending = requestAnimationFrame(() => {
          hoverPending = null;
          this.onHover(this.nearest(e.offsetX, e.offsetY), e.offsetX, e.offsetY);
        });
      }
    });
    c.addEventListener("pointerup", (e) => {
      if (drag && !drag.moved && this.onClick) this.onClick(this.nearest(e.offsetX, e.offsetY));
      drag = null;
    });
    c.addEventListener("pointerleave", () => { if (this.onHover) this.onHover(-1, 0, 0); });
    c.addEventListener("wheel", (e) => {
      e.preventDefault();
      const f = Math.exp(-e.deltaY * 0.0015);
      const w = c.clientWidth, h = c.clientHeight;
      const x = (e.offsetX - w / 2) / this.view.k + this.view.x, y = (h / 2 - e.offsetY) / this.view.k + this.view.y;
      this.view.k *= f;
      this.view.x = x - (e.offsetX - w / 2) / this.view.k;
      this.view.y = y - (h / 2 - e.offsetY) / this.view.k;
      this.request();
    }, { passive: false });
  }
}
