"""MLflow: MlflowClient on `mlflow_uri`, MLFLOW_TRACKING_URI or a local sqlite store RUN/mlflow/mlflow.db.

The local store is sqlite, MLflow's own default since its file store went into maintenance mode (MLflow 3 refuses
it unless MLFLOW_ALLOW_FILE_STORE is set); it needs SQLAlchemy and alembic next to mlflow-skinny, no server.

>>> from contrastlab.train import TrainConfig
>>> sorted(MlflowTracker.requirements(TrainConfig(steps=1, log="mlflow", mlflow_uri="http://host:5000")))
['mlflow']
"""
from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path

from ...io import write_json
from . import Tracker, _flatten, _is_number, eval_table, register_tracker, scalars

__all__ = ["MlflowTracker"]

_STATUS = {"done": "FINISHED", "interrupted": "KILLED", "failed": "FAILED"}


def _mlflow_key(key: str) -> str:
    return re.sub(r"[^\w./\- :]", "_", key.replace("@", "_at_"))      # MLflow's allowed characters


def _param_value(v) -> str:
    return (v if isinstance(v, str) else json.dumps(v))[:6000]


@register_tracker("mlflow")
class MlflowTracker(Tracker):
    """MlflowClient on `mlflow_uri`, MLFLOW_TRACKING_URI or the local sqlite store RUN/mlflow/mlflow.db."""
    BATCH = 1000                                    # MLflow's most metrics per log_batch

    @staticmethod
    def requirements(config) -> dict[str, str]:
        need = {"mlflow": "mlflow-skinny"}
        uri = config.mlflow_uri or os.environ.get("MLFLOW_TRACKING_URI") or "sqlite://"    # default: local sqlite
        scheme = uri.split("://")[0] if "://" in uri else "file"                        # a plain path: a file store
        if scheme not in ("http", "https", "file", "databricks", "databricks-uc", "uc"):
            need.update(sqlalchemy="sqlalchemy", alembic="alembic")           # a database store
        return need

    def _client(self):
        import logging

        from mlflow.tracking import MlflowClient
        logging.getLogger("mlflow.store.db.utils").setLevel(logging.WARNING)   # "Creating initial tables ..."
        self.client = MlflowClient(tracking_uri=self.state["tracking_uri"])
        return self.client

    def start(self, *, kept: int) -> int:
        from mlflow.entities import Param
        local = self.run.path / "mlflow"
        if "tracking_uri" not in self.state:
            uri = self.config.mlflow_uri or os.environ.get("MLFLOW_TRACKING_URI")
            if uri is None:
                local.mkdir(parents=True, exist_ok=True)
                uri = f"sqlite:///{(local / 'mlflow.db').resolve()}"
            self.state["tracking_uri"] = uri
        client = self._client()
        run_id = self.state.get("run_id")
        if run_id is not None and kept < 0:           # the run starts over from step 0: so does its MLflow run
            client.delete_run(run_id)
            run_id = None
        if run_id is None:
            run_id = client.create_run(self._experiment(local), run_name=self.run.path.name, tags={
                "mlflow.source.name": "contrastlab train", "contrastlab.run_dir": str(self.run.path.resolve()),
                "contrastlab.method": self.config.method, "contrastlab.data": self.config.data}).info.run_id
            self.state["run_id"] = run_id
        else:
            client.update_run(run_id, status="RUNNING")
        self.run_id = run_id
        data = client.get_run(run_id).data
        params = [Param(k, _param_value(v)) for k, v in _flatten(self.config.to_dict()).items() if k not in data.params]
        for i in range(0, len(params), 100):
            client.log_batch(run_id, params=params[i:i + 100])
        self.held = {(k, m.step) for k in data.metrics for m in client.get_metric_history(run_id, k)}
        self.pending = []
        return -1                                     # replay everything; `held` skips what the store has

    def _experiment(self, local: Path) -> str:
        name = os.environ.get("MLFLOW_EXPERIMENT_NAME", "contrastlab")
        found = self.client.get_experiment_by_name(name)
        if found is not None:
            return found.experiment_id
        local_store = self.state["tracking_uri"] == f"sqlite:///{(local / 'mlflow.db').resolve()}"
        try:
            return self.client.create_experiment(
                name, artifact_location=(local / "artifacts").resolve().as_uri() if local_store else None)
        except Exception:                             # made meanwhile by another run on a shared store
            return self.client.get_experiment_by_name(name).experiment_id

    def record(self, record: dict) -> None:
        from mlflow.entities import Metric
        now, step = int(time.time() * 1000), int(record["step"])
        for key, value in scalars(record).items():
            key = _mlflow_key(key)
            if (key, step) not in self.held:
                self.held.add((key, step))
                self.pending.append(Metric(key, value, now, step))

    def checkpoint(self, step: int) -> None:          # MLflow cannot delete a point: send only what a resume keeps
        while self.pending:
            self.client.log_batch(self.run_id, metrics=self.pending[:self.BATCH])
            del self.pending[:self.BATCH]

    def close(self, status: str) -> None:            # what came after the last checkpoint stays out (see above)
        self.client.set_terminated(self.run_id, status=_STATUS[status])

    def evaluation(self, results: dict) -> None:
        from mlflow.entities import Metric
        if "run_id" not in self.state:
            raise ValueError(f"{self.run.path / 'tracking.json'} names no MLflow run (was the run trained with it?)")
        client, run_id = self._client(), self.state["run_id"]
        path = self.run.path / "eval.json"
        if not path.exists():
            write_json(path, results)
        client.log_artifact(run_id, str(path))
        client.log_text(run_id, eval_table(results), "eval.md")
        now, step = int(time.time() * 1000), int(results.get("step") or 0)
        metrics = [Metric(_mlflow_key(f"eval/{k}"), float(v), now, step) for k, v in _flatten(results).items()
                   if _is_number(v) and k != "step"]
        for i in range(0, len(metrics), self.BATCH):
            client.log_batch(run_id, metrics=metrics[i:i + self.BATCH])
