"""Two-modality (image-text) runs in the run view's server: the probe's `modality` / `pair` are checked and
exposed, thumbnails belong to image points only, and each snapshot carries the mean cosine between partners."""

import io
import warnings

import numpy as np
import pytest

with warnings.catch_warnings():
    warnings.simplefilter("ignore")                       # starlette's note about httpx vs httpx2
    from fastapi.testclient import TestClient

from contrastlab.dashboard.app import create_app
from contrastlab.dashboard.runs import RunView, pair_cosine
from contrastlab.dashboard.synthetic import write_snapshot, write_synthetic_pair_run, write_synthetic_run

P = 24


@pytest.fixture
def pair_run(tmp_path):
    return write_synthetic_pair_run(tmp_path / "clip", pairs=P, dim=12, classes=3, snapshots=4)


def probe_arrays(run):
    with np.load(run / "snapshots" / "probe.npz") as f:
        return {k: f[k] for k in f.files}


def rewrite_probe(run, **changes):
    arrays = probe_arrays(run)
    arrays.update(changes)
    for k in [k for k, v in arrays.items() if v is None]:
        del arrays[k]
    np.savez(run / "snapshots" / "probe.npz", **arrays)


def test_the_pair_info_is_exposed(pair_run):
    s = RunView(pair_run).summary()
    probe = s["probe"]
    assert s["notes"] == [] and probe["count"] == 2 * P
    assert probe["modality"] == [0] * P + [1] * P
    assert probe["pair"] == list(range(P, 2 * P)) + list(range(P))
    assert probe["images"] == P and probe["text_points"] == P
    assert probe["thumbnail_shape"] == (16, 16, 3) and probe["texts"][:P] == probe["texts"][P:]


def test_the_trainers_probe_layout_is_accepted(tmp_path):
    """The probe as `contrastlab train clip` writes it (contrastlab.rundir.RunDir.write_probe)."""
    from contrastlab.rundir import RunDir as TrainRunDir
    run = TrainRunDir(tmp_path / "clip-run")
    run.create({"method": "clip"})
    n = 5
    names = ["grinning face", "cat", "red apple", "bus", "flag: Chile"]
    thumbs = np.random.default_rng(0).integers(0, 255, (n, 8, 8, 3), dtype=np.uint8)
    run.write_probe(ids=np.tile(np.arange(n), 2), labels=np.tile(np.arange(n) % 2, 2), classes=["a", "b"],
                    texts=names + names, modality=[0] * n + [1] * n, pair=list(range(n, 2 * n)) + list(range(n)),
                    thumbnails=thumbs)
    r = RunView(run.path)
    probe = r.summary()["probe"]
    assert not [x for x in r.summary()["notes"] if "probe.npz" in x]
    assert probe["images"] == n and probe["pair"][0] == n and probe["thumbnail_shape"] == (8, 8, 3)
    np.testing.assert_array_equal(r.thumbnail(3), thumbs[3])
    assert r.thumbnail(n + 3) is None


BROKEN = {
    "pair without modality": (dict(modality=None), "`pair` without `modality`", "no modality"),
    "modality without pair": (dict(pair=None), "`modality` without `pair`", "no pair"),
    "modality too short": (dict(modality=np.zeros(P, np.int8)), "does not match ids", "no modality"),
    "modality as floats": (dict(modality=np.zeros(2 * P, np.float32)), "does not match ids", "no modality"),
    "modality as objects": (dict(modality=np.array([0, 1] * P, dtype=object)), "does not match ids", "no modality"),
    "modality 2": (dict(modality=np.array([0] * P + [2] * P, np.int8)), "must be 0 (image) or 1 (text)", "no modality"),
    "pair too long": (dict(pair=np.arange(2 * P + 1)), "does not match ids", "no pair"),
    "pair out of range": (dict(pair=np.r_[np.arange(P, 2 * P), np.arange(P)] + np.r_[np.zeros(2 * P - 1, int), 99]),
                          "must join each point", "no pair"),
    "pair negative": (dict(pair=np.r_[np.arange(P, 2 * P), np.arange(P) - 1]), "must join each point", "no pair"),
    "pair not an involution": (dict(pair=np.r_[np.arange(P, 2 * P), np.roll(np.arange(P), 1)]), "must join each point",
                               "no pair"),
    "pair to itself": (dict(pair=np.arange(2 * P)), "must join each point", "no pair"),
    "pair within a modality": (dict(pair=np.r_[np.arange(P)[::-1], np.arange(P, 2 * P)[::-1]]), "same modality",
                               "no pair"),
    "a thumbnail per point": (dict(thumbnails=np.zeros((2 * P, 16, 16, 3), np.uint8)), f"{2 * P} thumbnails for {P} "
                              "image points", "no thumbnails"),
}


