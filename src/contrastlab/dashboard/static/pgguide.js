// The playground's guided experiments and the live formula panel. The experiments (settings, question, what to
// watch) come from the server's registry (experiments.py) in the init message; their outcome is judged by the
// server from the engine's numbers and arrives in each frame. The formula's terms come from formula.py.
import { el, fitCanvas, fmt } from "./common.js";

const sci = (x) => (x === null || x === undefined ? "–" : Math.abs(x) >= 1e4 || (x !== 0 && Math.abs(x) < 1e-3)
  ? x.toExponential(3) : x.toPrecision(4));
const share = (p) => `${(100 * p).toFixed(p >= 0.1 ? 0 : 1)}%`;

// ------------------------------------------------------------------ experiments
export function buildExperiments(box, experiments, start) {
  box.replaceChildren(el("div", { class: "sub", text: "One click sets the controls and runs; the outcome is judged from the live numbers." }));
  for (const e of experiments) {
    box.append(el("button", { type: "button", class: "experiment", "data-name": e.name, title: e.question,
                              text: e.title, onclick: () => start(e.name) }));
  }
  box.append(el("div", { id: "pg-exp-status", class: "expbox", hidden: true },
    el("div", { class: "exp-title" }), el("div", { class: "exp-question" }), el("div", { class: "exp-watch" }),
    el("div", { class: "exp-note sub" }), el("div", { class: "exp-progress sub" }), el("div", { class: "exp-verdict" })));
}

export function drawExperiment(box, run, registry) {
  const panel = box.querySelector("#pg-exp-status");
  if (!panel) return;
  if (!run) { panel.hidden = true; return; }
  const e = registry.find((x) => x.name === run.name) || {};
  panel.hidden = false;
  panel.dataset.name = run.name;
  panel.dataset.status = run.status;
  panel.dataset.passed = String(run.passed);
  const [title, question, watch, note, progress, verdict] = panel.children;
  title.textContent = run.title;
  question.textContent = `Question: ${e.question || ""}`;
  watch.textContent = `Watch: ${e.watch || ""}`;
  note.textContent = e.note || "";
  note.hidden = !e.note;
  progress.textContent = run.status === "running"
    ? `phase ${run.phase + 1} of ${run.phases}: ${run.phase_label} · step ${run.phase_steps} of ${run.steps}`
    : run.status === "done" ? `done: ${run.measures.length - 1} phase(s) measured; paused` : run.verdict;
  verdict.textContent = run.status === "done" ? `${run.passed ? "Confirmed" : "Not confirmed"}: ${run.verdict}` : "";
  verdict.className = `exp-verdict ${run.status === "done" ? (run.passed ? "yes" : "no") : ""}`;
  for (const b of box.querySelectorAll("button.experiment")) b.classList.toggle("active", b.dataset.name === run.name);
}

// ------------------------------------------------------------------ the formula, live
export function drawFormula(box, f) {
  if (!f) { box.replaceChildren(); return; }
  const t = f.temperature;
  const rows = [];
  const line = (cls, ...parts) => rows.push(el("div", { class: `fl ${cls}` }, ...parts));
  line("eq", `L = −log( e^(s₊/τ) / ( e^(s₊/τ) + Σⱼ ${f.beta > 0 ? "wⱼ " : ""}e^(sⱼ/τ) ) ),  τ = ${fmt(t, 4)}` +
       (f.beta > 0 ? `, wⱼ = K e^(β sⱼ/τ) / Σₖ e^(β sₖ/τ), β = ${fmt(f.beta, 3)}` : ""));
  line("pos", `positive #${f.positive.point} (${f.positive.label}): s₊ = ${f.positive.cos.toFixed(4)} → ` +
       `e^(${f.positive.cos.toFixed(4)}/${fmt(t, 4)}) = ${sci(f.positive.exp)}`);
  for (const n of f.negatives) {
    line("neg", `negative #${n.point} (${n.label}): s = ${n.cos.toFixed(4)} → ${f.beta > 0 ? `w = ${sci(n.weight)} · ` : ""}` +
         `e^(s/τ) ${f.beta > 0 ? "term" : ""} = ${sci(n.exp)} · share of the push ${share(n.share)}` +
         (n.label === f.anchor_label ? " · same cluster: a false negative" : ""));
  }
  if (f.rest_count > 0) {
    const restShare = 1 - f.negatives.reduce((a, n) => a + n.share, 0);
    line("rest", `+ ${f.rest_count} other negatives: ${sci(f.rest_exp)} · share ${share(Math.max(0, restShare))}`);
  }
  line("den", `denominator = ${sci(f.positive.exp)} + ${sci(f.denominator - f.positive.exp)} = ${sci(f.denominator)}`);
  line("loss", `L = log(${sci(f.denominator)}) − ${f.positive.cos.toFixed(4)}/${fmt(t, 4)} = `,
       el("b", { class: "fl-loss", text: f.loss.toFixed(5) }));
  line("engine", `engine (the library's info_nce on this batch, this anchor's row): `,
       el("b", { class: "fl-engine", text: f.engine_loss.toFixed(5) }),
       f.trained ? " · the loss being trained" : ` · shown for comparison: the playground trains ${f.loss_name}`);
  box.replaceChildren(...rows);
  box.dataset.loss = String(f.loss);
  box.dataset.engineLoss = String(f.engine_loss);
  box.dataset.anchor = String(f.anchor);
}

