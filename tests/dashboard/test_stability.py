"""Maps that stay put: the Procrustes displacement against scipy's, warm-started t-SNE / UMAP chains move
less than maps computed independently, the same input gives the same map, and a probe set too small
for t-SNE is a 422 that names the rule."""

import warnings

import numpy as np
import pytest
from scipy.spatial import procrustes as scipy_procrustes

with warnings.catch_warnings():
    warnings.simplefilter("ignore")                       # starlette's note about httpx vs httpx2
    from fastapi.testclient import TestClient

from contrastlab.dashboard.app import create_app
from contrastlab.dashboard.projection import project
from contrastlab.dashboard.stability import chain_displacements, procrustes_displacement, tightening_snapshots
from contrastlab.dashboard.synthetic import write_synthetic_run

pytestmark = pytest.mark.filterwarnings("ignore:precomputed_knn")


def test_displacement_agrees_with_scipy_procrustes():
    rng = np.random.default_rng(3)
    a = rng.normal(size=(60, 2))
    b = 0.4 * a[:, ::-1] + 0.3 * rng.normal(size=(60, 2)) + 2.0        # reflected, scaled, shifted, noisy
    m1, m2, _ = scipy_procrustes(a, b)                                   # both at Frobenius norm 1
    reference = np.sqrt(60) * np.linalg.norm(m1 - m2, axis=1).mean()     # ours: RMS radius 1
    assert procrustes_displacement(a, b) == pytest.approx(reference, rel=1e-9)
    with pytest.raises(ValueError, match=r"`a` and `b` must be maps of the same shape \(P, 2\), got \(60, 2\)"):
        procrustes_displacement(a, b[:59])


@pytest.mark.parametrize("method", ["tsne", "umap"])
def test_the_same_snapshot_gives_the_same_map(method):
    x = tightening_snapshots(120, 12, 1, tighten=0.3)[0]
    np.testing.assert_array_equal(project(x, method=method), project(x.copy(), method=method))


@pytest.mark.parametrize("method", ["tsne", "umap"])
def test_warm_started_maps_move_less_than_independent_ones(method):
    snapshots = tightening_snapshots(150, 16, 3, tighten=0.3)
    warm = chain_displacements(snapshots, method=method, warm=True)
    cold = chain_displacements(snapshots, method=method, warm=False)
    assert len(warm) == len(cold) == 2
    assert np.mean(warm) < 0.8 * np.mean(cold)


def test_a_probe_set_too_small_for_tsne_is_a_422_that_says_why(tmp_path):
    run = write_synthetic_run(tmp_path / "run", points=5, dim=8, snapshots=2)
    client = TestClient(create_app([run]), base_url="http://127.0.0.1")
    client.get("/api/runs/0/snapshots/1/map", params={"method": "tsne"})
    assert client.app.state.runs[0].maps.wait(1, "tsne", 120.0).state == "error"
    r = client.get("/api/runs/0/snapshots/1/map", params={"method": "tsne"})
    assert r.status_code == 422
    assert r.json()["error"] == ("t-SNE failed on snapshot 1: ValueError: t-SNE needs at least 8 points, got 5: "
                                 "use PCA")
    assert client.get("/api/runs/0/snapshots/1/map").status_code == 200          # PCA still draws