@pytest.mark.parametrize("case", list(BROKEN))
def test_a_broken_pair_probe_gives_a_note_not_a_crash(pair_run, case):
    changes, note, effect = BROKEN[case]
    rewrite_probe(pair_run, **changes)
    r = RunView(pair_run)
    s = r.summary()
    probe = s["probe"]
    assert probe is not None and probe["count"] == 2 * P                     # the run is still shown
    assert any(note in n for n in s["notes"]), s["notes"]
    if effect == "no modality":
        assert "modality" not in probe and r.thumbnail(0) is None          # the thumbnails cannot be placed
    elif effect == "no pair":
        assert probe["modality"] == [0] * P + [1] * P and probe["pair"] is None
        assert r.thumbnail(0) is not None and r.thumbnail(P) is None
    else:
        assert probe["pair"] is not None and probe["thumbnail_shape"] is None and r.thumbnail(0) is None
    if effect != "no thumbnails":
        assert r.pair_cosine(0) is None
    assert r.projection(3)[2].shape == (2 * P, 2) and len(r.neighbours(3, 0)) == 10   # the map is still there
    client = TestClient(create_app([pair_run]), base_url="http://127.0.0.1")
    assert client.get("/api/runs/0").status_code == 200
    mp = client.get("/api/runs/0/snapshots/3/map")
    assert mp.status_code == 200 and ("x-pair-cosine" in mp.headers) == (effect == "no thumbnails")


def test_thumbnails_are_found_by_point_and_text_points_have_none(pair_run):
    thumbs = probe_arrays(pair_run)["thumbnails"]
    r = RunView(pair_run)
    for i in range(P):
        np.testing.assert_array_equal(r.thumbnail(i), thumbs[i])
    assert all(r.thumbnail(i) is None for i in range(P, 2 * P)) and r.thumbnail(2 * P) is None
    client = TestClient(create_app([pair_run]), base_url="http://127.0.0.1")
    from PIL import Image
    png = client.get(f"/api/runs/0/thumbnails/{P - 1}")
    assert png.status_code == 200 and png.headers["content-type"] == "image/png"
    np.testing.assert_array_equal(np.asarray(Image.open(io.BytesIO(png.content))), thumbs[P - 1])
    for point in (P, 2 * P - 1, 2 * P, 10**9, -1):                         # names, then not points at all
        assert client.get(f"/api/runs/0/thumbnails/{point}").status_code in (404, 422), point
    atlas = client.get("/api/runs/0/thumbnails")
    assert atlas.status_code == 200 and atlas.headers["x-count"] == str(P)
    assert (atlas.headers["x-height"], atlas.headers["x-width"], atlas.headers["x-channels"]) == ("16", "16", "3")
    np.testing.assert_array_equal(np.frombuffer(atlas.content, np.uint8).reshape(thumbs.shape), thumbs)


def test_thumbnails_follow_the_image_rows_when_they_are_interleaved(tmp_path):
    """Image and name rows in any order: thumbnail t belongs to the t-th image row."""
    n = 6
    run = tmp_path / "mixed"
    (run / "snapshots").mkdir(parents=True)
    modality = np.array([1, 0] * n, np.int8)                               # name, image, name, image, ...
    pair = np.arange(2 * n) ^ 1                                            # each row with its neighbour
    thumbs = np.arange(n, dtype=np.uint8)[:, None, None, None] * np.ones((1, 4, 4, 1), np.uint8)
    np.savez(run / "snapshots" / "probe.npz", ids=np.repeat(np.arange(n), 2), labels=np.zeros(2 * n, np.int64),
             modality=modality, pair=pair, thumbnails=thumbs)
    r = RunView(run)
    assert not [x for x in r.summary()["notes"] if "probe.npz" in x]
    assert [int(r.thumbnail(i)[0, 0, 0]) for i in range(1, 2 * n, 2)] == list(range(n))
    assert all(r.thumbnail(i) is None for i in range(0, 2 * n, 2))