// Weight a negative at cosine c gets from this anchor's softmax: e^(c/τ) / Σₖ e^(sₖ/τ) over its negatives.
function logShareCurve(cosines, tau) {
  let m = -Infinity;
  for (const s of cosines) m = Math.max(m, s / tau);
  let z = 0;
  for (const s of cosines) z += Math.exp(s / tau - m);
  const lse = m + Math.log(z);
  return (c) => (c / tau - lse) / Math.LN10;                                    // log10 share
}

export function drawWeightPlot(canvas, f) {
  const { ctx, w, h } = fitCanvas(canvas);
  ctx.clearRect(0, 0, w, h);
  if (!f || !f.plot.cos.length) return;
  const pad = { l: 34, r: 8, t: 16, b: 20 };
  const temps = [f.temperature, ...f.plot.references.filter((x) => Math.abs(x - f.temperature) > 1e-9).slice(0, 2)];
  const colours = ["#d23232", "#4e79a7", "#59a14f"];
  const curves = temps.map((tau) => logShareCurve(f.plot.cos, tau));
  const yMax = 0, yMin = Math.max(-8, Math.min(...curves.map((g) => g(-1))) - 0.2);
  const px = (c) => pad.l + ((c + 1) / 2) * (w - pad.l - pad.r);
  const py = (y) => pad.t + ((yMax - Math.max(yMin, Math.min(yMax, y))) / (yMax - yMin)) * (h - pad.t - pad.b);
  ctx.strokeStyle = "#ddd";
  ctx.strokeRect(pad.l, pad.t, w - pad.l - pad.r, h - pad.t - pad.b);
  ctx.font = "11px system-ui, sans-serif";
  ctx.fillStyle = "#444";
  ctx.fillText("weight of a negative (log₁₀ share) against its cosine", pad.l, 11);
  ctx.fillStyle = "#666";
  ctx.fillText("1", 20, pad.t + 8);
  ctx.fillText(`1e${Math.round(yMin)}`, 2, h - pad.b);
  ctx.fillText("cos −1", pad.l, h - 5);
  ctx.fillText("+1", w - pad.r - 14, h - 5);
  curves.forEach((g, k) => {
    ctx.strokeStyle = colours[k];
    ctx.lineWidth = k === 0 ? 2 : 1.2;
    ctx.beginPath();
    for (let i = 0; i <= 100; i++) {
      const c = -1 + (2 * i) / 100;
      if (i === 0) ctx.moveTo(px(c), py(g(c))); else ctx.lineTo(px(c), py(g(c)));
    }
    ctx.stroke();
    ctx.fillStyle = colours[k];
    ctx.fillText(`τ ${fmt(temps[k], 3)}${k === 0 ? " (now)" : ""}`, pad.l + 6 + 70 * k, pad.t + 12);
  });
  ctx.fillStyle = "rgba(210,50,50,0.7)";                                       // this anchor's negatives, now
  for (const c of f.plot.cos) ctx.fillRect(px(c) - 1.5, py(curves[0](c)) - 1.5, 3, 3);
}
