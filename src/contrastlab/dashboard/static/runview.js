// The run view: the probe's embeddings of each snapshot as a 2-D map (scrubber and play), the
// training curves and the config of one run, or of two side by side. Polls the server, which
// reads the run directory, so a run that is still training updates live.
// Image-text runs (the probe has `modality` and `pair`) show both kinds of point in the one map:
// images as thumbnails, names as labelled dots, a line from each image to its name, and the mean
// cosine between partners of the snapshot shown.
// Sequence runs (the probe has `series_shape`) show a small plot of each point's series where an
// image run shows its thumbnail: on hover and beside the nearest neighbours (seriesplot.js).
// Indexes given with `--index` appear below the panes, in the "Index" panel (indexview.js).
import { classColour, el, fetchJSON, fmt, lineChart, packedColour } from "./common.js";
import { showRunIndex, startIndexView } from "./indexview.js";
import { Scatter } from "./scatter.js";
import { drawSeries, loadSeries } from "./seriesplot.js";
import { FrameRing, pngButton, recordButton } from "./capture.js";

const POLL_MS = 1500;
const PLAY_MS = 650;
const COMPUTE_POLL_MS = 400;        // while the server computes a t-SNE / UMAP map: how often to ask for it
const ATLAS_MAX = 20000;            // more image points than this: no thumbnails on the map (hover still shows them)
const rv = { panes: [], runs: [], projections: {}, labels: {}, packages: {}, link: true };
window.__runview = rv;

class Pane {
  constructor(host, run) {
    this.run = run;
    this.id = run.id;
    this.base = `/api/runs/${run.id}`;
    this.snapshots = [];
    this.index = -1;
    this.step = null;
    this.maps = new Map();
    this.method = "pca";
    this.follow = true;
    this.playing = null;
    this.metrics = { offset: 0, train: [], monitor: [] };
    this.labelsFor = null;
    this.firstDrawMs = null;
    this.loading = null;
    this.pairs = null;                 // image-text runs: {modality, pair, thumbRow, texts}
    this.pairCos = null;               // the mean cosine between partners in the snapshot shown
    this.series = null;                // sequence runs: {data, count, channels, length} of the probe's series
    this.seriesPlot = null;            // the series plot the tooltip drew last (read by the tests)
    this.closed = false;
    this.computing = null;             // the server's progress while it computes the map asked for, else null
    this.progressUpdates = 0;          // progress messages shown (read by the tests)
    this.drawnMethod = null;           // the method of the map drawn
    this._build(host);
    this.poll();
  }

