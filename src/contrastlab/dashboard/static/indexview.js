// The run view's "Index" panel: the images of a search index (`contrastlab dashboard RUN --index IDX`) as a
// paged grid of thumbnails; clicking one shows it large with its nearest neighbours in the index (by cosine of
// the stored embeddings, the image itself left out), each with its score and label, those that share the
// image's label marked: how many of them do is how well the embedding groups the classes around this image.
// The panel shows the index built from the run selected when there is one, else the first index served.
import { el, fetchJSON, fmt } from "./common.js";

const PAGE = 60;                   // thumbnails a page of the grid
const K = 10;                      // neighbours shown
const iv = { indexes: [], choice: null, page: 0, rows: null, shown: null, pages: 0, pagesShown: 0, picked: false };
window.__indexview = iv;           // read by the tests

function choices() {               // every image collection of every index: [{index, collection}]
  return iv.indexes.flatMap((x) => x.collections.map((c) => ({ index: x, collection: c })));
}

function originText(x) {
  if (x.run === null) return `built from ${x.embedder || "a run"} (not one of the runs served)`;
  const r = iv.runs[x.run];
  return `built from run ${x.run}${r ? `: ${r.name}` : ""}${x.run_step !== null ? ` at step ${x.run_step}` : ""}` +
    (x.run === iv.runId ? " (the run shown)" : "");
}

function describe() {
  const c = iv.choice;
  if (!c) return;
  iv.dom.summary.textContent = ` ${c.index.folder}: ${c.collection.count} ${c.collection.name}, ${originText(c.index)}`;
  iv.dom.origin.textContent = originText(c.index);
}

function build(host) {
  const root = el("details", { class: "panel indexpanel", id: "rv-index" },
    el("summary", {}, el("b", { text: "Index" }), el("span", { class: "ixsummary" })),
    el("div", { class: "ixbar" },
      el("label", {}, "index ", el("select", { class: "ixchoice" })),
      el("span", { class: "ixorigin sub" })),
    el("div", { class: "ixpager" },
      el("button", { class: "ixprev", type: "button", text: "‹ previous" }),
      el("span", { class: "ixpage" }),
      el("button", { class: "ixnext", type: "button", text: "next ›" }),
      el("span", { class: "sub", text: "click an image for its nearest neighbours" }),
      el("span", { class: "ixerror", role: "status" })),
    el("div", { class: "ixgrid" }),
    el("div", { class: "ixdetail", hidden: true },
      el("figure", { class: "ixquery" }, el("img", { alt: "" }), el("figcaption")),
      el("div", { class: "ixright" }, el("p", { class: "ixtitle" }), el("div", { class: "ixneighbours" }))));
  host.append(root);
  const $ = (c) => root.querySelector(c);
  iv.dom = { root, summary: $(".ixsummary"), choice: $(".ixchoice"), origin: $(".ixorigin"), prev: $(".ixprev"),
             next: $(".ixnext"), page: $(".ixpage"), grid: $(".ixgrid"), detail: $(".ixdetail"),
             query: $(".ixquery"), title: $(".ixtitle"), neighbours: $(".ixneighbours"), error: $(".ixerror") };
  const d = iv.dom;
  d.choice.replaceChildren(...choices().map((c, i) => el("option", { value: i,
    text: `${c.index.id}: ${c.index.folder} · ${c.collection.name} (${c.collection.count})` })));
  d.choice.addEventListener("change", () => { iv.picked = true; choose(Number(d.choice.value)); });
  d.prev.addEventListener("click", () => showPage(iv.page - 1));
  d.next.addEventListener("click", () => showPage(iv.page + 1));
  root.addEventListener("toggle", () => { if (root.open && iv.rows === null) showPage(iv.page); });
}

function choose(i) {
  const c = choices()[i];
  if (!c || iv.choice === c) return;
  iv.choice = c;
  iv.dom.choice.value = String(i);
  iv.pages = Math.ceil(c.collection.count / PAGE);
  iv.page = 0;
  iv.rows = null;
  iv.shown = null;
  iv.dom.detail.hidden = true;
  describe();
  if (iv.dom.root.open) showPage(0);
}

