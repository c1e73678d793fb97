// A scatter plot of up to a few hundred thousand points on Canvas2D: points are written straight
// into an ImageData buffer (a Uint32 view), so a frame costs one pass over the points and one
// putImageData, whatever the count. Pan by dragging, zoom with the wheel; new coordinates are
// tweened from the old ones so points move instead of jumping.
import { packedColour } from "./common.js";

const BACKGROUND = packedColour("#ffffff");

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
    this.onHover = onHover;
    this.onClick = onClick;
    this.frameTimes = [];           // ms per draw, for the benchmark
    this.draws = 0;
    this.pending = false;
    this._wire();
  }

  setColours(colours) { this.colours = colours; this.request(); }

  setData(xy, { animate = true } = {}) {
    const first = !this.xy || this.xy.length !== xy.length;
    this.from = !first && animate ? (this.shown || this.xy).slice() : null;
    this.xy = xy;
    if (!this.colours || this.colours.length !== xy.length / 2) {      // no labels (yet): grey points
      this.colours = new Uint32Array(xy.length / 2).fill(packedColour("#7f8a96"));
    }
    this.tween.start = performance.now();
    if (first) this.fit();
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
    px.fill(BACKGROUND);
    let animating = false;
    if (this.xy && this.colours) {
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
      for (let i = 0; i < n; i++) {
        const sx = (coords[2 * i] * k + ox) | 0, sy = (oy - coords[2 * i + 1] * k) | 0;
        if (sx < 0 || sy < 0 || sx + size > cw || sy + size > ch) continue;
        const c = cols[i];
        let row = sy * cw + sx;
        for (let dy = 0; dy < size; dy++, row += cw) for (let dx = 0; dx < size; dx++) px[row + dx] = c;
      }
    }
    this.ctx.putImageData(this.image, 0, 0);
    this._decorate(dpr);
    this.draws++;
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
    const ring = (i, colour, r) => {
      if (i < 0 || 2 * i >= this.shown.length) return;
      const [x, y] = this.toScreen(this.shown[2 * i], this.shown[2 * i + 1]);
      ctx.strokeStyle = colour; ctx.lineWidth = 2;
      ctx.beginPath(); ctx.arc(x, y, r, 0, 2 * Math.PI); ctx.stroke();
    };
    for (const j of this.highlight) ring(j, "#333", 5);
    ring(this.selected, "#000", 8);
    ctx.restore();
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