  _build(host) {
    const $ = (cls) => this.root.querySelector(cls);
    this.root = el("section", { class: "pane", "data-run": this.id },
      el("header", {}, el("h3", { class: "name" }), el("span", { class: "state" }), el("span", { class: "progress" })),
      el("ul", { class: "notes" }),
      el("div", { class: "mapwrap" },
        el("canvas", { class: "map" }),
        el("div", { class: "empty", text: "no snapshot yet" }),
        el("div", { class: "computing", hidden: true, role: "status" },
          el("span", { class: "what" }), el("progress", { max: 1, value: 0 })),
        el("div", { class: "tooltip", hidden: true }, el("img", { alt: "" }),
          el("canvas", { class: "seriesplot", hidden: true }), el("span"))),
      el("div", { class: "pairbar", hidden: true },
        el("span", { class: "paircos" }),
        el("span", { class: "swatch" }, el("i", { class: "key-image" }), "image"),
        el("span", { class: "swatch" }, el("i", { class: "key-name" }), "name"),
        el("span", { class: "swatch" }, el("i", { class: "key-line" }),
          "joins an image to its name: lines shorten as the pairs converge"),
        el("label", {}, el("input", { class: "showlines", type: "checkbox", checked: true }), " lines")),
      el("p", { class: "labelnote", text: "Colours are the probe's labels, shown for reading the map: self-supervised " +
        "training never used them." }),
      el("div", { class: "legend" }),
      el("div", { class: "scrub" },
        el("button", { class: "play", text: "Play" }),
        el("input", { class: "scrubber", type: "range", min: 0, max: 0, value: 0, step: 1 }),
        el("span", { class: "steplabel", text: "–" }),
        el("label", {}, el("input", { class: "follow", type: "checkbox", checked: true }), " follow"),
        el("select", { class: "method" }),
        el("button", { class: "fit", text: "Fit" }),
        el("span", { class: "capturebar" })),
      el("div", { class: "neighbours" }),
      el("div", { class: "charts" },
        el("canvas", { class: "chart loss" }), el("canvas", { class: "chart lr" }),
        el("canvas", { class: "chart throughput" }), el("canvas", { class: "chart knn" }),
        el("canvas", { class: "chart geometry" })),
      el("details", { class: "config", open: true }, el("summary", { text: "config" }), el("pre")),
      el("details", { class: "eval" }, el("summary", { text: "evaluation" }), el("pre")));
    host.append(this.root);
    this.dom = {
      name: $(".name"), state: $(".state"), progress: $(".progress"), notes: $(".notes"), canvas: $(".map"),
      empty: $(".empty"), computing: $(".computing"), tooltip: $(".tooltip"), legend: $(".legend"), play: $(".play"), scrubber: $(".scrubber"),
      steplabel: $(".steplabel"), follow: $(".follow"), method: $(".method"), fit: $(".fit"), capture: $(".capturebar"),
      pairbar: $(".pairbar"), paircos: $(".paircos"), showlines: $(".showlines"),
      neighbours: $(".neighbours"), config: $(".config pre"), eval: $(".eval pre"), evalBox: $(".eval"),
      charts: { loss: $(".chart.loss"), lr: $(".chart.lr"), throughput: $(".chart.throughput"), knn: $(".chart.knn"),
                geometry: $(".chart.geometry") },
    };
    this.scatter = new Scatter(this.dom.canvas, {
      onHover: (i, x, y) => this.hover(i, x, y), onClick: (i) => this.select(i) });
    this.ring = new FrameRing(this.dom.canvas);           // the map's last frames, for "Record" (capture.js)
    this.scatter.onDrawn = () => this.ring.keep();
    const saveAs = `run-${this.run.name || this.id}`;                 // the saved files' names
    this.dom.capture.append(pngButton(this.root, saveAs), recordButton(this.ring, saveAs));
    const d = this.dom;
    for (const [m, ok] of Object.entries(rv.projections)) {
      const label = rv.labels[m] || m.toUpperCase();
      const pkg = { openTSNE: "openTSNE", umap: "umap-learn" }[rv.packages[m]] || rv.packages[m];
      d.method.append(el("option", { value: m, disabled: !ok,
        text: ok ? label : `${label} (unavailable: pip install ${pkg})` }));
    }
    d.method.addEventListener("change", () => {
      this.method = d.method.value;
      this.show(this.index, false).catch(() => { this.loading = null; });
    });
    d.scrubber.addEventListener("input", () => {
      this.follow = false; d.follow.checked = false;
      this.show(Number(d.scrubber.value), true, true);
    });
    d.follow.addEventListener("change", () => {
      this.follow = d.follow.checked;
      if (this.follow) this.show(this.snapshots.length - 1);
    });
    d.showlines.addEventListener("change", () => {
      this.scatter.showLines = d.showlines.checked;
      this.scatter.request();
    });
    d.play.addEventListener("click", () => this.togglePlay());
    d.fit.addEventListener("click", () => this.scatter.fit());
  }

  close() {
    this.closed = true;
    clearTimeout(this.timer);
    if (this.playing) clearInterval(this.playing);
    this.root.remove();
  }

  async poll() {
    if (this.closed) return;
    try {
      const s = await fetchJSON(this.base);
      await this.update(s);
      await this.loadMetrics();
    } catch (e) {
      this.dom.state.textContent = "unreachable";
    }
    this.timer = setTimeout(() => this.poll(), POLL_MS);
  }

  async update(s) {
    const d = this.dom;
    this.summary = s;
    d.name.textContent = s.name;
    d.state.textContent = s.state;
    d.state.className = `state ${s.state}`;
    const st = s.status || {};
    d.progress.textContent = st.step !== undefined ? `step ${st.step}${st.total_steps ? ` / ${st.total_steps}` : ""}` : "";
    d.notes.replaceChildren(...(s.notes || []).map((n) => el("li", { text: n })));
    d.config.textContent = s.config ? JSON.stringify(s.config, null, 2) : "(no readable config.json yet)";
    d.evalBox.hidden = !s.eval;
    if (s.eval) d.eval.textContent = JSON.stringify(s.eval, null, 2);
    if (s.probe && this.labelsFor !== JSON.stringify(s.probe)) await this.loadLabels(s.probe);
    this.snapshots = s.snapshots;
    d.scrubber.max = String(Math.max(0, this.snapshots.length - 1));
    d.empty.hidden = this.snapshots.length > 0;
    if (!this.snapshots.length) d.empty.textContent = s.state === "missing" ? "no run directory (yet)" : "no snapshot yet";
    const last = this.snapshots.length - 1;              // retried each poll until it can be read
    // not awaited: a t-SNE map may take a while, and the state, notes and curves keep updating meanwhile
    if (last >= 0 && this.loading === null && (this.index < 0 || (this.follow && this.index !== last))) {
      this.show(last).catch(() => { this.loading = null; });
    }
  }

