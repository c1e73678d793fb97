"""The playground's guided experiments, live formula and links in a real browser (Debian chromium driven by
playwright, offline): every guided experiment runs from its button and the page shows the outcome the engine
judged (the same measures as an engine run here); the formula panel equals the engine's loss to 1e-4; a link
reproduces the same frame at step 50; a bad link shows a notice and the defaults are used."""

from __future__ import annotations

import math
import shutil
import time

import numpy as np
import pytest

from contrastlab.dashboard.controls import defaults
from contrastlab.dashboard.experiments import EXPERIMENTS
from contrastlab.dashboard.playground import Playground
from contrastlab.dashboard.share import settings_query

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
def new_page(browser, server_for):
    """``new_page()``: a page whose requests may only go to 127.0.0.1 (or data: / blob:); console errors fail."""
    contexts, outside, problems = [], [], []

    def route(r):
        url = r.request.url
        if url.startswith(("http://127.0.0.1:", "ws://127.0.0.1:", "data:", "blob:")):
            r.continue_()
        else:
            outside.append(url)
            r.abort()

    def make():
        context = browser.new_context(viewport={"width": 1400, "height": 1000})
        context.route("**/*", route)
        contexts.append(context)
        pg = context.new_page()
        pg.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
        pg.on("pageerror", lambda e: problems.append(str(e)))
        return pg

    yield make
    for c in contexts:
        c.close()
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


def engine_run(name):
    pg = Playground()
    pg.start_experiment(name)
    while pg.experiment.status == "running":
        pg.step(1)
    return pg.experiment


def test_every_guided_experiment_runs_from_its_button_and_shows_the_outcome(new_page, server_for):
    page = new_page()
    page.goto(server_for() + "/#playground")
    wait_until(page, "window.__frames > 2 && document.querySelectorAll('button.experiment').length > 0")
    assert page.locator("button.experiment").count() == len(EXPERIMENTS)
    for name, e in EXPERIMENTS.items():
        page.click(f"button.experiment[data-name={name}]")
        run = wait_until(page, f"window.__state.experiment && window.__state.experiment.name === '{name}' "
                               f"&& window.__state.experiment.status === 'done' && window.__state.experiment")
        ref = engine_run(name)                                  # the same experiment on an engine here
        assert run["passed"] is True, run["verdict"]
        assert run["verdict"] == ref.verdict
        for got, want in zip(run["measures"], ref.measures, strict=True):
            assert got.keys() == want.keys()
            for k in want:
                assert got[k] == pytest.approx(want[k], abs=1e-6), (name, k)
        box = page.locator("#pg-exp-status")
        wait_until(page, f"document.querySelector('#pg-exp-status').dataset.name === '{name}' "
                         f"&& document.querySelector('#pg-exp-status').dataset.status === 'done'")
        text = box.inner_text()
        assert "Confirmed: " + ref.verdict in text and e.question in text and e.watch in text
        assert page.evaluate("window.__state.drawnRunning") is False          # it paused at its end
        settings = page.evaluate("window.__state.drawnSettings")
        assert settings == e.settings_of(e.phases[-1])                        # the controls it set


def float64_info_nce(z, anchors, positives, anchor, t):
    z = z / np.linalg.norm(z, axis=1, keepdims=True)
    i = int(np.flatnonzero(anchors == anchor)[0])
    logits = z[positives] @ z[anchor] / t
    return float(np.log(np.exp(logits).sum()) - logits[i])


