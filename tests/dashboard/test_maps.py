"""t-SNE and UMAP maps: finite (P, 2) maps from the real libraries, each continuing the previous one;
computed in the background with progress the page can show; a method switch stops the one before;
a failure is a clear 422, never a 500."""

import threading
import warnings

import numpy as np
import pytest

with warnings.catch_warnings():
    warnings.simplefilter("ignore")                       # starlette's note about httpx vs httpx2
    from fastapi.testclient import TestClient

from contrastlab.dashboard import maps, projection
from contrastlab.dashboard.app import create_app
from contrastlab.dashboard.projection import MIN_POINTS, available_methods, nearest_neighbours, project
from contrastlab.dashboard.synthetic import write_snapshot, write_synthetic_run

SAFETY = 120.0                                            # seconds: only a net under a hung computation
pytestmark = pytest.mark.filterwarnings("ignore:precomputed_knn")    # we give UMAP its neighbours, no index


def clusters(points: int, dim: int, *, spread: float, seed: int = 0):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 4, points)
    centres = rng.normal(size=(4, dim)) * 3
    x = centres[labels] + spread * rng.normal(size=(points, dim))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32), labels


def knn_label_agreement(y: np.ndarray, labels: np.ndarray, k: int = 10) -> float:
    d = ((y[:, None] - y[None]) ** 2).sum(-1)
    np.fill_diagonal(d, np.inf)
    return float((labels[np.argsort(d, 1)[:, :k]] == labels[:, None]).mean())


def distance_correlation(a: np.ndarray, b: np.ndarray) -> float:
    iu = np.triu_indices(a.shape[0], 1)
    da = np.linalg.norm(a[:, None] - a[None], axis=-1)[iu]
    db = np.linalg.norm(b[:, None] - b[None], axis=-1)[iu]
    return float(np.corrcoef(da, db)[0, 1])


def test_both_projections_are_installed_by_default():
    assert available_methods() == {"pca": True, "tsne": True, "umap": True}


@pytest.mark.parametrize("method", ["tsne", "umap"])
def test_tsne_and_umap_give_finite_maps_that_continue_the_previous_one(method):
    x0, labels = clusters(400, 24, spread=0.6)
    first = project(x0, method=method)
    assert first.shape == (400, 2) and first.dtype == np.float32 and np.isfinite(first).all()
    assert knn_label_agreement(first, labels) > 0.9                      # the clusters are found
    x1 = x0 + 0.02 * np.random.default_rng(1).normal(size=x0.shape).astype(np.float32)
    fractions = []
    nxt = project(x1, method=method, previous=first, progress=lambda f: fractions.append(f) and False)
    assert nxt.shape == (400, 2) and np.isfinite(nxt).all()
    assert distance_correlation(first, nxt) > 0.9                        # the map moved little: it continued
    assert fractions and fractions[-1] == 1.0 and all(0 <= f <= 1 for f in fractions)


def test_a_projection_stops_when_its_progress_callback_says_so():
    x, _ = clusters(200, 8, spread=0.5)
    calls = []
    with pytest.raises(projection.Cancelled):
        project(x, method="tsne", progress=lambda f: calls.append(f) or len(calls) >= 2)
    assert len(calls) == 2                                               # stopped at the second report


def test_too_few_points_or_a_wrong_previous_map_are_clear_errors():
    for method in ("tsne", "umap"):
        with pytest.raises(ValueError, match=f"needs at least {MIN_POINTS} points, got 5"):
            project(np.eye(5, 3, dtype=np.float32), method=method)
    with pytest.raises(ValueError, match=r"`previous` must be a \(20, 2\) map"):
        project(np.ones((20, 3), np.float32), method="tsne", previous=np.zeros((19, 2), np.float32))


def test_nearest_neighbours_are_exact_and_start_with_the_point_itself():
    x = np.random.default_rng(0).normal(size=(300, 7)).astype(np.float32)
    x[10] = x[11]                                                        # duplicates: each still first
    idx, dist = nearest_neighbours(x, 6, chunk=64)
    d = np.linalg.norm(x[:, None] - x[None], axis=-1)
    np.fill_diagonal(d, -1)
    ref = np.argsort(d, 1, kind="stable")[:, :6]
    assert (idx[:, 0] == np.arange(300)).all() and dist[:, 0].max() < 1e-3
    np.testing.assert_allclose(dist[:, 1:], np.sort(d, 1)[:, 1:6], rtol=1e-4, atol=1e-4)
    assert (idx[:, 1:] == ref[:, 1:]).mean() > 0.99                     # the same neighbours (ties aside)


class Gate:
    """A stand-in for t-SNE that reports half its progress, then waits until the test lets it finish."""

    def __init__(self):
        self.entered, self.release = threading.Event(), threading.Event()
        self.previous = []

    def __call__(self, x, previous, progress):
        self.previous.append(None if previous is None else previous.copy())
        if progress is not None:
            progress(0.5)
        self.entered.set()
        assert self.release.wait(SAFETY)
        if progress is not None and progress(1.0):
            raise projection.Cancelled
        return x[:, :2] + (0 if previous is None else previous)


