"""Points drawn by WebGL2 (glpoints.js) in a real browser (Debian chromium, offline; its WebGL2 is SwiftShader here).

The run view's map is drawn by each path, chosen with localStorage "contrastlab.points", and each is checked pixel
by pixel against a float64 rasterization written here from the documented rule (a square of `size` device pixels
from the truncated screen position, drawn in point order, points partly outside left out); the playground's
frame at a link's step is drawn by both paths and their canvases agree. "auto" takes the pixel path on a software
renderer, as benchmarks/dashboard.py measured it to be the faster one there."""

from __future__ import annotations

import numpy as np
import pytest

from contrastlab.dashboard.controls import defaults
from contrastlab.dashboard.share import settings_query
from contrastlab.dashboard.synthetic import write_synthetic_run

from .test_playground_browser import browser, new_page, wait_until  # noqa: F401  (fixtures: offline pages)

CANVAS_PIXELS = """((c) => [c.width, c.height,
  Array.from(new Uint32Array(c.getContext('2d').getImageData(0, 0, c.width, c.height).data.buffer))])"""
MAP = "window.__runview.panes[0].scatter.canvas"


def page_with(new_page, mode):  # noqa: F811
    page = new_page()
    if mode is not None:
        page.add_init_script(f"localStorage.setItem('contrastlab.points', '{mode}')")
    return page


def canvas(page, expression):
    w, h, words = page.evaluate(CANVAS_PIXELS + f"({expression})")
    return np.array(words, np.uint64).astype(np.uint32).reshape(h, w)


def reference_map(page) -> np.ndarray:
    """The map as the rule says it is drawn, in float64 from the page's coordinates, view and colours."""
    s = page.evaluate("""(() => { const s = window.__runview.panes[0].scatter, dpr = window.devicePixelRatio || 1;
        return { xy: Array.from(s.shown), colours: Array.from(s.colours), view: s.view, dpr,
                 cw: s.canvas.width, ch: s.canvas.height }; })()""")
    xy = np.array(s["xy"], np.float32).astype(np.float64).reshape(-1, 2)
    cw, ch, dpr, view = s["cw"], s["ch"], s["dpr"], s["view"]
    k = view["k"] * dpr
    ox, oy = cw / 2 - view["x"] * k, ch / 2 + view["y"] * k
    size = max(1, min(4, int(np.floor(view["k"] / 60 * dpr + 0.5)))) + (1 if len(xy) < 5000 else 0)   # Math.round
    out = np.full((ch, cw), 0xFFFFFFFF, np.uint32)
    for (x, y), c in zip(xy, s["colours"]):
        sx, sy = int(x * k + ox), int(oy - y * k)                       # truncation, as `| 0`
        if sx < 0 or sy < 0 or sx + size > cw or sy + size > ch:
            continue
        out[sy:sy + size, sx:sx + size] = c
    return out


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    return write_synthetic_run(tmp_path_factory.mktemp("glrun") / "run", points=400, dim=8, snapshots=2, thumbnail=0)


@pytest.mark.parametrize("mode", ["webgl", "pixels"])
def test_each_point_path_draws_the_run_view_map_as_a_float64_rasterization(new_page, server_for, small_run, mode):  # noqa: F811
    page = page_with(new_page, mode)
    page.goto(server_for([small_run]) + "/#runs")
    wait_until(page, "(() => { const p = window.__runview.panes[0]; return p && p.labels && p.scatter.xy "
                     "&& p.scatter.shown === p.scatter.xy && p.scatter.from === null && window.__pointRenderer; })()")
    chosen = page.evaluate("window.__pointRenderer")
    assert chosen["mode"] == mode and chosen["want"] == mode
    page.evaluate("(() => { const s = window.__runview.panes[0].scatter; s.draw(performance.now()); })()")
    drawn, want = canvas(page, MAP), reference_map(page)
    inked = want != 0xFFFFFFFF
    assert inked.sum() > 400                                            # the points are there to compare
    same = (drawn == want).mean()
    assert same >= 0.999, f"{mode}: {100 * (1 - same):.3f}% of the map's pixels differ from the float64 rule"
    assert (drawn[inked] == want[inked]).mean() >= 0.99


def test_auto_takes_the_pixel_path_on_a_software_renderer(new_page, server_for, small_run):  # noqa: F811
    page = page_with(new_page, None)
    page.goto(server_for([small_run]) + "/#runs")
    wait_until(page, "window.__pointRenderer")
    chosen = page.evaluate("window.__pointRenderer")
    assert chosen["want"] == "auto"
    software = page.evaluate("""(() => { const gl = document.createElement('canvas').getContext('webgl2');
        if (!gl) return true; const e = gl.getExtension('WEBGL_debug_renderer_info');
        return /swiftshader|llvmpipe|software/i.test(String(e ? gl.getParameter(e.UNMASKED_RENDERER_WEBGL) : ''))})()""")
    assert chosen["mode"] == ("pixels" if software else "webgl")
    assert page.locator("#point-path").input_value() == "auto"
    with page.expect_navigation():                                      # the header's menu keeps the choice, reloads
        page.select_option("#point-path", "webgl")
    wait_until(page, "window.__pointRenderer && window.__pointRenderer.want === 'webgl'")
    assert page.evaluate("window.__pointRenderer.mode") == "webgl"
    assert page.locator("#point-path").input_value() == "webgl" and page.locator("#point-path-now").inner_text() == "(WebGL2)"


def test_the_playground_frame_is_the_same_by_webgl_and_by_pixels(new_page, server_for):  # noqa: F811
    base = server_for()
    settings = defaults() | {"points": 600, "batch_size": 32, "temperature": 0.2, "seed": 4, "dim": 3}
    url = f"{base}/?{settings_query(settings, anchor=2, step=30)}#playground"
    images = {}
    for mode in ("webgl", "pixels"):
        page = page_with(new_page, mode)
        page.goto(url)
        wait_until(page, "window.__state.drawnStep === 30 && window.__state.drawnRunning === false "
                         "&& window.__state.anchor.point === 2")
        assert page.evaluate("window.__pointRenderer.mode") == mode
        images[mode] = canvas(page, "document.getElementById('pg-canvas')")
    a, b = images["webgl"], images["pixels"]
    assert a.shape == b.shape
    assert (b != 0xFFFFFFFF).sum() > 2000                              # points, arrows and rings were drawn
    same = (a == b).mean()
    assert same >= 0.999, f"{100 * (1 - same):.3f}% of the playground canvas differs between the two paths"
