"""Offline evaluation of a run: the frozen encoder from the last checkpoint, judged on the full train/test split.

This is the evaluation the report and `RUN/eval.json` hold; the online kNN monitor during training uses a small
fixed subset and is only a progress signal. Keys: `knn_top1`, `linear_top1`, `label_fraction`, `alignment`,
`uniformity`, `robustness`, `verification`, `pixels_knn_top1`, `pixels_linear_top1`, `retrieval` (metric-learning
retrieval, see `retrieval_table`), plus what was run and skipped.
"""
from __future__ import annotations

import sys
import time
from datetime import datetime, timezone

import torch

from ..data.stream import take
from ..io import read_json
from .config import TrainConfig
from .rundir import RunDir
from .seeding import generator as _generator
from .trainer import Trainer
from .tasks import view_geometry
from .tracking import Trackers

__all__ = ["evaluate", "evaluate_run", "log_eval", "PARTS", "retrieval_table", "format_image_report"]

PARTS = ("knn", "linear", "label_fractions", "geometry", "verification", "robustness", "pixels", "retrieval")
DEFAULT_PARTS = ("knn", "linear", "geometry", "verification", "robustness", "pixels")


def evaluate(trainer: Trainer, *, parts=DEFAULT_PARTS, label_fractions=(0.01, 0.1), k: int = 200,
             knn_temperature: float = 0.1, finetune_steps: int = 500, log=print) -> dict:
    from .. import eval as ev
    bad = sorted(set(parts) - set(PARTS))
    if bad:
        raise ValueError(f"unknown evaluation parts {bad}; choose from {list(PARTS)}")
    data, method, cfg = trainer.data, trainer.method, trainer.config
    labelled = data.y is not None and data.x_test is not None and data.y_test is not None
    out: dict = {"method": cfg.method, "data": cfg.data, "step": trainer.step,
                 "evaluated": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"), "skipped": {}}
    needs_labels = {"knn", "linear", "label_fractions", "verification", "robustness", "pixels", "retrieval"}
    classes = int(torch.unique(data.y).numel()) if labelled else 0
    for p in parts:
        if p in needs_labels and not labelled:
            out["skipped"][p] = "needs labelled train and test images"
        elif p in needs_labels and classes < 2:
            out["skipped"][p] = f"needs at least 2 classes, the labels hold {classes}"
        elif p == "retrieval" and int(torch.bincount(data.y_test).max()) < 2:
            out["skipped"][p] = "needs 2 test images of some class (a query needs another image of its class)"
        elif p == "label_fractions" and trainer.make_encoder is None:
            out["skipped"][p] = "a custom encoder: give Trainer(make_encoder=...) to train one from scratch"
    if "pixels" in parts and "pixels" not in out["skipped"] and getattr(data, "streamed", False):
        from ..data.limits import check_image_bytes
        try:                                        # raw pixels in memory as float32, train and test
            check_image_bytes("pixels", n=len(data.x) + len(data.x_test), channels=data.channels,
                              size=data.image_size, bytes_per_value=4)
        except ValueError as e:
            out["skipped"]["pixels"] = f"the streamed images' raw pixels do not fit in memory ({e})"
    todo = [p for p in parts if p not in out["skipped"]]
    feats = trainer.features()
    method.eval()
    t0 = time.perf_counter()
    train_f = test_f = None
    if {"knn", "linear", "verification"} & set(todo):
        log(f"embedding {len(data.x)} train and {len(data.x_test)} test images")
        train_f, test_f = ev.embed(feats, data.x), ev.embed(feats, data.x_test)
    if "knn" in todo:
        out["knn_top1"] = ev.knn_top1(train_f, data.y, test_f, data.y_test, k=k, temperature=knn_temperature)
        out["knn"] = {"k": k, "temperature": knn_temperature}
    if "linear" in todo:
        log("linear probe on frozen features")
        out["linear_top1"] = ev.linear_probe(train_f, data.y, test_f, data.y_test)["top1"]
    if "verification" in todo:
        out["verification"] = ev.verification(test_f, data.y_test, seed=cfg.seed)
    if "geometry" in todo:
        xs = take(data.x_test if data.x_test is not None else data.x, slice(0, 2000))   # streamed: stays on disk
        out.update(view_geometry(feats, trainer.augment, xs, generator=_generator(cfg.seed, 5)))
    if "robustness" in todo:
        log("robustness: linear probe on corrupted test images")
        out["robustness"] = ev.robustness(feats, data.x, data.y, data.x_test, data.y_test)
    if "pixels" in todo:
        log("raw-pixel baselines")
        out.update(ev.pixel_baselines(data.x[:], data.y, data.x_test[:], data.y_test, k=k))   # in memory here
    if "retrieval" in todo:
        out["retrieval"] = retrieval_table(trainer, feats, test_f=test_f, log=log)
    if "label_fractions" in todo:
        log(f"label efficiency at fractions {list(label_fractions)}: fine-tune pretrained vs from scratch")
        torch.manual_seed(cfg.seed)
        out["label_fraction"] = ev.label_efficiency(
            trainer.make_encoder, method.evaluated_encoder().state_dict(), data.x, data.y, data.x_test, data.y_test,
            fractions=tuple(label_fractions), num_classes=data.num_classes, steps=finetune_steps, seed=cfg.seed,
            augment=trainer.augment)
    method.train()
    out["seconds"] = round(time.perf_counter() - t0, 1)
    return out


RETRIEVAL_KS = (1, 10)            # precision@k of the retrieval table, beside R-precision and MAP@R


def retrieval_table(trainer: Trainer, feats, *, test_f=None, log=print) -> dict:
    """Metric-learning retrieval on the test images (each queries the others, self excluded, cosine; Musgrave et al.
    2020, "A Metric Learning Reality Check"): P@1, P@10, R-precision and MAP@R of raw pixels (flattened, in [0, 1]),
    the same architecture freshly initialised with the run's seed (its weights before step 1 unless it started from
    `pretrained` weights), the trained encoder's
    eval features (`feats`; `test_f` if already embedded) and, for a method trained with labels (SupCon, ...), the
    `supervised` method trained for as many steps on the same data, on the same queries. Rows that cannot be had
    are in "skipped" with the reason. Streamed test images are embedded batch by batch from disk."""
    from torch import nn

    from .. import eval as ev
    from ..data.limits import check_image_bytes
    from ..methods import METHODS
    data, cfg = trainer.data, trainer.config
    x, y = data.x_test, data.y_test
    n = len(x)
    ks = tuple(k for k in RETRIEVAL_KS if k <= n - 1)
    t0 = time.perf_counter()
    log(f"retrieval: {n:,} test images query each other (P@1, P@10, R-precision, MAP@R)")
    table, skipped, counts = {}, {}, {}

    def score(name: str, z) -> None:
        m = ev.metric_retrieval(z, y, ks=ks)
        counts.update(queries=m.pop("queries"), singletons=m.pop("singletons"), items=m.pop("items"))
        table[name] = m

    try:                                        # the flattened test pixels in memory as float32
        check_image_bytes("pixels", n=n, channels=data.channels, size=data.image_size, bytes_per_value=4)
    except ValueError as e:
        skipped["pixels"] = f"the test images' raw pixels do not fit in memory ({e})"
    else:
        score("pixels", ev.embed(nn.Flatten(), x))                      # (N, C*H*W) in [0, 1], streamed if on disk
    if trainer.make_encoder is None:
        skipped["untrained"] = "a custom encoder: give Trainer(make_encoder=...) to build a fresh one"
    else:
        with torch.random.fork_rng(devices=[]):                     # the caller's random state is left alone
            torch.manual_seed(cfg.seed)
            fresh = trainer.make_encoder().to(trainer.device)
        score("untrained", ev.embed(fresh, x))
        del fresh
    score(cfg.method, test_f if test_f is not None else ev.embed(feats, x))
    if getattr(METHODS.get(cfg.method), "needs_labels", False) and cfg.method != "supervised":
        log(f"retrieval: the supervised baseline trains `supervised` for {trainer.step} steps on the same data")
        score("supervised", ev.embed(_supervised_baseline(trainer), x))
    return {"split": "test", "similarity": "cosine", "ks": list(ks), **counts, "table": table, "skipped": skipped,
            "seconds": round(time.perf_counter() - t0, 1)}


def _supervised_baseline(trainer: Trainer):
    """The eval features of the `supervised` method trained like the run (same data, encoder, augmentation, optimiser,
    batch size, seed and number of steps) in a temporary run directory."""
    import tempfile
    from pathlib import Path

    from .. import devices
    cfg = trainer.config
    base = TrainConfig.from_dict({**cfg.to_dict(), "method": "supervised", "hyperparameters": {}, "epochs": None,
                                  "minutes": None, "steps": trainer.step, "final_eval": False, "log": [],
                                  "mlflow_uri": None, "monitor_every": trainer.step})   # no online monitor to speak of
    rng = devices.rng_state()                    # training seeds the generators: the caller's state comes back
    try:
        with tempfile.TemporaryDirectory(prefix="contrastlab-supervised-") as tmp:
            baseline = Trainer.from_config(base, Path(tmp) / "run", show_progress=False, data=trainer.data)
            baseline.fit()
    finally:
        devices.set_rng_state(rng)
    return baseline.features()


def format_image_report(results: dict) -> str:
    """The image evaluation table, then the retrieval table when `results` has one."""
    from ..eval import format_metric_retrieval, format_report
    text = format_report(results)
    if isinstance(results.get("retrieval"), dict):
        table = format_metric_retrieval(results["retrieval"])
        text = table if text == "(no evaluation results)" else f"{text}\n\n{table}"
    return text


def evaluate_run(run_dir, *, parts=None, label_fractions=(0.01, 0.1), k: int = 200,
                 knn_temperature: float = 0.1, finetune_steps: int = 500, log=print, device: str | None = None) -> dict:
    """Load the run's last checkpoint, evaluate, merge into `RUN/eval.json` and return the results. `parts` None:
    the default parts of the run's kind of data (images: DEFAULT_PARTS; text: retrieval and baselines). `device`
    (auto | cpu | cuda | ...) replaces the run's own: a run trained on a GPU is evaluated on a CPU, and the reverse."""
    from .evaluate_text import TEXT_PARTS, evaluate_text, format_retrieval
    trainer = Trainer.resume(run_dir, show_progress=False, for_training=False, device=device)
    own = getattr(trainer.task, "evaluate_run", None)      # a task that evaluates its own runs (sequences)
    if own is not None:
        results, report = own(parts=parts, log=log)
    elif trainer.task.modality == "image_text":
        from .evaluate_multimodal import evaluate_multimodal, format_cross_modal
        if parts is not None:
            raise ValueError(f"an image-text run is evaluated as a whole (cross-modal retrieval, zero-shot, "
                             f"cross-lingual); do not choose parts, got {list(parts)}")
        results = evaluate_multimodal(trainer, log=log)
        report = format_cross_modal
    elif trainer.task.modality == "text":
        other = sorted(set(parts or ()) - set(TEXT_PARTS))
        if other:
            raise ValueError(f"a text run is evaluated by retrieval (`--retrieval`); {other} are for image runs")
        results = evaluate_text(trainer, parts=TEXT_PARTS if parts is None else parts, log=log)
        report = format_retrieval
    else:
        if parts is not None and "retrieval" in parts:      # `--retrieval`: an image run's holds its own baselines
            parts = [p for p in parts if p != "baselines"]
        if parts is not None and set(parts) & (set(TEXT_PARTS) - set(PARTS)):
            raise ValueError("`baselines` is for text runs; an image run's `retrieval` part has its baselines")
        results = evaluate(trainer, parts=DEFAULT_PARTS if parts is None else parts, label_fractions=label_fractions,
                           k=k, knn_temperature=knn_temperature, finetune_steps=finetune_steps, log=log)
        report = format_image_report
    path = trainer.run.path / "eval.json"
    merged = read_json(path) if path.exists() else {}
    if merged.get("step") != results["step"]:
        merged = {}                       # an evaluation of an older checkpoint: start afresh
    merged.update(results)
    trainer.run.write_eval(merged)
    log(report(merged))
    return merged


def log_eval(run_dir, results: dict | None = None) -> None:
    """Send the run's evaluation (`results`, default RUN/eval.json) to the trackers of its `log` that keep one."""
    run = RunDir(run_dir)
    config = TrainConfig.from_dict(run.config()["train"])
    if not config.log:
        return
    results = results if results is not None else read_json(run.path / "eval.json")
    trackers = Trackers(config)
    for tracker in trackers.open(run):
        try:
            tracker.evaluation(results)
        except Exception as e:
            print(f"contrastlab: `log` {tracker.name} could not record the evaluation ({type(e).__name__}: {e})",
                  file=sys.stderr)
    trackers.save()