@pytest.fixture
def run_app(tmp_path):
    run = write_synthetic_run(tmp_path / "run", points=40, dim=8, snapshots=3)
    app = create_app([run])
    return run, app, TestClient(app, base_url="http://127.0.0.1")


def test_slow_maps_are_computed_in_the_background_and_report_progress(run_app, monkeypatch):
    run, app, client = run_app
    gate = Gate()
    monkeypatch.setattr(projection, "_tsne", gate)
    r = client.get("/api/runs/0/snapshots/2/map", params={"method": "tsne"})
    assert r.status_code == 202 and r.headers["cache-control"] == "no-store"
    assert r.json()["state"] == "computing" and r.json()["total"] == 3 and r.json()["label"] == "t-SNE"
    assert gate.entered.wait(SAFETY)
    p = client.get("/api/runs/0/snapshots/2/map", params={"method": "tsne"}).json()
    assert (p["done"], p["fraction"], p["message"]) == (0, 0.5, "computing t-SNE: snapshot 1 of 3")
    assert client.get("/api/runs/0/snapshots/2/map").status_code == 200      # PCA meanwhile: at once
    gate.release.set()
    assert app.state.runs[0].maps.wait(2, "tsne", SAFETY).state == "ready"
    got = client.get("/api/runs/0/snapshots/2/map", params={"method": "tsne"})
    assert got.status_code == 200 and got.headers["x-step"] == "200"
    xy = np.frombuffer(got.content, "<f4").reshape(40, 2)
    assert gate.previous[0] is None and len(gate.previous) == 3          # the chain, in order, once
    maps_ = [app.state.runs[0].projection(k, method="tsne")[2] for k in range(3)]
    for k in (1, 2):
        np.testing.assert_array_equal(gate.previous[k], maps_[k - 1])    # each from the previous map
    np.testing.assert_array_equal(xy, maps_[2])
    write_snapshot(run, 100, np.random.default_rng(5).normal(size=(40, 8)))   # snapshot 1 rewritten (resume)
    gate.previous.clear()
    assert app.state.runs[0].projection(2, method="tsne") is not None
    assert len(gate.previous) == 2 and gate.previous[0] is not None      # 1 and 2 again, 0 kept


def test_asking_for_another_method_stops_the_one_before(run_app, monkeypatch):
    _, app, client = run_app
    gate = Gate()
    monkeypatch.setattr(projection, "_tsne", gate)
    monkeypatch.setattr(projection, "_umap", lambda x, previous, progress: x[:, :2].copy())
    assert client.get("/api/runs/0/snapshots/2/map", params={"method": "tsne"}).status_code == 202
    assert gate.entered.wait(SAFETY)
    assert client.get("/api/runs/0/snapshots/2/map", params={"method": "umap"}).status_code == 202
    gate.release.set()                                                   # t-SNE sees it is unwanted and stops
    chains = app.state.runs[0].maps
    assert chains.wait(2, "umap", SAFETY).state == "ready" and chains.computed("umap") == 3
    assert chains.computed("tsne") == 0 and len(gate.previous) == 1     # nothing more, nothing kept


def test_a_failed_projection_is_a_422_with_the_reason(run_app, monkeypatch):
    _, app, client = run_app

    def broken(x, previous, progress):
        raise RuntimeError("numba is unhappy")
    monkeypatch.setattr(projection, "_umap", broken)
    assert client.get("/api/runs/0/snapshots/1/map", params={"method": "umap"}).status_code == 202
    assert app.state.runs[0].maps.wait(1, "umap", SAFETY).state == "error"
    r = client.get("/api/runs/0/snapshots/1/map", params={"method": "umap"})
    assert r.status_code == 422
    assert r.json()["error"] == "UMAP failed on snapshot 1: RuntimeError: numba is unhappy"


def test_the_real_projections_run_in_the_background_on_a_run(tmp_path):
    """End to end with openTSNE and umap-learn: every snapshot of a small run gets a finite map."""
    run = write_synthetic_run(tmp_path / "run", points=120, dim=16, classes=3, snapshots=3)
    client = TestClient(create_app([run]), base_url="http://127.0.0.1")
    chains = client.app.state.runs[0].maps
    for method in ("tsne", "umap"):
        client.get("/api/runs/0/snapshots/2/map", params={"method": method})
        assert chains.wait(2, method, SAFETY).state == "ready"
        for k in range(3):
            r = client.get(f"/api/runs/0/snapshots/{k}/map", params={"method": method})
            xy = np.frombuffer(r.content, "<f4")
            assert r.status_code == 200 and xy.shape == (240,) and np.isfinite(xy).all()
    assert maps.FAST_METHODS == {"pca"}
