"""Reading run directories while they are written: states, partial files, metrics, maps, neighbours;
projections against scikit-learn's PCA."""

import json
import os
import socket
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from sklearn.decomposition import PCA

from contrastlab.dashboard.projection import available_methods, pca_2d, procrustes, project
from contrastlab.dashboard.runs import RunView
from contrastlab.dashboard.synthetic import append_metrics, write_snapshot, write_synthetic_run


def test_missing_empty_and_unknown_runs_say_so(tmp_path):
    assert RunView(tmp_path / "nope").summary()["state"] == "missing"
    (tmp_path / "empty").mkdir()
    s = RunView(tmp_path / "empty").summary()
    assert s["state"] == "empty" and s["snapshots"] == [] and s["probe"] is None
    (tmp_path / "cfg").mkdir()
    (tmp_path / "cfg" / "config.json").write_text('{"method": "simclr"}')
    s = RunView(tmp_path / "cfg").summary()
    assert s["state"] == "unknown" and s["config"] == {"method": "simclr"}
    assert any("status.json" in n for n in s["notes"]) and any("probe.npz" in n for n in s["notes"])


def test_states_from_status_and_stale_runs(tmp_path):
    run = write_synthetic_run(tmp_path / "r", points=20, snapshots=2, state="running")
    s = RunView(run).summary()
    assert s["state"] == "running" and [x["step"] for x in s["snapshots"]] == [0, 100]
    assert s["probe"]["count"] == 20 and s["probe"]["labelled"] and s["probe"]["thumbnail_shape"] == (16, 16, 1)
    (run / "status.json").write_text(json.dumps({"state": "running", "step": 5, "updated": time.time() - 3600}))
    assert any("no status update" in n for n in RunView(run).summary()["notes"])
    gone = subprocess.Popen([sys.executable, "-c", "pass"])                  # a trainer process that has ended
    gone.wait()
    (run / "status.json").write_text(json.dumps({"state": "running", "step": 5, "updated": time.time(),
                                                 "pid": gone.pid, "host": socket.gethostname()}))
    s = RunView(run).summary()
    assert s["state"] == "stopped" and any("ended without a final status" in n for n in s["notes"])
    (run / "status.json").write_text('{"state": "runn')                      # half-written
    assert RunView(run).summary()["state"] == "unknown"
    (run / "config.json").write_text("{not json")
    assert "config.json is unreadable" in RunView(run).summary()["notes"]


def test_metrics_are_read_incrementally_and_a_partial_last_line_waits(tmp_path):
    run = tmp_path / "r"
    run.mkdir()
    r = RunView(run)
    assert r.read_metrics(0) == {"records": [], "offset": 0, "skipped": 0, "restart": False}
    with open(run / "metrics.jsonl", "w") as f:
        f.write('{"kind": "train", "step": 1, "loss": 5.0}\n')
        f.write("garbage line\n")
        f.write('{"kind": "train", "step": 2, "loss": NaN}\n')
        f.write('[1, 2]\n')
        f.write('{"kind": "monitor", "step": 2, "knn_to')                  # being written
    got = r.read_metrics(0)
    assert [x["step"] for x in got["records"]] == [1, 2] and got["records"][1]["loss"] is None
    assert got["skipped"] == 2
    with open(run / "metrics.jsonl", "a") as f:
        f.write('p1": 0.5}\n')
    more = r.read_metrics(got["offset"])
    assert more["records"] == [{"kind": "monitor", "step": 2, "knn_top1": 0.5}]
    assert more["offset"] == os.path.getsize(run / "metrics.jsonl")
    assert r.read_metrics(more["offset"])["records"] == []
    (run / "metrics.jsonl").write_text('{"step": 9}\n')                      # replaced by a shorter file
    again = r.read_metrics(more["offset"])
    assert again["restart"] and again["records"] == [{"step": 9}]


