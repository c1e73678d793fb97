// Entry point: tabs (#playground, #runs); each view starts the first time it is shown.
import { wirePointMenu } from "./glpoints.js";
import { startPlayground } from "./playground.js";
import { startRunView } from "./runview.js";

const started = {};
let info = null;

function show() {
  const want = location.hash.replace("#", "") || (info && (info.runs > 0 || info.indexes > 0) ? "runs" : "playground");
  const name = want === "runs" ? "runs" : "playground";
  for (const v of ["playground", "runs"]) {
    document.getElementById(v).hidden = v !== name;
    document.getElementById(`tab-${v}`).classList.toggle("active", v === name);
  }
  if (!started[name]) {
    started[name] = true;
    if (name === "playground") startPlayground(); else startRunView();
  }
  if (name === "runs" && !started.playground) {
    const conn = document.getElementById("conn");
    conn.textContent = ""; conn.className = "";
  }
}

async function main() {
  try { info = await (await fetch("/api/info", { cache: "no-store" })).json(); } catch { info = null; }
  if (info && !info.playground) document.getElementById("tab-playground").hidden = true;
  window.addEventListener("hashchange", show);
  wirePointMenu(document.getElementById("point-path"), document.getElementById("point-path-now"));
  show();
}
main();