  async loadLabels(probe) {
    const r = await fetch(`${this.base}/labels`, { cache: "no-store" });
    if (!r.ok) return;
    const labels = new Int32Array(await r.arrayBuffer());
    const palette = new Map();
    const cols = new Uint32Array(labels.length);
    for (let i = 0; i < labels.length; i++) {
      const l = labels[i];
      let c = palette.get(l);
      if (c === undefined) { c = packedColour(classColour(l)); palette.set(l, c); }
      cols[i] = c;
    }
    this.labels = labels;
    this.classes = probe.classes;
    this.labelsFor = JSON.stringify(probe);
    this.scatter.setColours(cols);
    this.setupPairs(probe);
    await this.setupSeries(probe);
    const used = [...new Set(labels)].sort((a, b) => a - b).slice(0, 40);
    this.dom.legend.replaceChildren(...used.map((l) => el("span", { class: "swatch" },
      el("i", { style: `background:${classColour(l)}` }), l < 0 ? "unlabelled" : (probe.classes[l] ?? `class ${l}`))));
  }

  // Image-text runs: which point is which, the thumbnail row of each image point, the thumbnails.
  setupPairs(probe) {
    const d = this.dom;
    if (!probe.modality || probe.modality.length !== probe.count) {
      this.pairs = null;
      this.scatter.setPairs(null);
      d.pairbar.hidden = true;
      return;
    }
    const modality = Uint8Array.from(probe.modality);
    const pair = probe.pair ? Int32Array.from(probe.pair) : null;
    const thumbRow = new Int32Array(modality.length).fill(-1);
    if (probe.thumbnail_shape) {               // one thumbnail per image point, in row order
      for (let i = 0, t = 0; i < modality.length; i++) if (modality[i] === 0) thumbRow[i] = t++;
    }
    this.pairs = { modality, pair, thumbRow, texts: probe.texts };
    this.scatter.setPairs(this.pairs);
    d.pairbar.hidden = false;
    d.showlines.disabled = !pair;
    this.showPairCos();
    if (probe.thumbnail_shape && probe.images <= ATLAS_MAX) this.loadAtlas(this.pairs);
  }

  // Sequence runs: the probe's series, fetched once per probe file.
  async setupSeries(probe) {
    this.series = probe.series_shape ? await loadSeries(this.base) : null;
  }

  async loadAtlas(pairs) {
    const r = await fetch(`${this.base}/thumbnails`, { cache: "no-store" });
    if (!r.ok || this.pairs !== pairs) return;
    const bytes = new Uint8Array(await r.arrayBuffer());
    const count = Number(r.headers.get("X-Count")), h = Number(r.headers.get("X-Height"));
    const w = Number(r.headers.get("X-Width")), c = Number(r.headers.get("X-Channels"));
    if (!count || bytes.length !== count * h * w * c || this.pairs !== pairs) return;
    const cols = Math.ceil(Math.sqrt(count)), rows = Math.ceil(count / cols);
    const canvas = document.createElement("canvas");
    canvas.width = cols * w; canvas.height = rows * h;
    const ctx = canvas.getContext("2d");
    const image = ctx.createImageData(cols * w, rows * h);
    const px = image.data, stride = cols * w * 4;
    for (let t = 0; t < count; t++) {
      const x0 = (t % cols) * w, y0 = Math.floor(t / cols) * h;
      for (let y = 0; y < h; y++) {
        let src = ((t * h + y) * w) * c, dst = (y0 + y) * stride + x0 * 4;
        for (let x = 0; x < w; x++, src += c, dst += 4) {
          px[dst] = bytes[src]; px[dst + 1] = bytes[src + (c > 1 ? 1 : 0)]; px[dst + 2] = bytes[src + (c > 1 ? 2 : 0)];
          px[dst + 3] = c === 4 ? bytes[src + 3] : 255;
        }
      }
    }
    ctx.putImageData(image, 0, 0);
    this.scatter.setAtlas({ canvas, cols, w, h, count });
  }

