"""A sequence run in the run view (Debian chromium driven by playwright, offline): hovering a probe point shows a
small plot of that point's series where an image run shows its thumbnail, and the neighbours list plots theirs.
The plot is checked against the raw data the run trained on (the probe's rows of the test split, z-normalised per
channel with the training split's statistics as the loader does for several channels, in float64), through the
trainer's probe file, the API and the page's drawing."""
from __future__ import annotations

import numpy as np
import pytest

from tests.waves import write_waves

from .test_browser import browser, page, wait_until  # noqa: F401  (fixtures: the offline page)

HEIGHT, PAD = 64, 3                                   # seriesplot.js's canvas height and padding (CSS px)


@pytest.fixture(scope="module")
def sequence_run(tmp_path_factory):
    """A 4-step ts2vec run on 40 + 20 two-channel series of 32 steps; the raw splits beside it."""
    from contrastlab.train import Trainer, TrainConfig
    root = tmp_path_factory.mktemp("seqrun")
    path, x = write_waves(root / "waves.npz")
    cfg = TrainConfig(method="ts2vec", data=f"series:{path}", steps=4, batch_size=8, probe_size=12,
                      monitor_bank=20, monitor_every=2, encoder_options={"depth": 2, "hidden": 8, "out_dim": 16},
                      final_eval=False, threads=1)
    Trainer.from_config(cfg, root / "run", show_progress=False).fit()
    return root / "run", x[:40], x[40:]


def test_hovering_a_sequence_point_plots_its_series(page, server_for, sequence_run):  # noqa: F811
    run, x_train, x_test = sequence_run
    x_train = x_train.astype(np.float64)
    ids = np.load(run / "snapshots" / "probe.npz")["ids"]
    page.goto(server_for([run]) + "/#runs")
    wait_until(page, "(() => { const p = window.__runview.panes[0]; return p && p.series && p.index >= 0 "
                     "&& p.scatter.from === null; })()")
    assert page.evaluate("[window.__runview.panes[0].series.count, window.__runview.panes[0].series.channels, "
                         "window.__runview.panes[0].series.length]") == [12, 2, 32]
    box = page.locator("canvas.map").bounding_box()
    point = 5
    x, y = page.evaluate(f"(() => {{ const s = window.__runview.panes[0].scatter; "
                         f"return s.toScreen(s.shown[{2 * point}], s.shown[{2 * point + 1}]); }})()")
    page.mouse.move(box["x"] + x, box["y"] + y)
    wait_until(page, "!document.querySelector('.tooltip').hidden && window.__runview.panes[0].seriesPlot")
    drawn = page.evaluate("window.__runview.panes[0].seriesPlot")
    hovered = drawn["point"]                                   # the point under the mouse (a neighbour may overlap)
    assert page.locator(".tooltip img").is_hidden() and page.locator(".tooltip canvas.seriesplot").is_visible()
    raw = x_test[ids[hovered]].astype(np.float64)             # (C, T): the series the probe point stands for,
    mean, std = x_train.mean((0, 2))[:, None], x_train.std((0, 2))[:, None]  # as the model saw it: z-normalised
    raw = (raw - mean) / std                                  # per channel with the training split's statistics
    lo, hi = raw.min(), raw.max()
    expected = PAD + (1 - (raw - lo) / (hi - lo)) * (HEIGHT - 2 * PAD)
    np.testing.assert_allclose(np.array(drawn["ys"]), expected, atol=1e-3)
    assert (drawn["lo"], drawn["hi"]) == pytest.approx((lo, hi), rel=1e-6)
    inked = page.evaluate("""(() => { const c = document.querySelector('.tooltip canvas.seriesplot');
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data; let n = 0;
        for (let i = 0; i < d.length; i += 4) if (d[i] < 200 || d[i + 1] < 200 || d[i + 2] < 200) n++;
        return n; })()""")
    assert inked > 2 * 32                                      # two lines were drawn, not a blank canvas
    page.mouse.click(box["x"] + x, box["y"] + y)               # its nearest neighbours plot their series too
    wait_until(page, "document.querySelectorAll('.neighbours figure canvas.seriesplot').length === 9")
    plotted = page.evaluate("[...document.querySelectorAll('.neighbours figure canvas.seriesplot')]"
                            ".map(c => +c.dataset.point)")
    assert plotted[0] == hovered and len(set(plotted)) == 9 and not page.locator(".neighbours img").count()
