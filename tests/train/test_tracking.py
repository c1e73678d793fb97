"""`--log tensorboard,mlflow`: the records read back with TensorBoard's and MLflow's own readers and compared with
what the trainer writes to the run directory (metrics.jsonl, the snapshots, eval.json), for a whole run and for one
restarted, killed twice and resumed; plus the `log` option's errors."""
import io
import json
import math
import os
import signal
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("tensorboard", reason="the track extra: pip install 'contrastlab[track]'")
pytest.importorskip("mlflow", reason="the track extra: pip install 'contrastlab[track]'")
pytest.importorskip("sqlalchemy", reason="the track extra: pip install 'contrastlab[track]'")

from google.protobuf import text_format                                         # noqa: E402
from mlflow.tracking import MlflowClient                                         # noqa: E402
from tensorboard.backend.event_processing import data_provider, plugin_event_multiplexer  # noqa: E402
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator  # noqa: E402
from tensorboard.plugins import base_plugin                                     # noqa: E402
from tensorboard.plugins.projector.projector_config_pb2 import ProjectorConfig  # noqa: E402
from tensorboard.plugins.projector.projector_plugin import ProjectorPlugin      # noqa: E402
from werkzeug.test import Client                                                 # noqa: E402
from werkzeug.wrappers import Response                                           # noqa: E402

from PIL import Image                                                            # noqa: E402

from contrastlab.cli import main                                                 # noqa: E402
from contrastlab.train import RunDir, TrainConfig, Trainer, parse_overrides      # noqa: E402
from contrastlab.train import tracking                                           # noqa: E402

TINY = ["--set", "batch_size=32", "--set", "probe_size=40", "--set", "log_every=5", "--set", "monitor_every=10",
        "--set", "proj_dim=16", "--set", "proj_hidden_dim=32"]
TRAIN = ["train", "simclr", "--data", "digits", "--steps", "30", "--no-eval", "--quiet", *TINY]


@pytest.fixture(autouse=True)
def no_mlflow_environment(monkeypatch):
    for name in ("MLFLOW_TRACKING_URI", "MLFLOW_EXPERIMENT_NAME", "CONTRASTLAB_FAULT"):
        monkeypatch.delenv(name, raising=False)


# -- the references and the readers ---------------------------------------------------------------------------
def jsonl_series(run) -> dict:
    """metrics.jsonl as {"kind/key": [(step, value), ...]}: the trainer's own record, the independent reference."""
    out = {}
    for r in RunDir(run).metrics():
        for k, v in r.items():
            if k not in ("kind", "step") and isinstance(v, (int, float)) and not isinstance(v, bool):
                out.setdefault(f"{r['kind']}/{k}", []).append((r["step"], float(v)))
    return {k: sorted(v) for k, v in out.items()}


def tensorboard_series(run) -> dict:
    acc = EventAccumulator(str(run / "tensorboard"), size_guidance={"scalars": 0})
    acc.Reload()
    return {tag: sorted((e.step, e.value) for e in acc.Scalars(tag)) for tag in acc.Tags()["scalars"]}


def projector(run):
    """TensorBoard's projector plugin as `tensorboard --logdir RUN` serves it: a GET of one of its routes."""
    mux = plugin_event_multiplexer.EventMultiplexer()
    mux.AddRunsFromDirectory(str(run))
    mux.Reload()
    context = base_plugin.TBContext(logdir=str(run), multiplexer=mux,
                                    data_provider=data_provider.MultiplexerDataProvider(mux, str(run)))
    apps = ProjectorPlugin(context).get_plugin_apps()

    def get(route, **query):
        response = Client(apps[route], Response).get(route, query_string={"run": "tensorboard", **query})
        assert response.status_code == 200, (route, query, response.data[:200])
        return response.data
    return get


def mlflow_store(run):
    client = MlflowClient(tracking_uri=f"sqlite:///{(run / 'mlflow' / 'mlflow.db').resolve()}")
    experiment = client.get_experiment_by_name("contrastlab")
    return client, client.search_runs([experiment.experiment_id])       # active runs only


def mlflow_series(client, run_id) -> dict:
    keys = client.get_run(run_id).data.metrics
    return {k: sorted((m.step, m.value) for m in client.get_metric_history(run_id, k))
            for k in keys if not k.startswith("eval/")}


def flat(d, prefix=""):
    out = {}
    for k, v in d.items():
        out.update(flat(v, f"{prefix}{k}.") if isinstance(v, dict) and v else {f"{prefix}{k}": v})
    return out