  showPairCos() {
    const box = this.dom.paircos;
    if (!this.pairs) return;
    if (!this.pairs.pair) { box.textContent = "no pairs in this probe"; return; }
    box.replaceChildren("mean cosine image ↔ name",
      this.step !== null ? ` (step ${this.step})` : "", ": ",
      el("b", { text: this.pairCos === null ? "–" : fmt(this.pairCos, 3) }));
    box.title = "the mean cosine similarity between the embedding of each probe image and that of its name, " +
      "in the snapshot shown: 1 when every image sits on its name";
  }

  // The map of snapshot k; while the server computes it (202, t-SNE / UMAP) the pane shows the progress and asks
  // again. undefined: the request was superseded (another snapshot or method was asked for meanwhile).
  async fetchMap(k, token) {
    const method = this.method;
    const key = `${method}:${k}`;
    if (this.maps.has(key)) return this.maps.get(key);
    for (;;) {
      const r = await fetch(`${this.base}/snapshots/${k}/map?method=${method}`, { cache: "no-store" });
      if (this.closed || this.loading !== token) return undefined;
      if (r.status === 202) {
        this.showComputing(await r.json());
        await new Promise((wake) => setTimeout(wake, COMPUTE_POLL_MS));
        if (this.closed || this.loading !== token) return undefined;
        continue;
      }
      this.showComputing(null);
      if (r.status === 422) {                                   // the projection failed: say why
        const body = await r.json().catch(() => ({}));
        return { error: body.error || "the map could not be computed" };
      }
      if (!r.ok || r.status === 204) return null;              // 204: listed but not readable yet
      const cos = r.headers.get("X-Pair-Cosine");
      const item = { xy: new Float32Array(await r.arrayBuffer()), step: Number(r.headers.get("X-Step")),
                     pairCos: cos === null ? null : Number(cos), method };
      this.maps.set(key, item);
      return item;
    }
  }

  showComputing(p) {
    const box = this.dom.computing;
    this.computing = p;
    box.hidden = !p;
    if (!p) return;
    this.progressUpdates++;
    const value = p.total ? Math.min(1, (p.done + p.fraction) / p.total) : 0;
    box.querySelector(".what").textContent = `${p.message}… ${Math.round(100 * value)}%`;
    box.querySelector("progress").value = value;
  }

  // Show snapshot k; `propagate` (user actions) moves linked panes to the same step.
  async show(k, animate = true, propagate = false) {
    if (k < 0 || k >= this.snapshots.length) return;
    const token = {};
    this.loading = token;
    const item = await this.fetchMap(k, token);
    if (this.loading !== token) return;
    this.loading = null;
    if (!item || item.error) {
      this.dom.steplabel.textContent = `snapshot ${k + 1}/${this.snapshots.length}: ` +
        (item ? item.error : "not readable yet");
      return;
    }
    this.index = k;
    this.step = item.step;
    this.dom.scrubber.value = String(k);
    this.dom.steplabel.textContent = `snapshot ${k + 1}/${this.snapshots.length} · step ${item.step}`;
    const refit = this.drawnMethod !== null && this.drawnMethod !== item.method;   // t-SNE and UMAP have their own scale
    this.scatter.setData(item.xy, { animate: animate && !refit, refit });
    this.drawnMethod = item.method;
    this.pairCos = item.pairCos;
    this.showPairCos();
    if (this.firstDrawMs === null) {
      requestAnimationFrame(() => requestAnimationFrame(() => { this.firstDrawMs = performance.now(); }));
    }
    if (this.scatter.selected >= 0) this.select(this.scatter.selected);
    if (propagate && rv.link) for (const other of rv.panes) if (other !== this) other.showStep(item.step);
  }

  async showStep(step) {          // the snapshot at or before `step` (linked scrubbers)
    let best = -1;
    for (const s of this.snapshots) if (s.step <= step) best = s.index;
    if (best < 0 || best === this.index) return;
    this.follow = false; this.dom.follow.checked = false;
    await this.show(best);
  }

  togglePlay() {
    if (this.playing) {
      clearInterval(this.playing); this.playing = null; this.dom.play.textContent = "Play";
      return;
    }
    this.follow = false; this.dom.follow.checked = false;
    if (this.index >= this.snapshots.length - 1) this.show(0, false, true);
    this.dom.play.textContent = "Pause";
    this.playing = setInterval(() => {
      if (this.index < this.snapshots.length - 1) this.show(this.index + 1, true, true);
      else if (!this.summary || this.summary.state !== "running") this.togglePlay();
    }, PLAY_MS);
  }

