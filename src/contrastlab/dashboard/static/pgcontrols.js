// The playground's control panel, built from the controls table the server sends (controls.py):
// sliders (log-scale where the table says so), selects, checkboxes. Data controls apply on release.
import { el, fmt } from "./common.js";

const inputs = {};                 // control name -> {input, out, control}
let panel = null;                  // {box, pause, send, state}

function sliderToValue(c, pos) {
  if (c.log) return Number((c.low * Math.pow(c.high / c.low, pos / 1000)).toPrecision(3));
  if (c.kind === "int") return Math.round(pos);
  return Number((c.low + (c.high - c.low) * pos / 1000).toFixed(4));
}
function valueToSlider(c, v) {
  if (c.log) return (1000 * Math.log(v / c.low)) / Math.log(c.high / c.low);
  if (c.kind === "int") return v;
  return (1000 * (v - c.low)) / (c.high - c.low);
}

export function haveControls() {
  return panel !== null;
}

export function buildControls(table, settings, options) {
  panel = options;
  const box = panel.box;
  box.replaceChildren();
  for (const c of table) {
    const id = `ctl-${c.name}`;
    let input;
    const out = el("output", { for: id, class: "value", hidden: c.kind === "choice" || c.kind === "bool" || c.name === "seed" });
    if (c.kind === "choice") {
      input = el("select", { id, name: c.name });
      for (const o of c.options) input.append(el("option", { value: String(o), text: String(o) }));
    } else if (c.kind === "bool") {
      input = el("input", { id, name: c.name, type: "checkbox" });
    } else if (c.name === "seed") {
      input = el("input", { id, name: c.name, type: "number", min: c.low, max: c.high, step: 1 });
    } else {
      const int = c.kind === "int" && !c.log;
      input = el("input", { id, name: c.name, type: "range", min: int ? c.low : 0, max: int ? c.high : 1000, step: 1 });
    }
    input.dataset.kind = c.kind;
    const event = c.data || c.kind === "choice" || c.kind === "bool" || c.name === "seed" ? "change" : "input";
    input.addEventListener(event, () => onControl(c, input));
    if (event === "change" && input.type === "range") input.addEventListener("input", () => showValue(c, input, out));
    box.append(el("div", { class: "control", title: c.help },
      el("label", { for: id, text: c.label }), input, out));
    inputs[c.name] = { input, out, control: c };
  }
  setControlValues(settings, true);
}

function readValue(c, input) {
  if (c.kind === "bool") return input.checked;
  if (c.kind === "choice") return typeof c.options[0] === "number" ? Number(input.value) : input.value;
  if (c.name === "seed") return Math.max(c.low, Math.min(c.high, Math.round(Number(input.value) || 0)));
  return sliderToValue(c, Number(input.value));
}

function showValue(c, input, out) {
  const v = readValue(c, input);
  out.textContent = typeof v === "number" ? fmt(v, 4) : String(v);
}

function onControl(c, input) {
  const values = { [c.name]: readValue(c, input) };
  const current = panel.state.settings;
  if (c.name === "points" && current && current.batch_size * 2 > values.points) {
    values.batch_size = Math.max(2, Math.floor(values.points / 2));
  }
  showValue(c, input, inputs[c.name].out);
  panel.send({ type: "set", values });
}

export function setControlValues(settings, force = false) {
  for (const [name, { input, out, control: c }] of Object.entries(inputs)) {
    if (!(name in settings)) continue;
    if (!force && document.activeElement === input) continue;       // do not fight the user's hand
    const v = settings[name];
    if (c.kind === "bool") input.checked = v;
    else if (c.kind === "choice" || c.name === "seed") input.value = String(v);
    else input.value = String(valueToSlider(c, v));
    out.textContent = typeof v === "number" ? fmt(v, 4) : String(v);
  }
  const bs = inputs.batch_size;
  if (bs && settings.points) bs.input.max = String(Math.min(bs.control.high, Math.floor(settings.points / 2)));
  if (inputs.mining) inputs.mining.input.disabled = settings.loss !== "triplet" || settings.no_negatives;
  if (inputs.hard_negative_beta) inputs.hard_negative_beta.input.disabled = settings.loss !== "info_nce" || settings.no_negatives;
  if (inputs.tau_plus) inputs.tau_plus.input.disabled = settings.loss !== "debiased_info_nce" || settings.no_negatives;
  if (inputs.margin) inputs.margin.input.disabled = !["triplet", "margin_contrastive"].includes(settings.loss);
  panel.pause.textContent = panel.state.running ? "Pause" : "Resume";
}