def test_a_link_reproduces_the_frame_at_step_50_and_the_formula_equals_the_engine(new_page, server_for):
    base = server_for()
    settings = defaults() | {"points": 80, "batch_size": 20, "temperature": 0.2, "seed": 5, "noise": 0.2}
    url = f"{base}/?{settings_query(settings, anchor=3, step=50)}#playground"
    ref = Playground(**settings)
    ref.load_link(settings_query(settings, anchor=3, step=50))
    want = ref.frame().positions
    shown = []
    for _ in range(2):                                               # two visitors open the same link
        page = new_page()
        page.goto(url)
        wait_until(page, "window.__state.drawnStep === 50 && window.__state.drawnRunning === false "
                         "&& window.__state.drawnSettings.seed === 5 && window.__state.anchor.point === 3")
        positions = np.array(page.evaluate("window.__pgPositions()"), np.float32).reshape(80, 2)
        np.testing.assert_array_equal(positions, want)                  # the same frame, to the bit
        shown.append(positions)
        assert page.locator("#pg-notice").is_hidden()
        # the formula panel: its loss equals the engine's to 1e-4, and a float64 formula written here
        wait_until(page, "document.querySelector('#pg-formula').dataset.anchor === '3'")
        panel = page.evaluate("Object.assign({}, document.querySelector('#pg-formula').dataset)")
        a, p = (x.numpy() for x in ref.batch)
        reference = float64_info_nce(want.astype(np.float64), a, p, 3, 0.2)
        assert float(panel["loss"]) == pytest.approx(float(panel["engineLoss"]), abs=1e-4)
        assert float(panel["loss"]) == pytest.approx(reference, abs=1e-4)
        assert float(panel["engineLoss"]) == pytest.approx(reference, abs=1e-4)
        assert float(page.locator(".fl-loss").inner_text()) == pytest.approx(reference, abs=1e-4)
        assert page.locator("#pg-formula .fl.neg").count() == 5
        ink = page.evaluate("""(() => { const c = document.getElementById('pg-weights');
            const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
            let n = 0; for (let i = 3; i < d.length; i += 4) if (d[i] > 0) n++; return n; })()""")
        assert ink > 300                                                 # the weight plot was drawn
        # the address bar is a link to what is shown; "Copy link" adds the step
        assert page.evaluate("location.search") == "?" + settings_query(settings, anchor=3)
        page.click("#pg-copy-link")
        assert page.locator("#pg-link").input_value() == url
    # click another point: the formula is written for the new anchor, and still equals the engine
    box = page.locator("#pg-canvas").bounding_box()
    x, y, pick = page.evaluate("""(() => { for (let i = 0; i < 80; i++) {
        const [x, y] = window.__pgScreen(i); const pick = window.__pgPick(x, y);
        if (pick >= 0 && pick !== 3) return [x, y, pick]; } })()""")
    page.mouse.click(box["x"] + x, box["y"] + y)
    wait_until(page, f"document.querySelector('#pg-formula').dataset.anchor === '{pick}'")
    panel = page.evaluate("Object.assign({}, document.querySelector('#pg-formula').dataset)")
    assert float(panel["loss"]) == pytest.approx(float(panel["engineLoss"]), abs=1e-4)
    assert page.evaluate("location.search") == "?" + settings_query(settings, anchor=pick)
    # another temperature: the formula follows it and still equals the engine
    page.evaluate("window.__setControls({temperature: 0.05})")
    wait_until(page, "window.__state.drawnSettings.temperature === 0.05 "
                     "&& Math.abs(window.__state.formula.temperature - 0.05) < 1e-12")
    f = page.evaluate("window.__state.formula")
    assert math.isclose(f["loss"], f["engine_loss"], abs_tol=1e-4)


def test_a_bad_link_shows_a_notice_and_uses_the_defaults(new_page, server_for):
    page = new_page()
    page.goto(server_for() + "/?temperature=9&dim=4&points=abc&bogus=1&seed=3#playground")
    wait_until(page, "document.querySelector('#pg-notice') && !document.querySelector('#pg-notice').hidden "
                     "&& window.__state.drawnSettings "
                     "&& window.__state.drawnSettings.seed === 3")
    text = page.locator("#pg-notice").inner_text()
    for words in ("temperature=9", "dim=4", "points=abc", "'bogus'", "using the default 0.1"):
        assert words in text
    s = page.evaluate("window.__state.drawnSettings")
    assert s == defaults() | {"seed": 3}
