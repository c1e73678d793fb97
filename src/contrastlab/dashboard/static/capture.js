// Share what you see, made in the browser with no third-party code: a PNG of any panel (its canvases
// composed where they sit on the page, on white), and a WebM of a canvas's last frames (kept as
// bitmaps while it draws, replayed into a captured canvas that MediaRecorder encodes).
import { el } from "./common.js";

export const RING_FRAMES = 60;           // frames a recorder keeps: 3 s at 20 frames/s
const RING_FPS = 20;                     // frames kept per second at most (a faster page: every k-th frame)
const RING_MAX_SIDE = 480;               // kept frames are scaled down to at most this many pixels a side

// What the page exported, for the tests and the curious: {kind, name, bytes, width, height, frames?}.
export const exports = [];
window.__exports = exports;
window.__rings = [];                     // every FrameRing of the page (the tests read `kept`)

// The canvases of `panel` that are shown, drawn into one canvas at their place in the panel (CSS px x dpr).
export function composePanel(panel) {
  const dpr = window.devicePixelRatio || 1;
  const box = panel.getBoundingClientRect();
  const out = document.createElement("canvas");
  out.width = Math.max(1, Math.round(box.width * dpr));
  out.height = Math.max(1, Math.round(box.height * dpr));
  const ctx = out.getContext("2d");
  ctx.fillStyle = "#fff";
  ctx.fillRect(0, 0, out.width, out.height);
  let drawn = 0;
  for (const c of panel.querySelectorAll("canvas")) {
    const r = c.getBoundingClientRect();
    if (!r.width || !r.height || c.closest("[hidden]") || !c.width || !c.height) continue;
    ctx.drawImage(c, (r.left - box.left) * dpr, (r.top - box.top) * dpr, r.width * dpr, r.height * dpr);
    drawn++;
  }
  return { canvas: out, drawn };
}

function pngBlob(canvas) {
  return new Promise((resolve, reject) => canvas.toBlob((b) => (b ? resolve(b) : reject(new Error("no PNG"))), "image/png"));
}

// Offers `blob` as a download named `name` (the browser's own "save" for a link with `download`).
export function save(blob, name) {
  const url = URL.createObjectURL(blob);
  const a = el("a", { href: url, download: name, hidden: true });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
}

// A "PNG" button that saves `panel` (its canvases) as `name`-<time>.png.
export function pngButton(panel, name) {
  return el("button", { type: "button", class: "capture png", text: "PNG", title: "save this panel's pictures as a PNG",
    onclick: async () => {
      const { canvas } = composePanel(panel);
      const blob = await pngBlob(canvas);
      exports.push({ kind: "png", name, bytes: blob.size, width: canvas.width, height: canvas.height, blob });
      save(blob, `${fileName(name)}-${stamp()}.png`);
    } });
}

// A download name from a label: letters, digits, '.', '_' and '-' only.
function fileName(label) {
  return String(label).replace(/[^\w.-]+/g, "_").slice(0, 80) || "contrastlab";
}

function stamp() {
  return new Date().toISOString().replace(/[-:]/g, "").replace(/\..*/, "");
}

// The last RING_FRAMES frames of one canvas, kept as it draws (call `keep()` after each draw), and their WebM.
export class FrameRing {
  constructor(canvas, { frames = RING_FRAMES } = {}) {
    this.canvas = canvas;
    this.frames = frames;
    this.ring = [];                    // ImageBitmap, oldest first
    this.lastKept = -Infinity;
    this.kept = 0;                     // frames kept since the page opened (tests)
    this.busy = false;
    window.__rings.push(this);
  }

  keep() {
    const now = performance.now();
    const c = this.canvas;
    if (this.busy || now - this.lastKept < 1000 / RING_FPS - 1 || !c.width || !c.height) return;
    this.lastKept = now;
    const k = Math.min(1, RING_MAX_SIDE / Math.max(c.width, c.height));
    const w = Math.max(2, 2 * Math.round((c.width * k) / 2)), h = Math.max(2, 2 * Math.round((c.height * k) / 2));
    // scaled into a small canvas whose bitmap is then handed over (no copy): far cheaper on the main thread
    // than createImageBitmap's resize, which took 3-7 ms a frame at 10,000 points here
    if (!this.small || this.small.width !== w || this.small.height !== h) {
      this.small = new OffscreenCanvas(w, h);
      this.smallCtx = this.small.getContext("2d");
    }
    this.smallCtx.drawImage(c, 0, 0, w, h);
    this.ring.push(this.small.transferToImageBitmap());
    this.kept++;
    while (this.ring.length > this.frames) this.ring.shift().close();
  }

  // The frames kept, replayed at RING_FPS into a captured canvas and encoded by MediaRecorder: a WebM Blob.
  async record() {
    const mime = ["video/webm;codecs=vp8", "video/webm;codecs=vp9", "video/webm"].find((m) => MediaRecorder.isTypeSupported(m));
    if (!mime) throw new Error("this browser cannot record WebM (MediaRecorder has no WebM encoder)");
    if (!this.ring.length) throw new Error("no frames to record yet");
    this.busy = true;                  // the replay is not kept
    const frames = this.ring.slice();
    try {
      const out = document.createElement("canvas");
      out.width = frames[0].width; out.height = frames[0].height;
      const ctx = out.getContext("2d");
      const stream = out.captureStream(0);
      const track = stream.getVideoTracks()[0];
      const recorder = new MediaRecorder(stream, { mimeType: mime, videoBitsPerSecond: 2_500_000 });
      const chunks = [];
      recorder.ondataavailable = (e) => { if (e.data.size) chunks.push(e.data); };
      const stopped = new Promise((resolve) => { recorder.onstop = resolve; });
      recorder.start();
      for (const f of frames) {
        ctx.fillStyle = "#fff";
        ctx.fillRect(0, 0, out.width, out.height);
        ctx.drawImage(f, 0, 0, out.width, out.height);
        track.requestFrame();
        await new Promise((resolve) => setTimeout(resolve, 1000 / RING_FPS));   // the video's own frame pace
      }
      recorder.stop();
      await stopped;
      track.stop();
      return { blob: new Blob(chunks, { type: "video/webm" }), frames: frames.length, width: out.width, height: out.height };
    } finally {
      this.busy = false;
    }
  }
}

// A "Record" button: saves the ring's last frames as `name`-<time>.webm and plays them back beside it;
// says what it is doing on itself. Returns the button and its preview, in one span.
export function recordButton(ring, name) {
  const button = el("button", { type: "button", class: "capture webm", text: "Record last 3 s",
    title: `save the last ${RING_FRAMES} frames drawn here as a WebM video` });
  const preview = el("video", { class: "capture-preview", controls: true, muted: true, loop: true, hidden: true });
  button.addEventListener("click", async () => {
    if (ring.busy) return;
    button.disabled = true;
    button.textContent = "recording…";
    try {
      const got = await ring.record();
      exports.push({ kind: "webm", name, bytes: got.blob.size, width: got.width, height: got.height,
        frames: got.frames, blob: got.blob });
      save(got.blob, `${fileName(name)}-${stamp()}.webm`);
      if (preview.src) URL.revokeObjectURL(preview.src);
      preview.src = URL.createObjectURL(got.blob);
      preview.hidden = false;
      button.textContent = "Record last 3 s";
    } catch (e) {
      button.textContent = `cannot record: ${e.message}`;
    } finally {
      button.disabled = false;
    }
  });
  return el("span", { class: "capture-record" }, button, preview);
}