async function showPage(p) {
  const c = iv.choice;
  if (!c || p < 0 || p >= iv.pages) return;
  const base = `/api/indexes/${c.index.id}/${c.collection.name}`;
  const page = await ask(`${base}/rows?offset=${p * PAGE}&limit=${PAGE}`);
  if (!page || iv.choice !== c) return;
  iv.page = p;
  const d = iv.dom;
  d.page.textContent = `${c.collection.name} ${page.offset + 1}–${page.offset + page.rows.length} of ${page.count}`;
  d.prev.disabled = p === 0;
  d.next.disabled = p >= iv.pages - 1;
  d.grid.replaceChildren(...page.rows.map((r) => {
    const b = el("button", { type: "button", class: "ixthumb", "data-position": r.position,
                             title: `#${r.position} ${r.id}${r.label !== null ? ` · ${r.label}` : ""}` },
      el("img", { src: r.thumbnail, alt: r.label ?? r.id }));
    b.addEventListener("click", () => openImage(r.position));
    return b;
  }));
  iv.rows = page.rows;
  iv.pagesShown++;
}

// The server's answer, or null with the reason shown in the panel (the server down, a bad request).
async function ask(url) {
  try {
    const got = await fetchJSON(url);
    iv.dom.error.textContent = "";
    return got;
  } catch (e) {
    iv.dom.error.textContent = `could not load: ${e.message}`;
    return null;
  }
}

function caption(n) {
  return n.label ?? n.text ?? n.id;
}

async function openImage(position) {
  const c = iv.choice;
  const got = await ask(`/api/indexes/${c.index.id}/${c.collection.name}/neighbours?position=${position}&k=${K}`);
  if (!got || iv.choice !== c) return;
  const d = iv.dom, q = got.query;
  d.query.querySelector("img").src = q.thumbnail;
  d.query.querySelector("figcaption").textContent = `#${q.position}${q.id !== String(q.position) ? ` ${q.id}` : ""}` +
    (q.label !== null ? ` · ${q.label}` : q.text !== null ? ` · ${q.text}` : "");
  const n = got.neighbours.length;
  d.title.replaceChildren(`the ${n} nearest images to #${q.position} by cosine similarity`,
    got.same_label === null ? "" : el("span", {}, ": ",
      el("b", { class: "ixsame", text: `${got.same_label} of ${n}` }), ` share its label “${q.label}” ` +
      "(framed in green; labels are shown for reading the index: self-supervised training never used them)"));
  d.neighbours.replaceChildren(...got.neighbours.map((r) => {
    const kind = r.same_label === null ? "" : r.same_label ? "same" : "other";
    const f = el("figure", { class: `ixneighbour ${kind}`, "data-position": r.position,
                             title: `#${r.position} ${r.id}${r.label !== null ? ` · ${r.label}` : ""}` },
      el("img", { src: r.thumbnail, alt: "" }),
      el("figcaption", {}, el("span", { class: "score", text: fmt(r.score, 3) }), el("br"),
        r.same_label ? "✓ " : "", caption(r)));
    f.addEventListener("click", () => openImage(r.position));
    return f;
  }));
  d.detail.hidden = false;
  iv.shown = got;
}

// Called when the run view's selection changes: show the index built from run `runId` if one was, unless the
// user picked one.
export function showRunIndex(runId) {
  iv.runId = runId;
  if (!iv.dom) return;
  const mine = choices().findIndex((c) => c.index.run === runId);
  if (!iv.picked) choose(mine >= 0 ? mine : Math.max(0, choices().indexOf(iv.choice)));
  describe();
}

export async function startIndexView(host, runs, runId) {
  iv.indexes = await fetchJSON("/api/indexes");
  if (!iv.indexes.length) return;
  iv.runs = runs;
  build(host);
  showRunIndex(runId);
  iv.ready = true;
}
