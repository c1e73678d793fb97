"""Dashboard benchmark in a real headless browser (Debian chromium + playwright).

Measures, against the targets of issues #4 and #17:
  * slider change -> visible update: median latency over 20 temperature changes (target 100 ms),
    from the input event to the end of the first draw that shows the new value;
  * playground frame rate with 2,000 points (target 30 frames/s drawn) and 10,000 points (target 60);
  * run view with 100,000 probe points: time to first draw, draw cost and the longest gap between
    frames while panning and zooming (target: no freeze, i.e. no gap over 250 ms);
  * run view with 1,000,000 probe points: frames/s of a continuous pan (one draw per animation frame
    for 3 s; target 30), and its time to first draw;
  * map stability (issue #17, no browser): the mean displacement between consecutive t-SNE / UMAP
    frames after Procrustes alignment, maps started from the previous one against maps computed
    independently, the time to the first t-SNE map at 1k, 10k and 100k points, and peak memory.
Anchors measured in the same run: the browser's frame rate on an idle page (the ceiling of any
frame rate here), the engine's own tick without the browser, and the other point path of glpoints.js (the
page takes WebGL2 on a hardware renderer, the ImageData loop on a software one such as SwiftShader): the
10k playground and the 1M pan drawn by it, forced.

    .venv/bin/python benchmarks/dashboard.py [--screenshots docs/img]
    .venv/bin/python benchmarks/dashboard.py --stability-only [--tsne-points 1000 10000 100000]
    .venv/bin/python benchmarks/dashboard.py --points 20000 --pan-points 50000 --tsne-points 1000   # a quick look

Shared machines are noisy: read the numbers against the anchors of the same run.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]


def start_server(run_dirs: list[Path]) -> tuple[subprocess.Popen, str]:
    code = ("import sys; from contrastlab.dashboard.server import serve; "
            "serve(sys.argv[1:], port=0, open_browser=False)")
    proc = subprocess.Popen([sys.executable, "-u", "-c", code, *map(str, run_dirs)], stdout=subprocess.PIPE,
                            text=True)
    line = proc.stdout.readline()
    m = re.search(r"http://127\.0\.0\.1:\d+/", line)
    if not m:
        proc.kill()
        raise SystemExit(f"the server did not start: {line!r}")
    return proc, m.group(0)


def cpu_seconds(root: int) -> dict[str, float]:
    """CPU seconds (user + system) used so far by the process tree under ``root``, split into the
    browser (chromium processes) and the rest; empty where /proc is not there."""
    try:
        stats = {}
        for d in os.listdir("/proc"):
            if d.isdigit():
                try:
                    with open(f"/proc/{d}/stat") as f:
                        fields = f.read().rsplit(")", 1)[1].split()
                    with open(f"/proc/{d}/cmdline", "rb") as f:
                        cmd = f.read()
                except OSError:
                    continue
                stats[int(d)] = (int(fields[1]), (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK"), cmd)
    except OSError:
        return {}
    out = {"browser": 0.0, "server": 0.0}
    for pid, (ppid, cpu, cmd) in stats.items():
        p, chain = pid, set()
        while p in stats and p not in chain and p != root:
            chain.add(p)
            p = stats[p][0]
        if p == root and pid != root:
            if b"chromium" in cmd:
                out["browser"] += cpu
            elif b"contrastlab.dashboard.server" in cmd:
                out["server"] += cpu
    return out


def wait_until(page, expression, timeout=60.0):
    deadline = time.monotonic() + timeout
    while not page.evaluate(expression):
        if time.monotonic() > deadline:
            raise TimeoutError(expression)
        page.wait_for_timeout(20)


def engine_tick_ms(points: int) -> float:
    import torch

    from contrastlab.dashboard.live import Session
    torch.set_num_threads(1)
    s = Session()
    s.engine.update(points=points)
    for _ in range(5):
        s.tick()
    times = []
    for _ in range(40):
        t = time.perf_counter()
        s.tick()
        times.append(time.perf_counter() - t)
    return 1e3 * statistics.median(times)


IDLE_FPS = """() => new Promise(done => { let n = 0; const t0 = performance.now();
  const f = () => { n++; const t = performance.now() - t0;
                    if (t < 2000) requestAnimationFrame(f); else done(n / (t / 1000)); };
  requestAnimationFrame(f); })"""

# One slider change in the page: set the range input, fire "input" as a drag does, and wait for the
# first draw whose settings carry the new value. Returns milliseconds.
SLIDER = """async (position) => {
  const s = document.getElementById('ctl-temperature');
  const c = { low: 0.01, high: 2.0 };
  const want = Number((c.low * Math.pow(c.high / c.low, position / 1000)).toPrecision(3));
  const t0 = performance.now();
  s.value = String(position);
  s.dispatchEvent(new Event('input', { bubbles: true }));
  while (!(window.__state.drawnSettings && window.__state.drawnSettings.temperature === want))
    await new Promise(r => requestAnimationFrame(r));
  return window.__state.drawnAt - t0;
}"""

# Start recording the gaps between animation frames for `ms` milliseconds (read window.__gaps later).
FRAME_GAPS = """(ms) => { window.__gaps = new Promise(done => { const gaps = []; let last = performance.now();
  const t0 = last;
  const f = (t) => { gaps.push(t - last); last = t; if (t - t0 < ms) requestAnimationFrame(f); else done(gaps); };
  requestAnimationFrame(f); }); }"""


def playground(page, url: str, results: dict, screenshots: Path | None) -> None:
    page.goto(url + "#playground")
    wait_until(page, "window.__frames > 5")
    if screenshots:
        page.set_viewport_size({"width": 1400, "height": 1300})
        page.evaluate("window.__setControls({hard_pair: true, temperature: 0.2, steps_per_frame: 5})")
        wait_until(page, "window.__state.drawnSettings.hard_pair === true && window.__state.step > 600")
        page.evaluate("window.__setControls({steps_per_frame: 1})")
        wait_until(page, "window.__state.drawnSettings.steps_per_frame === 1")
        page.wait_for_timeout(500)
        page.screenshot(path=str(screenshots / "playground.png"))
        screenshot_encoder(page, screenshots)
        page.set_viewport_size({"width": 1400, "height": 1000})
    results["frame_rates"] = {n: frame_rate(page, n) for n in (10_000, 2000)}     # 2k last: the latencies' size
    latencies = []
    for i in range(21):
        position = 300 + 25 * (i % 2) + i                 # alternate, never the value already shown
        latencies.append(page.evaluate(SLIDER, position))
    results["latency_running"] = latencies[1:]
    page.click("#pg-pause")
    wait_until(page, "window.__state.drawnRunning === false")
    latencies = [page.evaluate(SLIDER, 600 + 25 * (i % 2) + i) for i in range(21)]
    results["latency_paused"] = latencies[1:]


def screenshot_encoder(page, out: Path) -> None:
    """playground-encoder.png: encoder mode on two moons after 500 steps, the input plane beside the circle."""
    page.set_viewport_size({"width": 1400, "height": 1000})
    page.evaluate("window.__setControls({mode: 'encoder', inputs: 'moons', points: 512, batch_size: 64, "
                  "hard_pair: false, temperature: 0.1, noise: 0.15, steps_per_frame: 5, seed: 1})")
    wait_until(page, "window.__state.drawnSettings.mode === 'encoder' && window.__state.step > 500", timeout=120)
    page.evaluate("window.__setControls({steps_per_frame: 1})")
    wait_until(page, "window.__state.drawnSettings.steps_per_frame === 1")
    page.wait_for_timeout(500)
    page.screenshot(path=str(out / "playground-encoder.png"))
    page.evaluate("window.__setControls({mode: 'free', seed: 0})")
    wait_until(page, "window.__state.drawnSettings.mode === 'free'")


def frame_rate(page, points: int, seconds: float = 5.0) -> dict:
    """Frames drawn and received per second, steps per second and CPU per frame with `points` points."""
    page.evaluate(f"window.__setControls({{points: {points}, batch_size: 64, hard_pair: false, temperature: 0.1}})")
    wait_until(page, f"window.__state.drawnSettings.points === {points}")
    step = page.evaluate("window.__state.step")
    wait_until(page, f"window.__state.step > {step + 20}")
    c0 = cpu_seconds(os.getpid())
    f0, r0, s0, t0 = page.evaluate("[window.__frames, window.__state.received, window.__state.step, performance.now()]")
    page.wait_for_timeout(1000 * seconds)
    f1, r1, s1, t1 = page.evaluate("[window.__frames, window.__state.received, window.__state.step, performance.now()]")
    c1 = cpu_seconds(os.getpid())
    dt = (t1 - t0) / 1000
    out = {"drawn": (f1 - f0) / dt, "received": (r1 - r0) / dt, "steps_per_s": (s1 - s0) / dt}
    if c0 and f1 > f0:
        out["cpu_ms_per_frame"] = {k: 1000 * (c1[k] - c0[k]) / (f1 - f0) for k in c0}
    return out


# A continuous pan of the run view's first map: one draw per animation frame for `ms` milliseconds; frames/s.
PAN_FPS = """(ms) => new Promise(done => { const s = window.__runview.panes[0].scatter; let n = 0, t0 = null;
  const f = (t) => { if (t0 === null) t0 = t; s.view.x += 0.002 / s.view.k * 40; s.draw(t); n++;
                     if (t - t0 < ms) requestAnimationFrame(f); else done(n / ((t - t0) / 1000)); };
  requestAnimationFrame(f); })"""


FORCE_PATH = "localStorage.setItem('contrastlab.points', '{}')"          # glpoints.js's choice, overridden


def pan_rate(page, url: str, results: dict, key: str = "pan_fps") -> None:
    """The run view of the big run (second run of the server): its first draw and a 3 s continuous pan (frames/s
    in ``results[key]``)."""
    page.goto(url + "#runs")
    wait_until(page, "window.__runview.panes.length && window.__runview.ready", timeout=180)
    page.locator("#rv-run-a").select_option("1")
    wait_until(page, "window.__runview.panes.length && window.__runview.panes[0].id === 1 "
                     "&& window.__runview.panes[0].firstDrawMs !== null && window.__runview.panes[0].scatter.from === null",
               timeout=600)
    results["pan_points"] = page.evaluate("window.__runview.panes[0].scatter.xy.length / 2")
    results["pan_first_draw_ms"] = page.evaluate("window.__runview.panes[0].firstDrawMs")
    page.evaluate(PAN_FPS, 1000)                                            # warm-up
    results[key] = page.evaluate(PAN_FPS, 3000)
    results.setdefault("point_renderer", page.evaluate("window.__pointRenderer"))


def run_view(page, url: str, results: dict) -> None:
    t_nav = time.perf_counter()
    page.goto(url + "#runs")
    wait_until(page, "window.__runview.panes.length && window.__runview.panes[0].firstDrawMs !== null", timeout=180)
    results["first_draw_ms"] = page.evaluate("window.__runview.panes[0].firstDrawMs")
    results["first_draw_wall_s"] = time.perf_counter() - t_nav
    results["points"] = page.evaluate("window.__runview.panes[0].scatter.xy.length / 2")
    wait_until(page, "window.__runview.panes[0].scatter.from === null")
    page.evaluate("window.__runview.panes[0].scatter.frameTimes.length = 0")
    box = page.locator(".pane >> nth=0 >> canvas.map").bounding_box()
    cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.evaluate(FRAME_GAPS, 4000)                                         # runs while we pan and zoom
    page.mouse.move(cx, cy)
    page.mouse.down()
    for i in range(60):
        page.mouse.move(cx + 120 * ((i % 20) / 20 - 0.5), cy + 60 * ((i % 10) / 10 - 0.5))
    page.mouse.up()
    for i in range(20):
        page.mouse.wheel(0, -120 if i < 10 else 120)
    gap_list = page.evaluate("window.__gaps")
    draws = page.evaluate("window.__runview.panes[0].scatter.frameTimes.slice()")
    results["draw_ms"] = draws
    results["max_gap_ms"] = max(gap_list)
    results["median_gap_ms"] = statistics.median(gap_list)
    # scrubbing to another snapshot of 100k points: fetch + projection + tween
    t = time.perf_counter()
    page.locator(".pane >> nth=0 >> .scrubber").focus()
    page.keyboard.press("Home")
    wait_until(page, "window.__runview.panes[0].index === 0 && window.__runview.panes[0].scatter.from === null",
               timeout=120)
    results["scrub_s"] = time.perf_counter() - t


def stability(tsne_points: list[int], *, chain_points: int = 1000, snapshots: int = 6) -> None:
    """Prints the stability of map chains and the time to a first t-SNE map (no browser)."""
    import resource

    from contrastlab.dashboard.projection import project
    from contrastlab.dashboard.stability import chain_displacements, tightening_snapshots
    seq = tightening_snapshots(chain_points, 32, snapshots)
    print(f"\nmap stability: {chain_points:,} points x {snapshots} snapshots (32-D, clusters tightening); mean "
          "displacement between consecutive frames after Procrustes, in map radii (RMS radius 1)")
    print(f"{'method':<8} {'warm-started (ours)':>20} {'independent':>12} {'ratio':>6} {'time warm | indep':>20}")
    for method in ("tsne", "umap"):
        t = time.perf_counter()
        warm = chain_displacements(seq, method=method, warm=True)
        tw = time.perf_counter() - t
        t = time.perf_counter()
        cold = chain_displacements(seq, method=method, warm=False)
        tc = time.perf_counter() - t
        mw, mc = statistics.mean(warm), statistics.mean(cold)
        print(f"{method:<8} {mw:>20.3f} {mc:>12.3f} {mw / mc:>6.2f} {f'{tw:.1f} | {tc:.1f} s':>20}", flush=True)
    for n in tsne_points:
        x = tightening_snapshots(n, 32, 1)[0]
        t = time.perf_counter()
        project(x, method="tsne")
        print(f"time to the first t-SNE map, {n:,} points: {time.perf_counter() - t:.1f} s", flush=True)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024            # KiB on Linux
    print(f"peak memory (max RSS of this process): {peak:.0f} MiB")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--points", type=int, default=100_000, help="probe points of the run view (default 100000)")
    parser.add_argument("--screenshots", type=Path, default=None, help="also save playground.png and runview.png here")
    parser.add_argument("--runs", type=Path, nargs="*", default=None,
                        help="run directories for runview.png (default: two synthetic runs)")
    parser.add_argument("--stability-only", action="store_true", help="only the map-stability part (no browser)")
    parser.add_argument("--pan-points", type=int, default=1_000_000, help="probe points of the pan test (default 1M)")
    parser.add_argument("--tsne-points", type=int, nargs="*", default=[1000, 10_000, 100_000],
                        help="sizes for the time to a first t-SNE map (default 1000 10000 100000)")
    args = parser.parse_args()
    if args.stability_only:
        stability(args.tsne_points)
        return 0
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        print("playwright is not installed (pip install playwright)")
        return 1
    chromium = shutil.which("chromium")
    if chromium is None:
        print("Debian chromium is not installed (apt-get install chromium)")
        return 1
    from contrastlab.dashboard.synthetic import write_synthetic_run

    results: dict = {"load": os.getloadavg()}
    results["engine_tick_ms"] = {n: engine_tick_ms(n) for n in (2000, 10_000)}
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        big = write_synthetic_run(Path(tmp) / "big-run", points=args.points, dim=64, snapshots=4, thumbnail=16)
        print(f"wrote a synthetic run of {args.points:,} points x 4 snapshots in {time.perf_counter() - t:.1f} s",
              flush=True)
        t = time.perf_counter()
        huge = write_synthetic_run(Path(tmp) / "pan-run", points=args.pan_points, dim=16, snapshots=2, thumbnail=0)
        print(f"wrote a synthetic run of {args.pan_points:,} points x 2 snapshots in {time.perf_counter() - t:.1f} s",
              flush=True)
        proc, url = start_server([big, huge])
        try:
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=chromium, args=ARGS)
                page = browser.new_page(viewport={"width": 1400, "height": 1000})
                page.goto(url + "static/style.css")
                results["idle_fps"] = page.evaluate(IDLE_FPS)
                playground(page, url, results, args.screenshots)
                page.close()
                page = browser.new_page(viewport={"width": 1400, "height": 1000})
                run_view(page, url, results)
                page.close()
                page = browser.new_page(viewport={"width": 1400, "height": 1000})
                pan_rate(page, url, results)
                page.close()
                # the anchor of the point path the page chose: the same 10k playground and 1M pan by the other one
                # (glpoints.js: its WebGL2 shader, or the ImageData loop)
                other = "pixels" if results["point_renderer"]["mode"] == "webgl" else "webgl"
                results["other_path"] = other
                page = browser.new_page(viewport={"width": 1400, "height": 1000})
                page.add_init_script(FORCE_PATH.format(other))
                page.goto(url + "#playground")
                wait_until(page, "window.__frames > 5")
                results["other_rate"] = frame_rate(page, 10_000)
                pan_rate(page, url, results, key="other_pan")
                browser.close()
        finally:
            proc.terminate()
            proc.wait(30)
        if args.screenshots:
            screenshot_runs(Path(tmp), args.screenshots, chromium, args.runs)
    report(results)
    stability(args.tsne_points)
    return 0


def screenshot_runs(tmp: Path, out: Path, chromium: str, runs: list[Path] | None) -> None:
    """runview.png: two runs side by side (given, or two synthetic ones, named as such)."""
    from playwright.sync_api import sync_playwright

    from contrastlab.dashboard.synthetic import write_synthetic_run
    if not runs:
        runs = [write_synthetic_run(tmp / "synthetic-a", points=3000, dim=32, snapshots=6, seed=0),
                write_synthetic_run(tmp / "synthetic-b", points=3000, dim=32, snapshots=6, seed=1, state="running")]
    proc, url = start_server(runs[:2])
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium, args=ARGS)
            page = browser.new_page(viewport={"width": 1400, "height": 1150})
            page.goto(url + "#runs")
            wait_until(page, "window.__runview.panes.length && window.__runview.panes.every(p => p.snapshots.length "
                             "&& p.index === p.snapshots.length - 1 && p.scatter.from === null)", timeout=120)
            box = page.locator(".pane >> nth=0 >> canvas.map").bounding_box()

            def at(i):                                   # where probe point i is drawn
                x, y = page.evaluate(f"(() => {{ const s = window.__runview.panes[0].scatter; "
                                     f"return s.toScreen(s.shown[{2 * i}], s.shown[{2 * i + 1}]); }})()")
                return box["x"] + x, box["y"] + y
            page.mouse.click(*at(0))                     # its nearest neighbours, with thumbnails
            page.wait_for_timeout(800)
            page.mouse.move(*at(11))                     # a thumbnail on hover
            page.wait_for_timeout(800)
            page.screenshot(path=str(out / "runview.png"))
            browser.close()
    finally:
        proc.terminate()
        proc.wait(30)


def _rate_rows(f: dict, points: int, target: float, ceiling: float) -> list[tuple]:
    rows = [(f"playground frames drawn/s, {points:,} points", f"{f['drawn']:.1f}", f">= {target}",
             "ok" if f["drawn"] >= target else "MISSED"),
            ("  share of the display's refreshes drawn (idle page = 100%)", f"{100 * f['drawn'] / ceiling:.1f}%", "", ""),
            ("  frames received/s | steps/s", f"{f['received']:.1f} | {f['steps_per_s']:.0f}", "", "")]
    if "cpu_ms_per_frame" in f:
        c = f["cpu_ms_per_frame"]
        rows.append(("  CPU per frame: browser | server (bound on 2 idle cores)",
                     f"{c['browser']:.0f} | {c['server']:.0f} ms", f"~{2000 / max(sum(c.values()), 1e-9):.0f} frames/s", ""))
    return rows


def report(r: dict) -> None:
    med = statistics.median
    print(f"\nload average (1 min) before / after: {r['load'][0]:.1f} / {os.getloadavg()[0]:.1f} on "
          f"{os.cpu_count()} cores (other work on the machine slows the browser and the server alike)")
    lat_run, lat_pause = med(r["latency_running"]), med(r["latency_paused"])
    draws = sorted(r["draw_ms"]) or [float("nan")]
    p95 = draws[int(0.95 * (len(draws) - 1))]
    rows = [
        ("anchor: idle page, browser frames/s", f"{r['idle_fps']:.0f}", "ceiling", ""),
        *[(f"anchor: engine tick, {n:,} points (no browser)", f"{ms:.1f} ms", f"<= {1000 / max(ms, 1e-9):.0f} frames/s",
           "") for n, ms in r["engine_tick_ms"].items()],
        ("slider -> visible, median of 20 (running, 2k points)", f"{lat_run:.0f} ms", "<= 100 ms",
         "ok" if lat_run <= 100 else "MISSED"),
        ("slider -> visible, median of 20 (paused)", f"{lat_pause:.0f} ms", "<= 100 ms",
         "ok" if lat_pause <= 100 else "MISSED"),
        *[row for n, target in ((2000, 30), (10_000, 60))
          for row in _rate_rows(r["frame_rates"][n], n, target, r["idle_fps"])],
        (f"run view: first draw of {int(r['points']):,} points", f"{r['first_draw_ms'] / 1000:.2f} s", "", ""),
        ("run view: draw while panning/zooming, median | p95", f"{med(draws):.1f} | {p95:.1f} ms", "", ""),
        ("run view: longest gap between frames while panning", f"{r['max_gap_ms']:.0f} ms", "< 250 ms (no freeze)",
         "ok" if r["max_gap_ms"] < 250 else "MISSED"),
        ("run view: scrub to another snapshot (fetch + tween)", f"{r['scrub_s']:.2f} s", "", ""),
        (f"run view: first draw of {int(r['pan_points']):,} points", f"{r['pan_first_draw_ms'] / 1000:.2f} s", "", ""),
        (f"run view: continuous pan of {int(r['pan_points']):,} points, frames/s", f"{r['pan_fps']:.1f}", ">= 30",
         "ok" if r["pan_fps"] >= 30 else "MISSED"),
        (f"  anchor: the same pan by the {r['other_path']} point path", f"{r['other_pan']:.1f}",
         f"ratio chosen/other {r['pan_fps'] / max(r['other_pan'], 1e-9):.1f}x", ""),
        (f"  anchor: playground, 10,000 points, by the {r['other_path']} point path", f"{r['other_rate']['drawn']:.1f}",
         f"ratio chosen/other {r['frame_rates'][10_000]['drawn'] / max(r['other_rate']['drawn'], 1e-9):.2f}x", ""),
    ]
    pr = r.get("point_renderer") or {}
    print(f"points drawn by: {pr.get('mode')} (chosen '{pr.get('want')}'; WebGL2 renderer: {pr.get('renderer')})")
    w = max(len(x[0]) for x in rows)
    print(f"\n{'measure':<{w}}  {'value':>16}  {'target':<22}")
    for name, value, target, ok in rows:
        print(f"{name:<{w}}  {value:>16}  {target:<22}{ok}")


if __name__ == "__main__":
    sys.exit(main())
