// The playground page: a WebSocket client of /ws/playground that draws each frame.
// Frames come as a JSON message and a binary Float32 message (see protocol.py for the layout).
import { FrameRing, pngButton, recordButton } from "./capture.js";
import { classColour, el, fmt } from "./common.js";
import { buildControls, haveControls, setControlValues } from "./pgcontrols.js";
import { drawBars, drawCharts, drawHeatmap, drawPoints, screen } from "./pgdraw.js";
import { drawHueRing, drawInputPlane } from "./pginput.js";
import { buildExperiments, drawExperiment, drawFormula, drawWeightPlot } from "./pgguide.js";

const HEADER = 9;
const KEEPALIVE_MS = 30000;        // a ping this often keeps the session open (live.py IDLE_TIMEOUT is minutes)
const state = {                    // read by the browser tests and the benchmark
  connected: false, frames: 0, received: 0, seq: 0, step: 0, epoch: 0, running: true,
  settings: null, anchor: null, metrics: null, errors: [], fps: 0, drawnSeq: 0, drawnSettings: null,
  historyLength: 0, experiment: null, formula: null, link: "", notices: [], drawnStep: -1, drawnPositions: null,
};
window.__state = state;
window.__frames = 0;

let ws = null;
let meta = null;                   // JSON part of the frame being assembled
let dirty = false;
// Complete frames not drawn yet, oldest first. Each animation frame draws the oldest, so the frames the server
// sends ahead (flow control keeps <= 2 in flight) are all shown instead of overwriting each other; a frame whose
// settings differ from the queued ones (a control moved) replaces them at once, so controls never wait.
const queue = [];
const QUEUE_MAX = 3;
const settingsKey = (m) => JSON.stringify(m.settings) + m.running + m.anchor.point;
let lastCharts = 0, lastText = 0, lastPanels = 0, lastSettingsKey = "";
const fpsTimes = [];
let dom = null;
let ring = null;                   // the embedding canvas's last frames, for "Record" (capture.js)
let experiments = [];              // the server's registry of guided experiments (init message)
const startQuery = location.search; // a link's settings, read once before the page rewrites its own URL
const emptyHistory = () => ({ step: [], loss: [], alignment: [], uniformity: [] });
// what the drawing functions read: the latest complete frame, labels, the 3-D view, curves
const pg = { dom: null, frame: null, labels: [], classNames: [], view: { yaw: 0.6, pitch: -0.35 }, arrowScale: null,
             history: emptyHistory() };

function send(obj) {
  if (ws && ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify(obj));
}

// Change controls from code (tests, the benchmark, the console): one message, applied together.
export function setControls(values) {
  send({ type: "set", values });
}
window.__setControls = setControls;
export function startExperiment(name) {
  send({ type: "experiment", name });
}
window.__pgStartExperiment = startExperiment;
window.__pgLoad = (query) => send({ type: "load", query });
window.__pgPositions = () => Array.from(pg.frame.positions);          // the drawn frame's positions (tests)
window.__pgEncoder = () => (pg.frame && pg.frame.g > 0 ? {                // encoder mode's drawn frame (tests)
  g: pg.frame.g, dim: pg.frame.dim, field: Array.from(pg.frame.field), inputs: Array.from(pg.frame.inputs),
  held: Array.from(pg.frame.held), extent: pg.frame.meta.extent, plane: state.plane } : null);