def test_unreadable_snapshots_are_not_there_yet(tmp_path):
    run = write_synthetic_run(tmp_path / "r", points=30, snapshots=3)
    r = RunView(run)
    good = (run / "snapshots" / "step-00000100.npz").read_bytes()
    (run / "snapshots" / "step-00000100.npz").write_bytes(good[: len(good) // 2])   # torn write
    assert r.embeddings(1) is None and r.projection(1) is None
    assert r.projection(2) is not None                                        # the chain skips it
    (run / "snapshots" / "step-00000300.npz").write_bytes(b"")                # just created, empty
    assert len(r.summary()["snapshots"]) == 4 and r.projection(3) is None
    write_snapshot(run, 400, np.ones((29, 8)))                                # wrong number of points
    assert r.embeddings(4) is None
    (run / "snapshots" / "step-00000100.npz").write_bytes(good)               # the write completes
    step, _, xy = r.projection(1)
    assert step == 100 and xy.shape == (30, 2)


def test_probe_problems_are_reported_and_pickles_never_loaded(tmp_path):
    run = write_synthetic_run(tmp_path / "r", points=12, snapshots=1)
    probe = run / "snapshots" / "probe.npz"
    probe.write_bytes(probe.read_bytes()[:50])
    p, note = RunView(run).probe()
    assert p is None and "unreadable" in note
    np.savez(probe, ids=np.arange(12), labels=np.zeros(12, np.int64), classes=np.array([{"x": 1}], dtype=object))
    p, note = RunView(run).probe()
    assert note is None and p.classes == [] and p.thumbnail_shape is None      # the object array is skipped


def test_maps_match_pca_and_move_continuously(tmp_path):
    rng = np.random.default_rng(0)
    x0 = rng.normal(size=(200, 6)) * np.array([5.0, 3.0, 1.0, 0.5, 0.2, 0.1])
    run = tmp_path / "r"
    (run / "snapshots").mkdir(parents=True)
    np.savez(run / "snapshots" / "probe.npz", ids=np.arange(200), labels=np.zeros(200, np.int64))
    a = 0.05                                                                  # a small rotation per snapshot
    rot = np.eye(6)
    rot[:2, :2] = [[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]]
    xs = [x0, x0 @ rot, x0 @ rot @ rot]
    for k, x in enumerate(xs):                                                # stored raw (not normalised)
        np.savez(run / "snapshots" / f"step-{k:08d}.npz", embeddings=x.astype(np.float32), step=np.int64(k),
                 time=np.float64(k))
    r = RunView(run)
    maps = [r.projection(k)[2] for k in range(3)]
    ref = PCA(2).fit_transform(xs[0])
    for j in range(2):                                                        # PCA up to the sign of each axis
        np.testing.assert_allclose(np.abs(maps[0][:, j]), np.abs(ref[:, j]), rtol=1e-3, atol=1e-3)
    for k in (1, 2):                                                          # points move by the rotation only
        step = np.linalg.norm(maps[k] - maps[k - 1], axis=1).max()
        assert step < 2 * a * np.linalg.norm(xs[0][:, :2], axis=1).max()
        raw = PCA(2).fit_transform(xs[k])
        np.testing.assert_allclose(np.linalg.svd(maps[k], compute_uv=False), np.linalg.svd(raw, compute_uv=False),
                                   rtol=1e-3)


def test_procrustes_undoes_rotations_and_reflections():
    g = torch.Generator().manual_seed(0)
    y = torch.randn(50, 2, generator=g, dtype=torch.float64)
    y -= y.mean(0)
    for r in (torch.tensor([[0.6, -0.8], [0.8, 0.6]], dtype=torch.float64),
              torch.tensor([[1.0, 0.0], [0.0, -1.0]], dtype=torch.float64)):
        np.testing.assert_allclose(procrustes(y @ r, y).numpy(), y.numpy(), atol=1e-10)
    assert pca_2d(torch.randn(10, 1, generator=g)).shape == (10, 2)


def test_optional_projections_are_refused_when_missing():
    avail = available_methods()
    assert avail["pca"]
    for m in ("tsne", "umap"):
        if not avail[m]:
            with pytest.raises(ValueError, match="not installed"):
                project(np.zeros((5, 3), np.float32), method=m)
    with pytest.raises(ValueError, match="`method` must be one of"):
        project(np.zeros((5, 3), np.float32), method="../pca")


def test_neighbours_match_brute_force_cosine(tmp_path):
    run = write_synthetic_run(tmp_path / "r", points=80, dim=16, snapshots=2)
    r = RunView(run)
    with np.load(run / "snapshots" / "step-00000100.npz") as f:
        emb = f["embeddings"].astype(np.float64)
    with np.load(run / "snapshots" / "probe.npz") as f:
        labels = f["labels"]
    cos = emb @ emb[5] / (np.linalg.norm(emb, axis=1) * np.linalg.norm(emb[5]))
    cos[5] = -np.inf
    want = np.argsort(-cos)[:7]
    got = r.neighbours(1, 5, count=7)
    assert [n["point"] for n in got] == want.tolist()
    np.testing.assert_allclose([n["cos"] for n in got], cos[want], atol=1e-5)
    assert [n["label"] for n in got] == labels[want].tolist()
    assert r.neighbours(1, 80) is None and r.neighbours(9, 0) is None
    assert r.thumbnail(3).shape == (16, 16, 1) and r.thumbnail(80) is None


def test_a_run_written_while_we_read_it(tmp_path):
    run = tmp_path / "live"
    r = RunView(run)
    assert r.summary()["state"] == "missing"
    write_synthetic_run(run, points=25, snapshots=1, state="running")
    assert len(r.summary()["snapshots"]) == 1
    first = r.projection(0)[2]
    write_snapshot(run, 500, np.random.default_rng(1).normal(size=(25, 32)))
    append_metrics(run, [{"kind": "train", "step": 500, "loss": 1.0}])
    s = r.summary()
    assert [x["step"] for x in s["snapshots"]] == [0, 500]
    np.testing.assert_array_equal(r.projection(0)[2], first)                  # earlier maps are kept
    assert r.projection(1)[0] == 500


def test_text_runs_show_their_probe_texts(tmp_path):
    from contrastlab.rundir import RunDir as TrainRunDir
    run = TrainRunDir(tmp_path / "text-run")
    run.create({"method": "pairs"})
    queries = ["a definition of a dog", "ein Hund", "x" * 500]
    run.write_probe(ids=[4, 7, 9], labels=[0, -1, 1], classes=["noun.animal", "noun.act"], texts=queries)
    probe = RunView(run.path).summary()["probe"]
    assert probe["texts"][:2] == queries[:2] and len(probe["texts"][2]) == 300      # long texts are cut
    assert probe["thumbnail_shape"] is None and probe["classes"] == ["noun.animal", "noun.act"]


def test_sequence_runs_keep_their_probe_series_for_plotting(tmp_path):
    """The probe keeps each point's series (bins of the mean past SERIES_POINTS steps, against a float64 loop);
    the summary gives their shape, `series()` the array; a bad one is dropped with a note."""
    from contrastlab.probefile import SERIES_POINTS
    from contrastlab.rundir import RunDir
    rng = np.random.default_rng(1)
    x = rng.normal(size=(3, 2, 1000))
    run = RunDir(tmp_path / "seq")
    run.path.mkdir()
    run.write_probe(ids=[4, 5, 6], labels=[0, 1, 0], classes=["a", "b"], series=x)
    got = run.series()
    edges = [round(i * 1000 / SERIES_POINTS) for i in range(SERIES_POINTS + 1)]
    want = np.array([[[x[p, c, edges[j]:edges[j + 1]].mean() for j in range(SERIES_POINTS)] for c in range(2)]
                     for p in range(3)])
    assert got.shape == (3, 2, SERIES_POINTS) and got.dtype == np.float32
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    assert tuple(run.summary()["probe"]["series_shape"]) == (2, SERIES_POINTS)
    short = RunDir(tmp_path / "short")
    short.path.mkdir()
    short.write_probe(ids=[0, 1], labels=[0, 0], series=x[:2, :, :10])
    np.testing.assert_allclose(short.series(), x[:2, :, :10], rtol=1e-6)            # short series: as they are
    np.savez(run.probe_file, ids=np.arange(3), labels=np.zeros(3), series=np.full((3, 1, 4), np.nan, np.float32))
    probe, note = RunDir(run.path).probe()
    assert probe is not None and probe.series_shape is None and "`series` holds NaN or inf" in note
    np.savez(run.probe_file, ids=np.arange(3), labels=np.zeros(3), series=np.zeros((2, 1, 4), np.float32))
    probe, note = RunDir(run.path).probe()
    assert probe.series_shape is None and "is not (P=3, C, L) floats" in note and RunDir(run.path).series() is None