def check_records(run):
    """Every tracker holds exactly metrics.jsonl and the snapshots: each step once, the same values."""
    expected = jsonl_series(run)
    assert {"train/loss", "train/lr", "train/throughput", "monitor/knn_top1", "monitor/alignment"} <= set(expected)
    tb = tensorboard_series(run)
    assert set(tb) == set(expected)
    for tag, points in expected.items():                           # TensorBoard keeps float32 scalars
        assert [(s, np.float32(v)) for s, v in tb[tag]] == [(s, np.float32(v)) for s, v in points], tag
    # the projector: one embedding per snapshot, its tensor bit-equal to the snapshot, labels and thumbnails
    snapshots = sorted((run / "snapshots").glob("step-*.npz"))
    probe = np.load(run / "snapshots" / "probe.npz")
    get = projector(run)
    assert json.loads(get("/runs")) == ["tensorboard"]                 # RUN/tensorboard
    info = json.loads(get("/info"))["embeddings"]
    assert [e["tensorName"] for e in info] == [f"probe:{int(f.stem[5:]):05d}" for f in snapshots]
    config = text_format.Parse((run / "tensorboard" / "projector_config.pbtxt").read_text(), ProjectorConfig())
    assert [e.tensor_name for e in config.embeddings] == [e["tensorName"] for e in info]
    for e, f in zip(info, snapshots):
        emb = np.load(f)["embeddings"]
        assert e["tensorShape"] == list(emb.shape)
        served = np.frombuffer(get("/tensor", name=e["tensorName"]), np.float32).reshape(emb.shape)
        np.testing.assert_array_equal(served, emb)
        rows = [line.split("\t") for line in get("/metadata", name=e["tensorName"]).decode().splitlines()]
        assert rows[0] == ["id", "label"]
        assert rows[1:] == [[str(i), str(probe["classes"][y])] for i, y in zip(probe["ids"], probe["labels"])]
        side = probe["thumbnails"].shape[1]
        assert e["sprite"]["singleImageDim"] == [side, side]
        sprite = Image.open(io.BytesIO(get("/sprite_image", name=e["tensorName"])))
        assert sprite.size == (math.ceil(len(emb) ** 0.5) * side,) * 2
    # MLflow: one run, params = the config, each metric's history = metrics.jsonl
    client, runs = mlflow_store(run)
    assert len(runs) == 1
    mlrun = runs[0]
    assert json.loads((run / "tracking.json").read_text())["mlflow"]["run_id"] == mlrun.info.run_id
    assert mlrun.info.status == "FINISHED"
    train = json.loads((run / "config.json").read_text())["train"]
    assert mlrun.data.params == {k: v if isinstance(v, str) else json.dumps(v) for k, v in flat(train).items()}
    assert mlflow_series(client, mlrun.info.run_id) == expected
    return client, mlrun


# -- a whole run ----------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def run(tmp_path_factory):
    path = tmp_path_factory.mktemp("tracking") / "simclr"
    assert main([*TRAIN, "--run", str(path), "--log", "tensorboard,mlflow"]) == 0
    return path


def test_a_run_is_in_tensorboard_and_mlflow_as_in_its_run_directory(run):
    client, mlrun = check_records(run)
    assert {r["step"] for r in RunDir(run).metrics() if r["kind"] == "monitor"} == {0, 10, 20, 30}


def test_eval_goes_to_mlflow_as_artifacts_and_metrics(run, tmp_path):
    assert main(["eval", str(run), "--knn"]) == 0
    result = json.loads((run / "eval.json").read_text())
    client, (mlrun,) = mlflow_store(run)
    assert {a.path for a in client.list_artifacts(mlrun.info.run_id)} >= {"eval.json", "eval.md"}
    copy = client.download_artifacts(mlrun.info.run_id, "eval.json", str(tmp_path))
    assert json.loads(open(copy).read()) == result
    table = open(client.download_artifacts(mlrun.info.run_id, "eval.md", str(tmp_path))).read()
    assert f"| knn_top1 | {result['knn_top1']:.4g} |" in table
    history = client.get_metric_history(mlrun.info.run_id, "eval/knn_top1")
    assert [(m.step, m.value) for m in history][-1] == (30, result["knn_top1"])


# -- restarted, killed twice, resumed -------------------------------------------------------------------------
FLUSH_EVERY_RECORD = """
import sys
from contrastlab.train import tracking
record = tracking.TensorBoardTracker.record
def flushed(self, r):        # the worst case for a kill: every event of the killed run is on disk
    record(self, r)
    self.writer.flush()
tracking.TensorBoardTracker.record = flushed
from contrastlab.cli import main
sys.exit(main(sys.argv[1:]))
"""


def killed(argv, fault):
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env["CONTRASTLAB_FAULT"] = json.dumps(fault)
    proc = subprocess.run([sys.executable, "-c", FLUSH_EVERY_RECORD, *argv], env=env, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-3000:]