  hover(i, x, y) {
    const tip = this.dom.tooltip;
    if (i < 0 || !this.summary || !this.summary.probe) { tip.hidden = true; return; }
    const l = this.labels ? this.labels[i] : -1;
    const name = l >= 0 ? (this.classes[l] ?? `class ${l}`) : "unlabelled";
    const img = tip.querySelector("img");
    if (this.pairs && i < this.pairs.modality.length) {             // either end of a pair: its name and its picture
      const { modality, pair, thumbRow, texts } = this.pairs;
      const pic = modality[i] === 0 ? i : (pair ? pair[i] : -1);
      img.hidden = !(pic >= 0 && thumbRow[pic] >= 0);
      if (!img.hidden) img.src = `${this.base}/thumbnails/${pic}`;
      const what = modality[i] === 0 ? "image" : "name";
      tip.querySelector("span").textContent = `${what}: ${texts ? texts[i] : `point ${i}`} · ${name}`;
      tip.style.left = `${x + 14}px`; tip.style.top = `${y + 10}px`;
      tip.hidden = false;
      return;
    }
    img.hidden = !this.summary.probe.thumbnail_shape;
    if (!img.hidden) img.src = `${this.base}/thumbnails/${i}`;
    const plot = tip.querySelector("canvas.seriesplot");
    plot.hidden = !(this.series && i < this.series.count);
    if (!plot.hidden) this.seriesPlot = drawSeries(plot, this.series, i);
    const texts = this.summary.probe.texts;
    tip.querySelector("span").textContent = texts ? `${texts[i]} · ${name}` : `point ${i} · ${name}`;
    tip.style.left = `${x + 14}px`; tip.style.top = `${y + 10}px`;
    tip.hidden = false;
  }

  async select(i) {
    this.scatter.selected = i;
    const pair = this.pairs && this.pairs.pair;
    this.scatter.partner = pair && i >= 0 && i < pair.length ? pair[i] : -1;
    this.scatter.highlight = [];
    this.scatter.request();
    const box = this.dom.neighbours;
    if (i < 0 || this.index < 0) { box.replaceChildren(); return; }
    let list;
    try { list = await fetchJSON(`${this.base}/snapshots/${this.index}/neighbours?point=${i}&count=8`); } catch { return; }
    this.scatter.highlight = list.map((n) => n.point);
    this.scatter.request();
    const thumbs = this.summary && this.summary.probe && this.summary.probe.thumbnail_shape;
    const texts = this.summary && this.summary.probe && this.summary.probe.texts;
    const pairs = this.pairs;
    const item = (n, title) => {
      if (pairs) {                             // an image shows its picture, a name its text
        const image = pairs.modality[n.point] === 0;
        return el("figure", { class: image ? "image" : "name" },
          image && pairs.thumbRow[n.point] >= 0
            ? el("img", { src: `${this.base}/thumbnails/${n.point}`, alt: "" }) : null,
          !image && texts ? el("blockquote", { class: "probe-text", text: texts[n.point] }) : null,
          el("figcaption", { text: `${image ? "image" : "name"} · ${title}` }));
      }
      const series = this.series && n.point < this.series.count ? el("canvas", { class: "seriesplot" }) : null;
      if (series) drawSeries(series, this.series, n.point);
      return el("figure", {},
        thumbs ? el("img", { src: `${this.base}/thumbnails/${n.point}`, alt: "" }) : null,
        series,
        texts ? el("blockquote", { class: "probe-text", text: texts[n.point] }) : null,
        el("figcaption", { text: title }));
    };
    const l = this.labels ? this.labels[i] : -1;
    const what = pairs ? `the ${pairs.modality[i] === 0 ? "image" : "name"} “${texts ? texts[i] : i}” ` +
      (pairs.pair ? `(its ${pairs.modality[i] === 0 ? "name" : "image"} is ringed in orange)` : "") : `point ${i}`;
    box.replaceChildren(
      el("span", { class: "title", text: `nearest neighbours of ${what} (snapshot step ${this.step}):` }),
      item({ point: i }, l >= 0 ? (this.classes[l] ?? `class ${l}`) : "selected"),
      ...list.map((n) => item(n, `${n.class ?? (n.label >= 0 ? `class ${n.label}` : "")} ${fmt(n.cos, 2)}`)));
  }

