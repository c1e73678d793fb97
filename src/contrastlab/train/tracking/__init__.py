"""Tracking: a run's records also go to the tools practitioners already watch, TensorBoard and MLflow.

``TrainConfig(log=("tensorboard", "mlflow"))`` (CLI: ``--log tensorboard,mlflow`` or ``--set log=...``) adds, as
training goes:

    RUN/tensorboard/          event files: each number of metrics.jsonl as a scalar ("train/loss", "monitor/knn_top1",
                              ...), each probe snapshot as a projector embedding with its labels (and texts) as
                              metadata and, for images, the thumbnails as a sprite: ``tensorboard --logdir RUN``
    RUN/mlflow/mlflow.db      a local MLflow store (artifacts in RUN/mlflow/artifacts): params = the training config,
                              metrics with their steps, eval.json and a readable eval.md as artifacts:
                              ``mlflow ui --backend-store-uri sqlite:///RUN/mlflow/mlflow.db``
    RUN/tracking.json         what each tracker holds: the MLflow store and run id, TensorBoard's last flushed step

``mlflow_uri`` (else the MLFLOW_TRACKING_URI environment variable) sends MLflow records to another store, e.g. a team
server. A resumed run continues the same records and holds no step twice: TensorBoard hides what the killed run
wrote after its last flush at a checkpoint (``purge_step``) and replays the rest from metrics.jsonl and the snapshots;
MLflow, which cannot delete a point, receives metrics when a checkpoint is on disk and skips the (metric, step) pairs
it already holds. A tracker that cannot start is an error before the first step; one that fails later is dropped with
a warning, and training goes on.

>>> import tempfile
>>> from contrastlab.train import TrainConfig, Trainer
>>> cfg = TrainConfig(method="simclr", data="digits", steps=2, batch_size=32, final_eval=False, probe_size=50,
...                   log=("tensorboard",), hyperparameters={"proj_hidden_dim": 32, "proj_dim": 16})
>>> run = Path(tempfile.mkdtemp())
>>> Trainer.from_config(cfg, run, show_progress=False).fit()["step"]
2
>>> (run / "tensorboard" / "projector_config.pbtxt").exists(), sorted(TRACKERS)
(True, ['mlflow', 'tensorboard'])
"""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np

from ...io import read_json, write_json
from ..rundir import RunDir

__all__ = ["TRACKERS", "Tracker", "Trackers", "TrackingError", "register_tracker", "parse_trackers",
           "TensorBoardTracker", "MlflowTracker"]

TRACKERS: dict[str, type["Tracker"]] = {}
INSTALL = "pip install 'contrastlab[track]'"


class TrackingError(RuntimeError):
    """A tracker could not start (before the first training step)."""


def register_tracker(name: str):
    def deco(cls):
        cls.name = name
        TRACKERS[name] = cls
        return cls
    return deco


def parse_trackers(value) -> tuple[str, ...]:
    """`log` as tracker names, from a tuple or a comma-separated string; "" and "none": none.

    >>> parse_trackers("tensorboard, mlflow")
    ('tensorboard', 'mlflow')
    """
    if value is None or (isinstance(value, str) and value.strip().lower() in ("", "none")):
        return ()
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, (list, tuple)) or not all(isinstance(v, str) for v in items):
        raise ValueError(f"`log` must be tracker names such as 'tensorboard,mlflow', got {value!r}")
    names = tuple(v.strip() for v in items if v.strip())
    for n in names:
        if n not in TRACKERS:
            raise ValueError(f"`log` must name trackers of {sorted(TRACKERS)}, got {n!r}")
        if names.count(n) > 1:
            raise ValueError(f"`log` names {n!r} twice, got {value!r}")
    return names


def _flatten(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict) and v:
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def _is_number(v) -> bool:
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, (bool, np.bool_))


def scalars(record: dict) -> dict[str, float]:
    """The numbers of a metrics.jsonl record, named "kind/key" (the step is the x-axis, not a scalar)."""
    kind = record.get("kind", "train")
    return {f"{kind}/{k}": float(v) for k, v in record.items() if k != "step" and _is_number(v)}


class Tracker:
    """One tracking tool. `start(kept=S)` opens its records for training that logs every step after S (S = -1:
    every step) and returns the step after which it wants the run directory's records (metrics.jsonl lines and
    snapshots up to S) replayed; then `record` gets each metrics.jsonl line as it is written, `snapshot` each probe
    snapshot, `checkpoint(step)` says a checkpoint is on disk, `close(status)` ends ("done", "interrupted",
    "failed"). `evaluation` gets eval.json. `state` is its part of RUN/tracking.json, saved after these calls."""
    name = "?"
    uses_snapshots = False

    def __init__(self, run: RunDir, config, state: dict):
        self.run, self.config, self.state = run, config, state

    @staticmethod
    def requirements(config) -> dict[str, str]:
        """{importable module: the package that provides it}."""
        return {}

    def start(self, *, kept: int) -> int:
        return kept

    def record(self, record: dict) -> None:
        pass

    def snapshot(self, step: int, embeddings: np.ndarray) -> None:
        pass

    def checkpoint(self, step: int) -> None:
        pass

    def close(self, status: str) -> None:
        pass

    def evaluation(self, results: dict) -> None:
        pass


