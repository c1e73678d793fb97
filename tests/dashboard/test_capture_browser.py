"""Share what you see (issue #17), in a real browser (Debian chromium driven by playwright, offline): a panel's PNG
holds exactly what its canvases show (checked against the browser's own screenshot of the canvas, decoded with
Pillow), and the last frames of the playground and of a run's map become a WebM that the browser downloads and
decodes again (its EBML header, its frame size in a <video>)."""
from __future__ import annotations

import io

import numpy as np
from PIL import Image

from contrastlab.dashboard.synthetic import write_synthetic_run

from .test_browser import browser, page, wait_until  # noqa: F401  (fixtures: the offline page)

EBML = bytes.fromhex("1a45dfa3")                       # the first four bytes of every WebM (Matroska) file


def _png(download) -> np.ndarray:
    return np.asarray(Image.open(download.path()).convert("RGB"), np.int16)


def test_a_paused_playground_panel_saves_as_the_png_of_what_it_shows(page, server_for):  # noqa: F811
    page.goto(server_for() + "/#playground")
    wait_until(page, "window.__frames > 5")
    page.click("#pg-pause")
    wait_until(page, "window.__state.drawnRunning === false")
    stage = page.locator("section.stage")
    with page.expect_download() as got:
        stage.locator("button.capture.png").click()
    assert got.value.suggested_filename.startswith("playground-") and got.value.suggested_filename.endswith(".png")
    png = _png(got.value)
    box, canvas = stage.bounding_box(), page.locator("#pg-canvas").bounding_box()
    dpr = page.evaluate("window.devicePixelRatio")
    assert png.shape[:2] == (round(box["height"] * dpr), round(box["width"] * dpr))
    shot = np.asarray(Image.open(io.BytesIO(page.locator("#pg-canvas").screenshot())).convert("RGB"), np.int16)
    top, left = round((canvas["y"] - box["y"]) * dpr), round((canvas["x"] - box["x"]) * dpr)
    region = png[top:top + shot.shape[0], left:left + shot.shape[1]]
    assert region.shape == shot.shape
    assert np.abs(region - shot).mean() < 3.0                      # the same picture (resampling aside)
    assert (np.abs(shot - 255).sum(2) > 60).mean() > 0.01          # and a picture with something in it
    side = page.locator("section.side")
    with page.expect_download() as got:
        side.locator("button.capture.png").click()                 # the other panel: heatmap, formula plot, curves
    assert _png(got.value).shape[:2] == (round(side.bounding_box()["height"] * dpr),
                                         round(side.bounding_box()["width"] * dpr))


def _recorded(page, host: str, ring: int):
    wait_until(page, f"window.__rings[{ring}] && window.__rings[{ring}].kept >= 60")    # 3 s of frames kept
    with page.expect_download() as got:
        page.locator(f"{host} button.capture.webm").click()
    name = got.value.suggested_filename
    data = open(got.value.path(), "rb").read()
    assert name.endswith(".webm") and data[:4] == EBML and len(data) > 1000
    entry = page.evaluate("window.__exports.filter(e => e.kind === 'webm').map(e => [e.frames, e.width, e.height])"
                          ".at(-1)")
    assert entry[0] == 60
    size = wait_until(page, f"(() => {{ const v = document.querySelector('{host} video.capture-preview'); "
                            "return v && v.readyState >= 1 && [v.videoWidth, v.videoHeight]; })()")
    assert size == entry[1:]                                       # the browser decodes it at the size recorded
    page.evaluate(f"""(() => {{ const v = document.querySelector('{host} video.capture-preview'); window.__seen = null;
        v.addEventListener('seeked', () => {{ const c = document.createElement('canvas');
          c.width = v.videoWidth; c.height = v.videoHeight; const x = c.getContext('2d'); x.drawImage(v, 0, 0);
          const d = x.getImageData(0, 0, c.width, c.height).data; let ink = 0;
          for (let i = 0; i < d.length; i += 4) if (d[i] + d[i + 1] + d[i + 2] < 600) ink++;
          window.__seen = [v.duration, ink / (d.length / 4)]; }}, {{ once: true }});
        v.currentTime = 1.5; }})()""")
    duration, ink = wait_until(page, "window.__seen")
    assert duration > 2.0 and 0.002 < ink < 0.5                    # about 3 s of the picture, not a blank video
    return name


def test_the_playground_records_its_last_frames_as_a_webm(page, server_for):  # noqa: F811
    page.goto(server_for() + "/#playground")
    assert _recorded(page, "section.stage", 0).startswith("playground-")


def test_a_run_map_saves_as_png_and_records_while_it_plays(page, server_for, tmp_path):  # noqa: F811
    run = write_synthetic_run(tmp_path / "my run", points=80, dim=8, classes=3, snapshots=6)
    page.goto(server_for([run]) + "/#runs")
    wait_until(page, "window.__runview.panes.length === 1 && window.__runview.panes[0].index === 5")
    pane = page.locator("section.pane")
    with page.expect_download() as got:
        pane.locator("button.capture.png").click()
    assert got.value.suggested_filename.startswith("run-my_run-")           # the name made safe for a file
    dpr = page.evaluate("window.devicePixelRatio")
    assert _png(got.value).shape[:2] == (round(pane.bounding_box()["height"] * dpr),
                                         round(pane.bounding_box()["width"] * dpr))
    while page.evaluate("window.__rings[0].kept") < 60:                     # play (and replay) to draw frames
        page.click("section.pane .play")
        wait_until(page, "window.__runview.panes[0].playing === null")
    assert _recorded(page, "section.pane", 0).startswith("run-my_run-")