  async loadMetrics() {
    const m = this.metrics;
    for (let round = 0; round < 8; round++) {
      const r = await fetchJSON(`${this.base}/metrics?offset=${m.offset}`);
      if (r.restart) { m.train = []; m.monitor = []; }
      for (const rec of r.records) {
        if (typeof rec.step !== "number") continue;
        if (rec.kind === "monitor") m.monitor.push(rec); else if (rec.kind === "train" || rec.kind === undefined) m.train.push(rec);
      }
      const moved = r.offset !== m.offset;
      m.offset = r.offset;
      if (!moved || !r.records.length) break;
    }
    this.drawCharts();
  }

  drawCharts() {
    const { train, monitor } = this.metrics;
    const c = this.dom.charts;
    const col = (rows, key) => rows.map((r) => (typeof r[key] === "number" ? r[key] : null));
    const xs = train.map((r) => r.step), xm = monitor.map((r) => r.step);
    lineChart(c.loss, [{ x: xs, y: col(train, "loss"), colour: "#4e79a7" }], { title: "loss" });
    lineChart(c.lr, [{ x: xs, y: col(train, "lr"), colour: "#f28e2b" }], { title: "learning rate" });
    lineChart(c.throughput, [{ x: xs, y: col(train, "throughput"), colour: "#76b7b2" }], { title: "throughput (samples/s)" });
    // the monitor's quality signal: kNN for image runs, retrieval of the probe for text and image-text runs
    const has = (key) => monitor.some((r) => typeof r[key] === "number");
    const colours = ["#59a14f", "#4e79a7", "#edc948"];
    const retrieval = ["recall@1", "recall@10", "mrr@10"].filter(has);
    if (has("knn_top1") || !retrieval.length) {
      lineChart(c.knn, [{ x: xm, y: col(monitor, "knn_top1"), colour: colours[0] }], { title: "online kNN top-1" });
    } else {
      lineChart(c.knn, retrieval.map((k, i) => ({ x: xm, y: col(monitor, k), colour: colours[i], label: k })),
                { title: "online retrieval on the held-out probe" });
    }
    if (has("alignment") || !has("temperature")) {
      lineChart(c.geometry, [{ x: xm, y: col(monitor, "alignment"), colour: "#b07aa1", label: "alignment" },
                             { x: xm, y: col(monitor, "uniformity"), colour: "#e15759", label: "uniformity" }],
                { title: "geometry" });
    } else {
      lineChart(c.geometry, [{ x: xm, y: col(monitor, "temperature"), colour: "#b07aa1" }],
                { title: "learnable temperature" });
    }
  }
}

function layout() {
  const host = document.getElementById("rv-panes");
  const a = document.getElementById("rv-run-a"), b = document.getElementById("rv-run-b");
  const want = [a.value, b.value].filter((v) => v !== "" && v !== "none").map(Number);
  const unique = [...new Set(want)];
  for (const p of rv.panes) p.close();
  rv.panes = unique.map((id) => new Pane(host, rv.runs[id]));
  host.classList.toggle("two", rv.panes.length === 2);
  if (unique.length) showRunIndex(unique[0]);
}

export async function startRunView() {
  const info = await fetchJSON("/api/info");
  rv.projections = info.projections;
  rv.labels = info.projection_labels || {};
  rv.packages = info.projection_packages || {};
  rv.runs = await fetchJSON("/api/runs");
  const a = document.getElementById("rv-run-a"), b = document.getElementById("rv-run-b");
  const none = document.getElementById("rv-none");
  none.hidden = rv.runs.length > 0;
  const opt = (r) => el("option", { value: r.id, text: `${r.id}: ${r.name} (${r.state})` });
  a.replaceChildren(...rv.runs.map(opt));
  b.replaceChildren(el("option", { value: "none", text: "none" }), ...rv.runs.map(opt));
  if (rv.runs.length > 1) b.value = "1";
  a.addEventListener("change", layout);
  b.addEventListener("change", layout);
  const link = document.getElementById("rv-link");
  link.addEventListener("change", () => { rv.link = link.checked; });
  if (rv.runs.length) layout();
  if (info.indexes) await startIndexView(document.getElementById("runs"), rv.runs, rv.runs.length ? Number(a.value) : null);
  rv.ready = true;
  return info;
}