def test_the_mean_pair_cosine_matches_numpy(pair_run, tmp_path):
    r = RunView(pair_run)
    client = TestClient(create_app([pair_run]), base_url="http://127.0.0.1")
    values = []
    for k in range(4):
        with np.load(pair_run / "snapshots" / f"step-{100 * k:08d}.npz") as f:
            z = f["embeddings"].astype(np.float64)
        want = np.mean([z[i] @ z[i + P] / (np.linalg.norm(z[i]) * np.linalg.norm(z[i + P])) for i in range(P)])
        assert r.pair_cosine(k) == pytest.approx(want, abs=1e-6)
        header = client.get(f"/api/runs/0/snapshots/{k}/map").headers["x-pair-cosine"]
        assert float(header) == pytest.approx(want, abs=1e-6)
        values.append(want)
    assert values[0] < 0.2 < 0.9 < values[-1]                              # the synthetic pairs converge
    # any row order, embeddings not normalised: each pair once, from its image
    rng = np.random.default_rng(0)
    z = rng.normal(size=(10, 5)) * rng.uniform(0.5, 3, (10, 1))
    modality = np.array([1, 0, 0, 1, 1, 0, 1, 0, 0, 1])
    pair = np.array([1, 0, 3, 2, 5, 4, 7, 6, 9, 8])
    images = [i for i in range(10) if modality[i] == 0]
    want = np.mean([z[i] @ z[pair[i]] / (np.linalg.norm(z[i]) * np.linalg.norm(z[pair[i]])) for i in images])
    assert pair_cosine(z, modality, pair) == pytest.approx(want, abs=1e-12)
    # a snapshot being written has no value yet; a later complete one has
    good = write_snapshot(pair_run, 400, rng.normal(size=(2 * P, 12)))
    data = good.read_bytes()
    good.write_bytes(data[:100])
    assert r.pair_cosine(4) is None and r.pair_cosine(9) is None
    good.write_bytes(data)
    assert r.pair_cosine(4) is not None


def test_neighbours_say_which_modality(pair_run):
    got = RunView(pair_run).neighbours(3, 0, count=2 * P - 1)
    assert {n["modality"] for n in got} == {0, 1}
    assert all(n["modality"] == (0 if n["point"] < P else 1) for n in got)


def test_runs_without_pairs_are_unchanged(tmp_path):
    run = write_synthetic_run(tmp_path / "plain", points=30, snapshots=2)
    r = RunView(run)
    s = r.summary()
    assert set(s["probe"]) == {"count", "classes", "labelled", "thumbnail_shape", "series_shape", "texts"}
    assert s["probe"]["series_shape"] is None
    assert r.pair_cosine(1) is None and "modality" not in r.neighbours(1, 0)[0]
    with np.load(run / "snapshots" / "probe.npz") as f:
        np.testing.assert_array_equal(r.thumbnail(29), f["thumbnails"][29])
    client = TestClient(create_app([run]), base_url="http://127.0.0.1")
    assert "x-pair-cosine" not in client.get("/api/runs/0/snapshots/1/map").headers
    assert client.get("/api/runs/0/thumbnails").headers["x-count"] == "30"       # one per point
    text = tmp_path / "text"
    (text / "snapshots").mkdir(parents=True)
    np.savez(text / "snapshots" / "probe.npz", ids=np.arange(3), labels=np.zeros(3, np.int64),
             texts=np.array(["a", "b", "c"]))
    assert TestClient(create_app([text]), base_url="http://127.0.0.1").get("/api/runs/0/thumbnails").status_code == 404
