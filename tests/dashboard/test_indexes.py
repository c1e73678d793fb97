"""The dashboard's image-index API (issue #14 item 3): `contrastlab dashboard RUN --index IDX` lists the index and
the run that built it, serves its thumbnails and each image's nearest neighbours -- checked against an exact
float64 cosine top-k of the images' embeddings, the query left out -- and answers every bad request with a 4xx
and a message naming the parameter."""
from __future__ import annotations

import io
import subprocess
import sys
import warnings

import numpy as np
import pytest
from PIL import Image

with warnings.catch_warnings():
    warnings.simplefilter("ignore")                       # starlette's note about httpx vs httpx2
    from fastapi.testclient import TestClient

from contrastlab.cli.dashboard import register
from contrastlab.dashboard.app import create_app
from contrastlab.dashboard.indexes import open_indexes
from contrastlab.dashboard.server import dashboard
from contrastlab.search.indexing import build_index

from .indexfixtures import write_index_and_run


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    root = tmp_path_factory.mktemp("dash-index")
    run, idx, x, labels, embedder = write_index_and_run(root)
    (root / "other").mkdir()
    # the run is served under a path that is not the resolved one: it is still recognised as the index's run
    app = create_app([root / "other", root / "other" / ".." / "run"], indexes=open_indexes([idx]))
    return TestClient(app, base_url="http://127.0.0.1"), run, idx, x, labels, embedder


def reference(z: np.ndarray, p: int, k: int):
    """float64 exact cosine top-k of row p among the rows of z, row p left out: (scores, rows)."""
    z = z / np.linalg.norm(z, axis=1, keepdims=True)
    s = z @ z[p]
    s[p] = -np.inf
    rows = np.argsort(-s, kind="stable")[:k]
    return s[rows], rows


def test_the_index_is_listed_with_the_run_that_built_it(served):
    client, run, idx, *_ = served
    assert client.get("/api/info").json()["indexes"] == 1
    (got,) = client.get("/api/indexes").json()
    assert got["id"] == 0 and got["folder"] == "idx" and got["embedder"] == str(run.resolve())
    assert got["run"] == 1 and got["run_step"] == 7
    assert got["collections"] == [{"name": "images", "count": 75, "labels": True}]
    alone = TestClient(create_app([], indexes=open_indexes([idx])), base_url="http://127.0.0.1")
    assert alone.get("/api/indexes").json()[0]["run"] is None            # its run is not served
    assert TestClient(create_app([]), base_url="http://127.0.0.1").get("/api/indexes").json() == []


@pytest.mark.parametrize("position,k", [(0, 1), (5, 10), (74, 30), (33, 74), (12, 100)])
def test_neighbours_equal_an_exact_float64_cosine_top_k_without_the_query(served, position, k):
    client, _, _, x, labels, embedder = served
    r = client.get("/api/indexes/0/images/neighbours", params={"position": position, "k": k})
    assert r.status_code == 200
    got = r.json()
    want_scores, want_rows = reference(embedder.reference(x), position, min(k, 74))
    assert got["k"] == k and got["query"]["position"] == position and got["query"]["id"] == f"img-{position:03d}"
    assert got["query"]["label"] == labels[position]
    assert [n["position"] for n in got["neighbours"]] == want_rows.tolist()
    assert [n["id"] for n in got["neighbours"]] == [f"img-{j:03d}" for j in want_rows]
    np.testing.assert_allclose([n["score"] for n in got["neighbours"]], want_scores, atol=1e-5)
    assert [n["label"] for n in got["neighbours"]] == [labels[j] for j in want_rows]
    same = [labels[j] == labels[position] for j in want_rows]
    assert [n["same_label"] for n in got["neighbours"]] == same and got["same_label"] == sum(same)
    assert got["neighbours"][0]["thumbnail"] == f"/api/indexes/0/images/thumbnails/{want_rows[0]}.png"


def test_rows_and_thumbnails_are_the_images_indexed(served):
    client, _, _, x, labels, _ = served
    page = client.get("/api/indexes/0/images/rows", params={"offset": 60, "limit": 60}).json()
    assert page["count"] == 75 and page["offset"] == 60 and page["labels"] is True
    assert [r["position"] for r in page["rows"]] == list(range(60, 75))
    assert [r["label"] for r in page["rows"]] == labels[60:]
    for p in (0, 61):
        r = client.get(page["rows"][1]["thumbnail"] if p == 61 else "/api/indexes/0/images/thumbnails/0.png")
        assert r.status_code == 200 and r.headers["content-type"] == "image/png"
        pixels = np.asarray(Image.open(io.BytesIO(r.content)).convert("L"))
        np.testing.assert_array_equal(pixels, x[p, 0])                  # the 8x8 image itself, gray


