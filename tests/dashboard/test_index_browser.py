"""The run view's Index panel in a real browser (Debian chromium driven by playwright, offline: every request that
does not go to 127.0.0.1 fails the test): with `--index IDX` built from the run shown, the panel offers that index,
pages through its thumbnails (drawn enlarged, pixelated), and clicking one shows it with the neighbours the API
returns, those of its label marked."""
from __future__ import annotations

import json
import urllib.request

import pytest

from contrastlab.dashboard.indexes import open_indexes

from .indexfixtures import write_index_and_run
from .test_browser import browser, page, wait_until  # noqa: F401  (fixtures: the offline page)


def test_the_index_panel_opens_an_image_and_shows_its_neighbours(page, server_for, tmp_path):  # noqa: F811
    run, idx, _, labels, _ = write_index_and_run(tmp_path, count=75)
    other = tmp_path / "elsewhere"
    base = server_for([other, run], indexes=open_indexes([idx]))
    page.goto(base + "/#runs")
    wait_until(page, "window.__runview.ready && window.__indexview.ready")
    panel = page.locator("#rv-index")
    summary = panel.locator(".ixsummary")
    assert "idx: 75 images, built from run 1: run at step 7" in summary.inner_text()
    assert "the run shown" not in summary.inner_text()                              # run 0 is shown
    page.locator("#rv-run-a").select_option("1")                                      # the run that built it
    wait_until(page, "document.querySelector('#rv-index .ixsummary').textContent.includes('(the run shown)')")
    page.locator("#rv-index > summary").click()                                       # open the panel
    wait_until(page, "window.__indexview.pagesShown === 1")
    grid = panel.locator(".ixgrid .ixthumb")
    assert grid.count() == 60 and "images 1–60 of 75" in panel.locator(".ixpage").inner_text()
    assert grid.nth(4).get_attribute("title") == f"#4 img-004 · {labels[4]}"            # the label on hover
    wait_until(page, "[...document.querySelectorAll('#rv-index .ixthumb img')].every(i => i.complete "
                     "&& i.naturalWidth === 8)")                                      # every thumbnail arrived
    looks = page.evaluate("""(() => { const img = document.querySelector('#rv-index .ixthumb img');
        return [getComputedStyle(img).imageRendering, img.clientWidth]; })()""")
    assert looks[0] == "pixelated" and looks[1] >= 4 * 8                               # 8x8, drawn enlarged
    panel.locator(".ixnext").click()                                                   # the second page
    wait_until(page, "window.__indexview.pagesShown === 2")
    assert grid.count() == 15 and panel.locator(".ixnext").is_disabled()
    panel.locator(".ixthumb[data-position='62']").click()                              # open an image
    wait_until(page, "window.__indexview.shown && window.__indexview.shown.query.position === 62")
    with urllib.request.urlopen(f"{base}/api/indexes/0/images/neighbours?position=62&k=10") as r:
        want = json.load(r)
    shown = panel.locator(".ixneighbour")
    assert shown.count() == 10
    assert [int(p) for p in shown.evaluate_all("fs => fs.map(f => f.dataset.position)")] == \
        [n["position"] for n in want["neighbours"]]
    captions = shown.locator("figcaption").all_inner_texts()
    for text, n in zip(captions, want["neighbours"]):
        score, label = text.split("\n")
        assert float(score) == pytest.approx(n["score"], abs=6e-4) and label.endswith(n["label"])
    marked = shown.evaluate_all("fs => fs.map(f => f.classList.contains('same'))")
    assert marked == [n["label"] == labels[62] for n in want["neighbours"]]
    assert panel.locator(".ixsame").inner_text() == f"{want['same_label']} of 10"
    assert panel.locator(".ixquery img").get_attribute("src") == "/api/indexes/0/images/thumbnails/62.png"
    wait_until(page, "document.querySelector('#rv-index .ixquery img').naturalWidth === 8")
