"""Encoder mode in a real browser (Debian chromium driven by playwright, offline): a link to encoder-mode settings
reproduces the engine's frame at step 50 (the inputs, the held-out mask and the field where the encoder sends the
plane, against a Playground stepped here), and the input plane shows it: each grid cell coloured by its
embedding's angle (HSL, recomputed here with colorsys), every held-out point hollow."""
from __future__ import annotations

import colorsys
import math

import numpy as np

from contrastlab.dashboard.controls import defaults
from contrastlab.dashboard.playground import Playground
from contrastlab.dashboard.share import settings_query

from .test_browser import browser, page, wait_until  # noqa: F401  (fixtures: the offline page)


def _rgb(z) -> np.ndarray:                               # pginput.js directionRGB for dimension 2
    hue = (math.atan2(z[1], z[0]) / (2 * math.pi)) % 1.0
    return np.round(255 * np.array(colorsys.hls_to_rgb(hue, 0.84, 0.55)))


def test_an_encoder_link_shows_the_engines_plane_at_step_50(page, server_for):  # noqa: F811
    settings = defaults() | {"mode": "encoder", "inputs": "moons", "points": 120, "batch_size": 16, "seed": 3,
                             "noise": 0.2}
    query = settings_query(settings, anchor=0, step=50)
    ref = Playground()
    ref.load_link(query)
    want = ref.frame()
    page.goto(f"{server_for()}/?{query}#playground")
    wait_until(page, "window.__state.drawnStep === 50 && window.__state.drawnRunning === false "
                     "&& window.__pgEncoder() !== null")
    got = page.evaluate("window.__pgEncoder()")
    g, dim = got["g"], got["dim"]
    np.testing.assert_allclose(np.array(got["field"]).reshape(g * g, dim), want.field, atol=1e-6)
    np.testing.assert_array_equal(np.array(got["inputs"], np.float32).reshape(-1, 2), want.inputs)
    np.testing.assert_array_equal(np.array(got["held"]) > 0, want.held_out)
    plane = got["plane"]
    assert plane["hollow"] == int(want.held_out.sum()) == 24                # a fifth of each moon, drawn hollow
    assert page.locator("#pg-input").is_visible()
    # the cells farthest from every input (no point drawn over them), below the caption: their colour
    extent, side, dpr = got["extent"], plane["side"], page.evaluate("window.devicePixelRatio")
    centres = (np.arange(g) + 0.5) / g * 2 * extent - extent
    cx, cy = np.meshgrid(centres, centres[::-1])
    gap = np.sqrt(((np.stack([cx.ravel(), cy.ravel()], 1)[:, None] - want.inputs[None]) ** 2).sum(2)).min(1)
    rows = np.arange(g * g) // g
    gap[rows < 4] = 0                                                       # the caption's rows
    for k in np.argsort(-gap)[:5]:
        col, row = k % g, k // g
        x = round((plane["x0"] + (col + 0.5) * side / g) * dpr)
        y = round((plane["y0"] + (row + 0.5) * side / g) * dpr)
        pixel = page.evaluate(f"Array.from(document.getElementById('pg-input').getContext('2d')"
                              f".getImageData({x}, {y}, 1, 1).data)")
        assert np.abs(np.array(pixel[:3]) - _rgb(want.field[k])).max() <= 2, (k, pixel)
    assert bool(want.held_out[0]) and ref.anchor == 1                       # point 0 is held out: never an anchor,
    assert "ignored anchor=0: a held-out point" in page.locator("#pg-notice").inner_text()    # and the page says so
    page.evaluate("window.__setControls({mode: 'free'})")                                    # and back: no plane
    wait_until(page, "window.__state.drawnSettings.mode === 'free'")
    assert page.locator("#pg-input").is_hidden()