// ------------------------------------------------------------------ messages
function onMessage(ev) {
  if (typeof ev.data === "string") {
    const msg = JSON.parse(ev.data);
    if (msg.type === "init") onInit(msg);
    else if (msg.type === "frame") meta = msg;
    else if (msg.type === "error") showError(msg.message);
    else if (msg.type === "notice") showNotice(msg.messages);
    return;
  }
  const f = new Float32Array(ev.data);
  const seq = f[1];
  if (!meta || meta.seq !== seq) return;                               // out of step: wait for the next pair
  const n = f[4], dim = f[5], s = f[6], g = f[7], b = f[8];
  let o = HEADER;
  const take = (len) => f.subarray(o, (o += len));
  const frame = { meta, n, dim, s, g, positions: take(n * dim), batch: take(2 * b), pull: take(2 * b * dim),
                  push: take(2 * b * dim), similarity: take(s * s), key: settingsKey(meta) };
  if (g > 0) {                                        // encoder mode: the inputs, held-out mask and field
    frame.inputs = take(n * 2); frame.held = take(n); frame.field = take(g * g * dim);
  }
  meta = null;
  state.received++;
  if (queue.length && queue[queue.length - 1].key !== frame.key) queue.length = 0;
  queue.push(frame);
  if (queue.length > QUEUE_MAX) queue.shift();
  const h = frame.meta.history;
  if (h.replace) pg.history = emptyHistory();
  for (const k of ["step", "loss", "alignment", "uniformity"]) pg.history[k].push(...h[k]);
  if (!dirty) { dirty = true; requestAnimationFrame(draw); }
}

function onInit(msg) {
  pg.labels = msg.labels;
  pg.classNames = msg.class_names;
  state.running = msg.running;
  state.epoch = msg.epoch;
  const h = msg.history;
  pg.history = { step: [...h.step], loss: [...h.loss], alignment: [...h.alignment], uniformity: [...h.uniformity] };
  if (!haveControls()) buildControls(msg.controls, msg.settings, { box: dom.controls, pause: dom.pause, send, state });
  else setControlValues(msg.settings, true);
  state.settings = msg.settings;
  if (msg.experiments && !experiments.length) {
    experiments = msg.experiments;
    buildExperiments(dom.experiments, experiments, startExperiment);
  }
  pg.arrowScale = null;
  dom.legend.replaceChildren(...pg.classNames.map((name, i) =>
    el("span", { class: "swatch" }, el("i", { style: `background:${classColour(i)}` }), `cluster ${name}`)));
}

function showError(text) {
  state.errors.push(text);
  dom.error.textContent = text;
  dom.error.hidden = false;
  clearTimeout(showError.timer);
  showError.timer = setTimeout(() => { dom.error.hidden = true; }, 5000);
}

function showNotice(messages) {
  state.notices.push(...messages);
  dom.notice.replaceChildren(...messages.map((m) => el("div", { text: m })));
  if (messages.length) dom.notice.prepend(el("b", { text: "The link's settings were not all usable; the defaults were used for: " }));
  dom.notice.hidden = messages.length === 0;
}

function linkURL(query) {
  return `${location.pathname}${query ? `?${query}` : ""}#playground`;
}

// Encoder mode: the input plane beside the embedding, and the plane's hues around the circle.
function drawEncoder(frame) {
  const on = frame.g > 0;
  dom.stageCanvases.classList.toggle("encoder", on);
  dom.input.hidden = !on;
  if (!on) { state.plane = null; return; }
  state.plane = drawInputPlane(dom.input, frame, pg.labels, frame.meta.anchor ? frame.meta.anchor.point : -1);
  if (frame.dim === 2) {
    const { cx, cy, r } = screen(dom.canvas);
    drawHueRing(dom.canvas.getContext("2d"), cx, cy, r);
  }
}