class Trackers:
    """The trackers `config.log` names, called together. Construction checks that each one's packages are
    installed, so a missing one is an error before any data is loaded; nothing happens until `start`."""

    def __init__(self, config):
        self.config, self.names = config, tuple(config.log)
        for name in self.names:
            missing = [pkg for module, pkg in TRACKERS[name].requirements(config).items()
                       if importlib.util.find_spec(module) is None]
            if missing:
                raise ValueError(f"`log` includes {name!r}, which needs {' and '.join(missing)} (not installed); "
                                 f"install the tracking tools with `{INSTALL}` (or `pip install {' '.join(missing)}`),"
                                 f" or leave {name!r} out of `log`")
        self.run: RunDir | None = None
        self.active: list[Tracker] = []
        self.state: dict = {}

    def _file(self) -> Path:
        return self.run.path / "tracking.json"

    def save(self) -> None:
        write_json(self._file(), self.state)

    def open(self, run: RunDir) -> list[Tracker]:
        self.run = run
        self.state = read_json(self._file()) if self._file().exists() else {}
        return [TRACKERS[n](run, self.config, self.state.setdefault(n, {})) for n in self.names]

    def start(self, run: RunDir, *, step: int, resumed: bool) -> None:
        """Training starts (at step 0) or resumes at `step`: open every tracker, level with the run directory."""
        if not self.names:
            return
        kept = step if resumed else -1             # the trainer logs every step after `kept`
        for tracker in self.open(run):
            try:
                since = tracker.start(kept=kept)
                self._replay(tracker, since, kept)
                tracker.checkpoint(kept)
            except Exception as e:
                self.close(done=False)
                try:
                    tracker.close("failed")
                except Exception:
                    pass
                raise TrackingError(f"`log`: {tracker.name} could not start in {run.path}: {type(e).__name__}: "
                                    f"{e}") from e
            self.active.append(tracker)
        self.save()

    def _replay(self, tracker: Tracker, since: int, kept: int) -> None:
        if since >= kept:
            return
        snaps = {}
        if tracker.uses_snapshots:
            snaps = {int(f.stem.split("-")[1]): f for f in self.run.snapshots.glob("step-*.npz")}
        for r in self.run.metrics() if self.run.metrics_file.exists() else []:
            s = r.get("step", 0)
            if since < s <= kept:
                if s in snaps and r.get("kind") == "monitor":
                    tracker.snapshot(s, np.load(snaps.pop(s))["embeddings"])
                tracker.record(r)

    def _each(self, call: str, *args) -> None:
        for tracker in list(self.active):
            try:
                getattr(tracker, call)(*args)
            except Exception as e:                  # a tracker never stops training once it runs
                self.active.remove(tracker)
                print(f"contrastlab: `log` {tracker.name} failed in {call} ({type(e).__name__}: {e}); the run goes "
                      f"on without it (a resume brings it level again)", file=sys.stderr)

    def record(self, record: dict) -> None:
        self._each("record", record)

    def snapshot(self, step: int, embeddings) -> None:
        self._each("snapshot", step, np.asarray(embeddings, np.float32))

    def checkpoint(self, step: int) -> None:
        """Call after the checkpoint of `step` is on disk."""
        if self.active:
            self._each("checkpoint", step)
            self.save()

    def close(self, *, done: bool) -> None:
        """End the session; not done: "interrupted" during a KeyboardInterrupt, else "failed"."""
        status = "done" if done else ("interrupted" if isinstance(sys.exc_info()[1], KeyboardInterrupt) else "failed")
        self._each("close", status)
        if self.active:
            self.save()
        self.active = []


def eval_table(results: dict) -> str:
    """eval.json as a Markdown table, one row per (flattened) entry."""
    rows = [f"| {k} | {f'{v:.4g}' if isinstance(v, float) else v} |" for k, v in _flatten(results).items()]
    return "\n".join([f"# Evaluation at step {results.get('step')}", "", "| result | value |", "|---|---|", *rows, ""])


from .mlflow_tracker import MlflowTracker              # noqa: E402  (registers "mlflow")
from .tensorboard_tracker import TensorBoardTracker    # noqa: E402  (registers "tensorboard")