@pytest.mark.slow
def test_a_killed_and_resumed_run_holds_every_step_once(tmp_path):
    run = tmp_path / "killed"
    resume = ["train", "--resume", str(run), "--no-eval", "--quiet"]
    # 1. killed while writing its first checkpoint (step 0): the resume starts it over, and its trackers too
    killed([*TRAIN, "--run", str(run), "--log", "tensorboard,mlflow", "--set", "checkpoint_every=15"],
           {"point": "atomic-write", "at": "last.pt"})
    assert not (run / "checkpoints" / "last.pt").exists()
    first = json.loads((run / "tracking.json").read_text())["mlflow"]["run_id"]
    # 2. killed once checkpoint 15 is on disk, before the trackers hear of it
    killed(resume, {"point": "after-checkpoint", "at": 15})
    # 3. killed at step 25, ten steps after its checkpoint, with every event of steps 16-25 on disk
    killed(resume, {"point": "after-step", "at": 25})
    assert main(resume) == 0
    client, mlrun = check_records(run)
    assert mlrun.info.run_id != first and client.get_run(first).info.lifecycle_stage == "deleted"
    assert [r["step"] for r in RunDir(run).metrics() if r["kind"] == "train"] == [5, 10, 15, 20, 25, 30]


# -- the option and its errors ----------------------------------------------------------------------------------
def test_log_option_parses_and_refuses_unknown_or_repeated_trackers(capsys):
    assert TrainConfig(steps=1, log="tensorboard, mlflow").log == ("tensorboard", "mlflow")
    assert TrainConfig(steps=1, log="none").log == ()
    trainer_keys, _ = parse_overrides(["log=mlflow", "mlflow_uri=http://127.0.0.1:5000"], method_keys={})
    assert TrainConfig(steps=1, **trainer_keys).log == ("mlflow",)
    assert TrainConfig.from_dict(TrainConfig(steps=1, log=("mlflow",)).to_dict()).log == ("mlflow",)
    with pytest.raises(ValueError, match=r"`log` must name trackers of \['mlflow', 'tensorboard'\], got 'wandb'"):
        TrainConfig(steps=1, log="tensorboard,wandb")
    with pytest.raises(ValueError, match="`log` names 'mlflow' twice"):
        TrainConfig(steps=1, log=("mlflow", "mlflow"))
    with pytest.raises(ValueError, match="`mlflow_uri` must be a tracking URI .* with `log` including 'mlflow'"):
        TrainConfig(steps=1, mlflow_uri="http://127.0.0.1:5000")
    with pytest.raises(SystemExit):
        main(["train", "simclr", "--steps", "1", "--log", "wandb"])
    assert "--log: `log` must name trackers of" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["train", "simclr", "--steps", "1", "--log", "mlflow", "--set", "log=tensorboard"])
    assert "give --log or --set log=..., not both" in capsys.readouterr().err


def test_a_missing_tracker_package_is_an_error_before_training(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "mlflow", None)                # as if mlflow were not installed
    with pytest.raises(SystemExit) as e:
        main(["train", "simclr", "--data", "digits", "--steps", "2", "--run", str(tmp_path / "r"), "--quiet",
              "--log", "tensorboard,mlflow", *TINY])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "`log` includes 'mlflow', which needs mlflow-skinny (not installed)" in err
    assert "pip install 'contrastlab[track]'" in err
    assert not (tmp_path / "r" / "config.json").exists()


class _Failing(tracking.Tracker):
    fail_in = "start"
    seen: list = []

    def start(self, *, kept):
        if self.fail_in == "start":
            raise ConnectionError("tracking server refused the connection")
        return kept

    def record(self, record):
        if self.fail_in == "record" and record["step"] >= 5:
            raise ConnectionError("tracking server went away")
        self.seen.append(record["step"])


def test_a_tracker_that_cannot_start_stops_the_run_before_its_first_step(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(tracking.TRACKERS, "failing", type("Failing", (_Failing,), {"name": "failing"}))
    with pytest.raises(SystemExit) as e:
        main(["train", "simclr", "--data", "digits", "--steps", "10", "--run", str(tmp_path / "r"), "--quiet",
              "--no-eval", "--set", "log=failing", *TINY])
    assert e.value.code == 2
    assert "`log`: failing could not start in" in capsys.readouterr().err
    assert not (tmp_path / "r" / "metrics.jsonl").exists()


def test_a_tracker_failing_mid_run_is_dropped_with_a_warning_and_training_goes_on(tmp_path, monkeypatch, capsys):
    flaky = type("Flaky", (_Failing,), {"name": "flaky", "fail_in": "record", "seen": []})
    monkeypatch.setitem(tracking.TRACKERS, "flaky", flaky)
    cfg = TrainConfig(method="simclr", data="digits", steps=10, batch_size=32, final_eval=False, probe_size=40,
                      log_every=5, monitor_every=5, log=("flaky",), hyperparameters={"proj_hidden_dim": 32, "proj_dim": 16})
    trainer = Trainer.from_config(cfg, tmp_path / "r", show_progress=False)
    assert trainer.fit()["step"] == 10
    assert flaky.seen == [0]
    assert "`log` flaky failed in record (ConnectionError: tracking server went away); the run goes on" in \
        capsys.readouterr().err
    assert json.loads((tmp_path / "r" / "status.json").read_text())["state"] == "done"