function draw(now) {
  dirty = false;
  if (queue.length) pg.frame = queue.shift();
  if (queue.length) { dirty = true; requestAnimationFrame(draw); }
  const frame = pg.frame;
  if (!frame) return;
  const m = frame.meta;
  const key = frame.key;
  const changed = key !== lastSettingsKey;            // a control moved: show everything at once
  const t0 = performance.now();
  drawPoints(pg);
  drawEncoder(frame);
  ring.keep();
  const t1 = performance.now();
  drawHeatmap(pg);
  const t2 = performance.now();
  if (changed || now - lastPanels > 100) {            // text panels at 10 Hz are plenty to read
    drawBars(pg);
    dom.status.textContent = `${m.running ? "running" : "paused"} · step ${m.step} · ${state.fps} fps · ` +
      `loss ${fmt(m.metrics.loss, 4)} · alignment ${fmt(m.metrics.alignment, 3)} · uniformity ${fmt(m.metrics.uniformity, 3)}`;
    drawExperiment(dom.experiments, m.experiment, experiments);
    drawFormula(dom.formula, m.formula);
    drawWeightPlot(dom.weights, m.formula);
    lastPanels = now;
  }
  if (m.link !== state.link && !location.hash.startsWith("#runs")) {
    history.replaceState(null, "", linkURL(m.link));   // the address bar is always a link to what is shown
  }
  const t3 = performance.now();
  if (now - lastCharts > 200) { drawCharts(pg); lastCharts = now; }
  if (changed || now - lastText > 250) { dom.text.textContent = m.text; lastText = now; }
  if (changed) { setControlValues(m.settings); lastSettingsKey = key; }
  const t4 = performance.now();
  state.timing = { points: t1 - t0, heatmap: t2 - t1, panels: t3 - t2, rest: t4 - t3 };
  state.frames++;
  window.__frames = state.frames;
  state.seq = m.seq; state.step = m.step; state.epoch = m.epoch; state.running = m.running;
  state.settings = m.settings; state.anchor = m.anchor; state.metrics = m.metrics;
  state.drawnSeq = m.seq; state.drawnSettings = m.settings; state.drawnRunning = m.running;
  state.drawnAt = performance.now();
  state.historyLength = pg.history.step.length;
  state.experiment = m.experiment; state.formula = m.formula; state.link = m.link;
  state.drawnStep = m.step;
  send({ type: "ack", seq: m.seq });                   // flow control: the server keeps <= 2 frames ahead
  fpsTimes.push(now);
  while (fpsTimes.length && now - fpsTimes[0] > 1000) fpsTimes.shift();
  state.fps = fpsTimes.length;
}

// ------------------------------------------------------------------ interaction
function nearestPoint(x, y) {
  const frame = pg.frame;
  if (!frame || !frame.screen) return -1;
  let best = -1, bestD = 12 * 12;
  for (let i = 0; i < frame.n; i++) {
    if (frame.dim === 3 && frame.depth[i] < 0) continue;
    const d = (frame.screen[2 * i] - x) ** 2 + (frame.screen[2 * i + 1] - y) ** 2;
    if (d < bestD) { bestD = d; best = i; }
  }
  return best;
}

// For tests and the console: where point i was drawn ([x, y, in front]) and what a click at (x, y) picks.
window.__pgScreen = (i) => {
  const f = pg.frame;
  return [f.screen[2 * i], f.screen[2 * i + 1], f.dim === 2 || f.depth[i] >= 0];
};
window.__pgPick = (x, y) => nearestPoint(x, y);

function wireCanvas() {
  const c = dom.canvas;
  let drag = null;
  c.addEventListener("pointerdown", (e) => { drag = { x: e.offsetX, y: e.offsetY, moved: false }; c.setPointerCapture(e.pointerId); });
  c.addEventListener("pointermove", (e) => {
    if (!drag) return;
    const dx = e.offsetX - drag.x, dy = e.offsetY - drag.y;
    if (Math.abs(dx) + Math.abs(dy) > 3) drag.moved = true;
    if (drag.moved && pg.frame && pg.frame.dim === 3) {
      pg.view.yaw += dx * 0.01; pg.view.pitch = Math.max(-1.5, Math.min(1.5, pg.view.pitch + dy * 0.01));
      drag.x = e.offsetX; drag.y = e.offsetY;
      if (!dirty) { dirty = true; requestAnimationFrame(draw); }
    }
  });
  c.addEventListener("pointerup", (e) => {
    if (drag && !drag.moved) {
      const i = nearestPoint(e.offsetX, e.offsetY);
      if (i >= 0) send({ type: "anchor", index: i });
    }
    drag = null;
  });
}

