"""One owner of the run directory: one `RunDir` class, the layout's file names spelled in one module, and the
merged reader / writer: what the trainer writes, the readers read back (against the arrays written)."""
from __future__ import annotations

import ast
import json
import os
from pathlib import Path

import numpy as np

from contrastlab import rundir
from contrastlab.rundir import RunDir

SRC = Path(rundir.__file__).resolve().parent
#: These name a Hugging Face model folder's config.json (`hf:PATH` encoders, and the sentence-transformers /
#: transformers / safetensors folders `contrastlab export` writes), another file than a run's.
HF_FOLDERS = {"models/backbones.py", "models/text/external.py", "export/images.py", "export/st_module.py",
              "export/text.py", "export/towers.py"}


def _modules():
    for path in sorted(SRC.rglob("*.py")):
        yield path.relative_to(SRC).as_posix(), ast.parse(path.read_text(encoding="utf-8"))


def test_one_class_named_rundir():
    where = [name for name, tree in _modules() for node in ast.walk(tree)
             if isinstance(node, ast.ClassDef) and node.name == "RunDir"]
    assert where == ["rundir.py"]


def test_the_layouts_file_names_are_spelled_in_one_module():
    names = {rundir.CONFIG, rundir.STATUS, rundir.METRICS, rundir.TOKENIZER, rundir.EVAL, rundir.PROBE}
    assert names == {"config.json", "status.json", "metrics.jsonl", "tokenizer.json", "eval.json", "probe.npz"}
    where = sorted({name for name, tree in _modules() for node in ast.walk(tree)
                    if isinstance(node, ast.Constant) and node.value == "config.json"} - HF_FOLDERS)
    assert where == ["rundir.py"]


def test_what_the_writer_writes_the_readers_read(tmp_path):
    run = RunDir(tmp_path / "run")
    assert run.summary()["state"] == "missing" and run.read_config() is None
    assert not run.create({"method": "simclr", "train": {}})
    assert len(run.config()["run_id"]) == 32 and run.read_config() == run.config()
    run.status("running", step=3, total_steps=10)
    records = [{"kind": "train", "step": 1, "loss": 2.5}, {"kind": "monitor", "step": 2, "knn_top1": 0.5}]
    for r in records:
        run.append_metric(r)
    assert run.metrics() == records
    chunk = run.read_metrics(0)
    assert chunk["records"] == records and chunk["offset"] == os.path.getsize(run.metrics_file)
    ids, labels = np.arange(4) * 7, np.array([0, 1, -1, 1])
    thumbs = np.arange(4 * 5 * 5 * 1, dtype=np.uint8).reshape(4, 5, 5, 1)
    run.write_probe(ids=ids, labels=labels, thumbnails=thumbs, classes=["a", "b"])
    emb = np.random.default_rng(0).standard_normal((4, 3)).astype(np.float32)
    run.write_snapshot(20, emb, elapsed=1.5)
    probe, note = run.probe()
    assert note is None and probe.ids.tolist() == ids.tolist() and probe.labels.tolist() == labels.tolist()
    assert probe.classes == ["a", "b"] and np.array_equal(run.thumbnails(), thumbs)
    assert np.array_equal(run.thumbnail(2), thumbs[2])
    assert run.snapshot_files() == [(20, "step-00000020.npz")]
    step, elapsed, got = run.embeddings(0)
    assert (step, elapsed) == (20, 1.5) and np.array_equal(got, emb)
    s = run.summary()
    assert s["state"] == "running" and s["status"]["step"] == 3 and s["config"] == run.config()
    assert s["snapshots"] == [{"index": 0, "step": 20}] and s["probe"]["count"] == 4
    run.write_eval({"knn": 0.9})
    assert run.summary()["eval"] == {"knn": 0.9}
    assert json.loads(run.eval_file.read_text()) == {"knn": 0.9}


def test_the_trainer_and_the_dashboard_use_the_one_class():
    from contrastlab.dashboard.runs import RunView
    from contrastlab.runs import RunDir as FromRuns
    from contrastlab.train.rundir import RunDir as FromTrain
    assert FromRuns is FromTrain is RunDir and issubclass(RunView, RunDir)
