"""The dashboard in a real browser (Debian chromium driven by playwright): offline page, the
temperature slider sharpens the softmax, no negatives collapses the points, the run view scrubs
through a run's snapshots and shows an image-text run's pairs. Every request that does not go to
127.0.0.1 fails the test."""

from __future__ import annotations

import json
import shutil
import time
import urllib.request

import numpy as np
import pytest

from contrastlab.dashboard.controls import CONTROLS
from contrastlab.dashboard.synthetic import write_snapshot, write_synthetic_pair_run, write_synthetic_run

sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
CHROMIUM = shutil.which("chromium")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Debian chromium is not installed (apt-get install chromium)")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser, server_for):
    """A page whose requests may only go to 127.0.0.1 (or data: / blob:); console errors fail too.
    It depends on `server_for` so that it is closed before the server stops: otherwise the page's reconnect
    attempt to the stopped server logs a console error that is the test's teardown, not the page's fault."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    outside, problems = [], []

    def route(r):
        url = r.request.url
        if url.startswith(("http://127.0.0.1:", "ws://127.0.0.1:", "data:", "blob:")):
            r.continue_()
        else:
            outside.append(url)
            r.abort()

    context.route("**/*", route)
    pg = context.new_page()
    pg.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    pg.on("pageerror", lambda e: problems.append(str(e)))
    yield pg
    context.close()
    assert outside == [], f"requests left 127.0.0.1: {outside}"
    assert problems == [], f"errors in the page: {problems}"


def wait_until(page, expression, timeout=240.0):        # a safety net: loaded CI cores are slow
    """Poll a JavaScript expression until it is truthy (the page's own counters and state)."""
    deadline = time.monotonic() + timeout
    while True:
        value = page.evaluate(expression)
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {expression}")
        page.wait_for_timeout(30)


def bars(page):
    return page.evaluate("[...document.querySelectorAll('#pg-bars .bar')].map(b => [b.dataset.kind, +b.dataset.p])")


def test_playground_loads_offline_and_draws(page, server_for):
    page.goto(server_for() + "/#playground")
    wait_until(page, "window.__frames > 5")
    assert page.locator("#pg-controls .control").count() == len(CONTROLS)
    state = page.evaluate("window.__state")
    assert state["connected"] and state["step"] > 0 and len(bars(page)) >= 2
    assert page.locator("#pg-text").inner_text().startswith("Loss: InfoNCE")
    ink = page.evaluate("""(() => { const c = document.getElementById('pg-canvas');
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        let n = 0; for (let i = 3; i < d.length; i += 4) if (d[i] > 0) n++; return n; })()""")
    assert ink > 1000                                                     # points and arrows were drawn


def test_lower_temperature_slider_sharpens_the_softmax_bars(page, server_for):
    page.goto(server_for() + "/#playground")
    wait_until(page, "window.__frames > 2")
    page.click("#pg-pause")
    wait_until(page, "window.__state.drawnRunning === false")                # a frame drawn after the pause
    slider = page.locator("#ctl-temperature")
    readings = {}
    for key, want in (("End", 2.0), ("Home", 0.01)):                      # the slider's two ends, by keyboard
        slider.focus()
        page.keyboard.press(key)
        wait_until(page, f"window.__state.drawnSettings.temperature === {want}")
        readings[want] = (page.evaluate("window.__state.anchor.entropy"), bars(page))
        assert page.locator("#ctl-temperature + output").inner_text() == str(want).rstrip("0").rstrip(".")
    (h_hot, bars_hot), (h_cold, bars_cold) = readings[2.0], readings[0.01]
    assert h_cold < h_hot - 0.5                                           # sharper: lower entropy
    top = lambda b: max(p for kind, p in b if kind != "rest")
    assert top(bars_cold) > top(bars_hot)                                 # and a taller top bar
    assert sum(p for _, p in bars_hot) == pytest.approx(1.0, abs=1e-6)    # the bars are a distribution


def test_no_negatives_collapses_the_points(page, server_for):
    page.goto(server_for() + "/#playground")
    wait_until(page, "window.__frames > 2")
    setup = {"points": 64, "batch_size": 16, "noise": 0.4, "lr": 0.5, "steps_per_frame": 10, "seed": 0}
    page.evaluate(f"window.__setControls({json.dumps(setup)})")
    wait_until(page, "window.__state.drawnSettings.points === 64 "
                     "&& window.__state.drawnSettings.steps_per_frame === 10")
    start = page.evaluate("window.__state.metrics")
    page.click("#ctl-no_negatives")                                        # the checkbox, as a user would
    wait_until(page, "window.__state.drawnSettings.no_negatives === true")
    end = wait_until(page, "window.__state.metrics.uniformity > -0.15 && window.__state.metrics", timeout=40)
    assert start["uniformity"] < -1.0 and end["alignment"] < 0.1 < start["alignment"]
    assert "collapse" in page.locator("#pg-text").inner_text()


def test_run_view_shows_snapshots_and_the_scrubber_moves_them(page, server_for, tmp_path):
    run = write_synthetic_run(tmp_path / "tiny", points=60, dim=8, classes=3, snapshots=3)
    base = server_for([run, tmp_path / "not-yet"])
    page.goto(base + "/#runs")
    wait_until(page, "window.__runview.panes.length === 2 && window.__runview.panes[0].index === 2 "
                     "&& window.__runview.panes[0].scatter.from === null && window.__runview.panes[0].scatter.shown")

    def shown():
        return np.array(page.evaluate("Array.from(window.__runview.panes[0].scatter.shown)"), np.float32)

    def server_map(k):
        with urllib.request.urlopen(f"{base}/api/runs/0/snapshots/{k}/map") as r:
            return np.frombuffer(r.read(), "<f4")

    np.testing.assert_allclose(shown(), server_map(2), atol=1e-6)          # the last snapshot is drawn
    assert "step 200" in page.locator(".pane >> nth=0 >> .steplabel").inner_text()
    page.locator(".pane >> nth=0 >> .scrubber").focus()
    page.keyboard.press("Home")                                            # scrub to the first snapshot
    wait_until(page, "window.__runview.panes[0].index === 0 && window.__runview.panes[0].scatter.from === null "
                     "&& window.__runview.panes[0].scatter.shown")
    first = shown()
    np.testing.assert_allclose(first, server_map(0), atol=1e-6)
    assert np.abs(first - server_map(2)).max() > 0.1                       # the points moved
    assert "step 0" in page.locator(".pane >> nth=0 >> .steplabel").inner_text()
    assert "never used" in page.locator(".pane >> nth=0 >> .labelnote").inner_text()
    # the second pane, side by side, is a run that does not exist yet: shown as missing
    assert page.locator(".pane >> nth=1 >> .state").inner_text() == "missing"
    assert "does not exist" in page.locator(".pane >> nth=1 >> .notes").inner_text()
    # live: follow the run again; a snapshot being written is "not readable yet", then it appears
    page.locator(".pane >> nth=0 >> .follow").check()
    wait_until(page, "window.__runview.panes[0].index === 2")
    good = write_snapshot(run, 300, np.random.default_rng(0).normal(size=(60, 8)))
    data = good.read_bytes()
    good.write_bytes(data[: len(data) // 3])                               # a torn write
    wait_until(page, "document.querySelector('.pane .steplabel').textContent.includes('not readable yet')")
    good.write_bytes(data)
    wait_until(page, "window.__runview.panes[0].index === 3 && window.__runview.panes[0].step === 300")



def test_clicking_a_point_makes_it_the_anchor_and_dragging_turns_the_sphere(page, server_for):
    page.goto(server_for() + "/#playground")
    wait_until(page, "window.__frames > 2")
    page.evaluate("window.__setControls({dim: 3, points: 100, batch_size: 10})")
    wait_until(page, "window.__state.drawnSettings.dim === 3 && window.__state.drawnSettings.points === 100")
    page.click("#pg-pause")
    wait_until(page, "window.__state.drawnRunning === false")                # points stay where they are
    box = page.locator("#pg-canvas").bounding_box()
    # a point drawn on the front of the sphere that a click there would pick, other than the anchor
    x, y, pick = page.evaluate("""(() => { for (let i = 0; i < 100; i++) {
        const [x, y, front] = window.__pgScreen(i);
        const pick = window.__pgPick(x, y);
        if (front && pick >= 0 && pick !== window.__state.anchor.point) return [x, y, pick]; } })()""")
    page.mouse.click(box["x"] + x, box["y"] + y)
    wait_until(page, f"window.__state.anchor.point === {pick}")
    assert page.locator("#pg-entropy").inner_text().startswith(f"anchor #{pick} ")
    before = page.evaluate(f"window.__pgScreen({pick})")
    page.mouse.move(box["x"] + 40, box["y"] + 40)
    page.mouse.down()
    page.mouse.move(box["x"] + 160, box["y"] + 100, steps=6)              # drag: the sphere turns
    page.mouse.up()
    wait_until(page, f"window.__pgScreen({pick})[0] !== {before[0]}")


def test_run_view_hover_click_and_play(page, server_for, tmp_path):
    run = write_synthetic_run(tmp_path / "tiny", points=40, dim=8, classes=2, snapshots=4)
    page.goto(server_for([run]) + "/#runs")
    wait_until(page, "window.__runview.panes.length === 1 && window.__runview.panes[0].index === 3 "
                     "&& window.__runview.panes[0].scatter.from === null")
    box = page.locator("canvas.map").bounding_box()
    x, y = page.evaluate("(() => { const s = window.__runview.panes[0].scatter; "
                         "return s.toScreen(s.shown[0], s.shown[1]); })()")
    page.mouse.move(box["x"] + x, box["y"] + y)
    wait_until(page, "!document.querySelector('.tooltip').hidden")
    assert page.locator(".tooltip img").get_attribute("src").startswith("/api/runs/0/thumbnails/")
    page.mouse.click(box["x"] + x, box["y"] + y)
    wait_until(page, "document.querySelectorAll('.neighbours figure').length === 9")    # the point + 8 nearest
    assert "nearest neighbours of point" in page.locator(".neighbours .title").inner_text()
    page.click(".play")                                                    # from the start to the end
    wait_until(page, "window.__runview.panes[0].index === 0")
    wait_until(page, "window.__runview.panes[0].index === 3 && window.__runview.panes[0].playing === null")


def test_run_view_shows_an_image_text_run_with_lines_joining_the_pairs(page, server_for, tmp_path):
    pairs = 30
    run = write_synthetic_pair_run(tmp_path / "clip", pairs=pairs, dim=12, classes=3, snapshots=4)
    base = server_for([run])
    page.goto(base + "/#runs")
    pane = "window.__runview.panes[0]"
    wait_until(page, f"window.__runview.panes.length === 1 && {pane}.index === 3 && {pane}.scatter.from === null "
                     f"&& {pane}.scatter.atlas !== null")
    # the page's frame counter moves, and a frame drew everything: a line per pair, a thumbnail per image, a
    # dot per name, some of the names' labels (those that do not overlap)
    stats = wait_until(page, f"{pane}.scatter.draws > 1 && {pane}.scatter.stats.thumbs === {pairs} "
                             f"&& {pane}.scatter.stats")
    assert stats["lines"] == pairs and stats["names"] == pairs and stats["labels"] > 0
    assert not page.locator(".pairbar").is_hidden()
    assert "joins an image to its name" in page.locator(".pairbar").inner_text()

    def cos_shown():
        return float(page.locator(".paircos b").inner_text())

    def server_cos(k):
        with urllib.request.urlopen(f"{base}/api/runs/0/snapshots/{k}/map") as r:
            return float(r.headers["X-Pair-Cosine"])

    last = cos_shown()
    assert last == pytest.approx(server_cos(3), abs=1e-3) and "step 300" in page.locator(".paircos").inner_text()
    # the toggle hides and shows the lines
    frames = page.evaluate(f"{pane}.scatter.draws")
    page.locator(".showlines").uncheck()
    wait_until(page, f"{pane}.scatter.draws > {frames} && {pane}.scatter.stats.lines === 0")
    assert page.evaluate(f"{pane}.scatter.stats.thumbs") == pairs
    page.locator(".showlines").check()
    wait_until(page, f"{pane}.scatter.stats.lines === {pairs}")
    # the first snapshot: images and names far apart, a lower mean cosine
    page.locator(".scrubber").focus()
    page.keyboard.press("Home")
    wait_until(page, f"{pane}.index === 0 && {pane}.scatter.from === null")
    wait_until(page, "document.querySelector('.paircos').textContent.includes('step 0')")
    first = cos_shown()
    assert first == pytest.approx(server_cos(0), abs=1e-3) and first < last - 0.5
    # hover on a name: its text and its image's thumbnail; click an image: its name is the partner
    box = page.locator("canvas.map").bounding_box()
    found = page.evaluate(f"""(() => {{ const s = {pane}.scatter;
        for (const start of [{pairs}, 0]) for (let i = start; i < start + {pairs}; i++) {{
          const [x, y] = s.toScreen(s.shown[2 * i], s.shown[2 * i + 1]);
          if (s.nearest(x, y) === i) return [i, x, y]; }}
        return null; }})()""")
    assert found is not None and found[0] >= pairs                      # a name that a pointer there would pick
    name, x, y = found
    page.mouse.move(box["x"] + x, box["y"] + y)
    wait_until(page, "!document.querySelector('.tooltip').hidden")
    texts = page.evaluate(f"{pane}.summary.probe.texts")
    assert page.locator(".tooltip img").get_attribute("src") == f"/api/runs/0/thumbnails/{name - pairs}"
    assert page.locator(".tooltip span").inner_text().startswith(f"name: {texts[name]}")
    image = name - pairs
    ix, iy = page.evaluate(f"(() => {{ const s = {pane}.scatter; "
                           f"return s.toScreen(s.shown[{2 * image}], s.shown[{2 * image + 1}]); }})()")
    assert page.evaluate(f"{pane}.scatter.nearest({ix}, {iy})") == image
    page.mouse.click(box["x"] + ix, box["y"] + iy)
    wait_until(page, f"{pane}.scatter.selected === {image} && {pane}.scatter.partner === {name}")
    wait_until(page, "document.querySelectorAll('.neighbours figure').length === 9")
    assert "its name is ringed" in page.locator(".neighbours .title").inner_text()


@pytest.mark.filterwarnings("ignore:precomputed_knn")                   # we give UMAP its neighbours, no index
def test_run_view_offers_tsne_and_umap_and_draws_them(page, server_for, tmp_path):
    run = write_synthetic_run(tmp_path / "tiny", points=150, dim=16, classes=3, snapshots=3)
    base = server_for([run])
    page.goto(base + "/#runs")
    pane = "window.__runview.panes[0]"
    wait_until(page, f"{pane} && {pane}.index === 2 && {pane}.drawnMethod === 'pca' && {pane}.scatter.from === null")
    select = page.locator(".pane >> nth=0 >> .method")
    assert select.locator("option").all_inner_texts() == ["PCA", "t-SNE", "UMAP"]
    assert select.locator("option[disabled]").count() == 0
    for method in ("tsne", "umap"):
        before = page.evaluate(f"[{pane}.scatter.draws, {pane}.progressUpdates]")
        select.select_option(method)
        # the first answer is always "computing" (202): the page shows the progress, then draws the map
        wait_until(page, f"{pane}.progressUpdates > {before[1]}")
        wait_until(page, f"{pane}.drawnMethod === '{method}' && {pane}.computing === null && {pane}.index === 2 "
                         f"&& {pane}.scatter.draws > {before[0]}", timeout=180)
        assert page.locator(".pane >> nth=0 >> .computing").is_hidden()
        shown = np.array(page.evaluate(f"Array.from({pane}.scatter.shown)"), np.float32)
        with urllib.request.urlopen(f"{base}/api/runs/0/snapshots/2/map?method={method}") as r:
            assert r.status == 200
            np.testing.assert_allclose(shown, np.frombuffer(r.read(), "<f4"), atol=1e-6)   # that map is drawn
        assert shown.shape == (300,) and np.isfinite(shown).all() and shown.reshape(150, 2).std(0).min() > 0
        inside = page.evaluate(f"""(() => {{ const s = {pane}.scatter, c = s.canvas; let n = 0;
            for (let i = 0; i < s.shown.length; i += 2) {{ const [x, y] = s.toScreen(s.shown[i], s.shown[i + 1]);
              if (x >= 0 && y >= 0 && x <= c.clientWidth && y <= c.clientHeight) n++; }} return n; }})()""")
        assert inside == 150                                                 # framed: every point is on the canvas
        ink = page.evaluate("""(() => { const c = document.querySelector('.pane canvas.map');
            const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
            let n = 0; for (let i = 0; i < d.length; i += 4) if (d[i] < 250 || d[i + 1] < 250 || d[i + 2] < 250) n++;
            return n; })()""")
        assert ink > 150                                                     # and drawn: coloured pixels
    assert "not installed" not in page.locator("body").inner_text()
    assert "not installed" not in page.content()