NOT_THERE = [
    ("/api/indexes/1/images/neighbours?position=0", 404, "no index 1: indexes are numbered 0 to 0"),
    ("/api/indexes/-1/images/rows", 404, "no index -1: indexes are numbered 0 to 0"),
    ("/api/indexes/x/images/rows", 422, "`index` must be an integer, got 'x'"),
    ("/api/indexes/0.5/images/thumbnails/0.png", 422, "`index` must be an integer, got '0.5'"),
    ("/api/indexes/0/names/neighbours?position=0", 404,
     "index 0 has no image collection 'names': its image collections are 'images'"),
    ("/api/indexes/0/..%2F..%2Fetc/rows", 404, None),
    ("/api/indexes/0/images/neighbours", 422, "`position` is required: the query image, a row of collection "
                                              "'images', an integer in [0, 74]"),
    ("/api/indexes/0/images/neighbours?position=75", 404,
     "`position` must be in [0, 74] (the query image, a row of collection 'images'), got 75"),
    ("/api/indexes/0/images/neighbours?position=-1", 404, "`position` must be in [0, 74]"),
    ("/api/indexes/0/images/neighbours?position=1.5", 422, "`position` must be an integer, got '1.5'"),
    ("/api/indexes/0/images/neighbours?position=%EF%BC%91", 422, "`position` must be an integer, got '１'"),
    ("/api/indexes/0/images/neighbours?position=3&k=0", 422,
     "`k` must be in [1, 100] (how many neighbours), got 0"),
    ("/api/indexes/0/images/neighbours?position=3&k=101", 422,
     "`k` must be in [1, 100] (how many neighbours), got 101"),
    ("/api/indexes/0/images/neighbours?position=3&k=ten", 422, "`k` must be an integer, got 'ten'"),
    ("/api/indexes/0/images/neighbours?position=3&k=", 422, "`k` must be an integer, got ''"),
    ("/api/indexes/0/images/thumbnails/75.png", 404,
     "`position` must be in [0, 74] (a row of collection 'images'), got 75"),
    ("/api/indexes/0/images/thumbnails/3", 404, "thumbnails are named POSITION.png, got '3'"),
    ("/api/indexes/0/images/thumbnails/a.png", 422, "`position` must be an integer, got 'a'"),
    ("/api/indexes/0/images/rows?offset=75", 404,
     "`offset` must be in [0, 74] (the first row of the page, a row of collection 'images'), got 75"),
    ("/api/indexes/0/images/rows?limit=0", 422, "`limit` must be in [1, 500] (rows in a page), got 0"),
    ("/api/indexes/0/images/rows?limit=501", 422, "`limit` must be in [1, 500] (rows in a page), got 501"),
    ("/api/indexes/0/images/rows?offset=x", 422, "`offset` must be an integer, got 'x'"),
]


@pytest.mark.parametrize("url,status,message", NOT_THERE)
def test_bad_requests_get_a_4xx_and_a_precise_message(served, url, status, message):
    r = served[0].get(url)
    assert r.status_code == status, r.text
    if message is not None:
        assert message in r.json()["error"]


def test_no_index_served_is_said_so(served):
    r = TestClient(create_app([]), base_url="http://127.0.0.1").get("/api/indexes/0/images/rows")
    assert r.status_code == 404 and r.json()["error"] == "no index 0: no index is served (start with --index IDX)"


def test_a_folder_that_cannot_be_opened_or_holds_no_images_is_refused(tmp_path, capsys):
    with pytest.raises(ValueError, match=r"--index .*nowhere: cannot open this index folder: "):
        open_indexes([tmp_path / "nowhere"])

    class Letters:                                   # a text embedder: counts of a, b, c
        dim = 3

        def encode(self, texts, *, batch_size=256):
            z = np.array([[t.count(c) + 0.1 for c in "abc"] for t in texts], np.float32)
            return z / np.linalg.norm(z, axis=1, keepdims=True)
    build_index(Letters(), corpus=(["a", "b"], ["aab", "cab"])).save(tmp_path / "texts")
    with pytest.raises(ValueError, match=r"--index .*texts: this index has no image collection with thumbnails "
                                         r"\(it holds texts \(text\)\)"):
        open_indexes([tmp_path / "texts"])
    # the command says so and stops before it takes the port
    assert dashboard([], indexes=[tmp_path / "texts"], port=0, open_browser=False) == 2
    assert "contrastlab dashboard: --index" in capsys.readouterr().err


def test_the_cli_passes_indexes_and_the_dashboard_loads_faiss_only_for_them(tmp_path):
    import argparse
    parser = argparse.ArgumentParser(prog="contrastlab")
    register(parser.add_subparsers(dest="command"), parser)
    args = parser.parse_args(["dashboard", "r", "--index", "a", "--index", "b"])
    assert [str(p) for p in args.indexes] == ["a", "b"]
    code = ("import sys; from contrastlab.dashboard.app import create_app; create_app(['r']); "
            "print('faiss' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_the_panel_script_is_served_and_no_client_string_becomes_a_path(served, server_for):
    """Raw requests against a live server (no client-side URL normalisation): nothing beside the index leaks."""
    import http.client
    from urllib.parse import urlsplit
    client, run, idx, *_ = served
    assert client.get("/static/indexview.js").status_code == 200
    secret = "s3cr3t-beside-the-index"
    (idx.parent / "secret.txt").write_text(secret)
    base = urlsplit(server_for([run], indexes=open_indexes([idx])))
    for path in ["/api/indexes/0/..%2Fsecret.txt/rows", "/api/indexes/0/images/thumbnails/..%2F..%2Fsecret.txt",
                 "/api/indexes/0/images/thumbnails/..%2Fmeta.json%00.png", "/api/indexes/..%2Fsecret.txt/images/rows",
                 "/api/indexes/0/images/../../../secret.txt", "/api/indexes/0/images/neighbours?position=../secret.txt",
                 "/api/indexes/0/%2E%2E/thumbnails/0.png"]:
        conn = http.client.HTTPConnection(base.hostname, base.port, timeout=10)
        conn.putrequest("GET", path, skip_accept_encoding=True)
        conn.endheaders()
        resp = conn.getresponse()
        body = resp.read().decode("latin-1")
        conn.close()
        assert resp.status in (400, 404, 422) and secret not in body, (path, resp.status)