function connect() {
  const url = `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws/playground`;
  ws = new WebSocket(url);
  ws.binaryType = "arraybuffer";
  let keepalive = null;
  ws.onopen = () => {
    state.connected = true; dom.conn.textContent = "connected"; dom.conn.className = "ok";
    // the server ends a session that sends nothing for minutes; a tab in the background draws (and acks) nothing
    keepalive = setInterval(() => send({ type: "ping", id: "keepalive" }), KEEPALIVE_MS);
    if (startQuery && !connect.loaded) {                 // a link: the server parses it (share.py) and says what it ignored
      connect.loaded = true;
      if (startQuery.length > 2001) showNotice([`ignored the link's settings: at most 2000 characters, got ${startQuery.length - 1}`]);
      else send({ type: "load", query: startQuery });
    }
  };
  ws.onmessage = onMessage;
  ws.onclose = () => {
    clearInterval(keepalive);
    state.connected = false;
    dom.conn.textContent = "disconnected: retrying";
    dom.conn.className = "bad";
    setTimeout(connect, 1500);
  };
}

// The guided experiments, link and formula panels, added to the page's existing columns.
function addPanels() {
  const aside = dom.controls.parentElement;
  dom.copyLink = el("button", { id: "pg-copy-link", type: "button", text: "Copy link",
    title: "a link to these settings, seed and anchor, paused at the current step",
    onclick: () => {
      const query = [state.link, `step=${state.step}`].filter(Boolean).join("&");
      const url = `${location.origin}${linkURL(query)}`;
      dom.linkOut.value = url;
      dom.linkOut.hidden = false;
      dom.linkOut.select();
      if (navigator.clipboard) navigator.clipboard.writeText(url).catch(() => {});
    } });
  dom.linkOut = el("input", { id: "pg-link", type: "text", readonly: true, hidden: true, class: "linkout" });
  dom.notice = el("div", { id: "pg-notice", class: "notice", hidden: true });
  aside.querySelector(".buttons").append(dom.copyLink);
  dom.experiments = el("div", { id: "pg-experiments", class: "experiments" });
  aside.insertBefore(dom.linkOut, dom.controls);
  aside.insertBefore(dom.notice, dom.controls);
  aside.insertBefore(el("h2", { text: "Guided experiments" }), dom.controls);
  aside.insertBefore(dom.experiments, dom.controls);
  aside.insertBefore(el("h2", { text: "Settings" }), dom.controls);
  const side = dom.bars.parentElement;
  const stage = dom.canvas.parentElement;
  dom.input = el("canvas", { id: "pg-input", hidden: true, "aria-label": "encoder mode: the input plane" });
  dom.stageCanvases = el("div", { class: "stagecanvases" });
  stage.insertBefore(dom.stageCanvases, dom.canvas);
  dom.stageCanvases.append(dom.input, dom.canvas);
  ring = new FrameRing(dom.canvas);
  stage.insertBefore(el("div", { class: "capturebar" }, pngButton(stage, "playground"), recordButton(ring, "playground")),
    dom.stageCanvases);
  side.prepend(el("div", { class: "capturebar" }, pngButton(side, "playground-panels")));
  dom.formula = el("div", { id: "pg-formula", class: "formula" });
  dom.weights = el("canvas", { id: "pg-weights", class: "chart weights" });
  const after = dom.bars.nextSibling;
  side.insertBefore(el("h2", { text: "The formula, live (the anchor's InfoNCE)" }), after);
  side.insertBefore(dom.formula, after);
  side.insertBefore(dom.weights, after);
}

export function startPlayground() {
  const $ = (id) => document.getElementById(id);
  dom = {
    controls: $("pg-controls"), canvas: $("pg-canvas"), heatmap: $("pg-heatmap"), bars: $("pg-bars"),
    entropy: $("pg-entropy"), text: $("pg-text"), status: $("pg-status"), legend: $("pg-legend"),
    lossChart: $("pg-loss"), alignChart: $("pg-alignment"), unifChart: $("pg-uniformity"),
    pause: $("pg-pause"), step: $("pg-step"), reset: $("pg-reset"), error: $("pg-error"), conn: $("conn"),
  };
  addPanels();
  pg.dom = dom;
  dom.pause.addEventListener("click", () => {
    send({ type: state.running ? "pause" : "resume" });
    state.running = !state.running;
    dom.pause.textContent = state.running ? "Pause" : "Resume";
  });
  dom.step.addEventListener("click", () => send({ type: "step", count: 1 }));
  dom.reset.addEventListener("click", () => send({ type: "reset" }));
  wireCanvas();
  connect();
}
