"""Offline evaluation of a run: the frozen encoder from the last checkpoint, judged on the full train/test split.

This is the evaluation the report and `RUN/eval.json` hold; the online kNN monitor during training uses a small
fixed subset and is only a progress signal. Keys: `knn_top1`, `linear_top1`, `label_fraction`, `alignment`,
`uniformity`, `robustness`, `verification`, `pixels_knn_top1`, `pixels_linear_top1`, plus what was run and skipped.
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

__all__ = ["evaluate", "evaluate_run", "log_eval", "PARTS"]

PARTS = ("knn", "linear", "label_fractions", "geometry", "verification", "robustness", "pixels")
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
    needs_labels = {"knn", "linear", "label_fractions", "verification", "robustness", "pixels"}
    classes = int(torch.unique(data.y).numel()) if labelled else 0
    for p in parts:
        if p in needs_labels and not labelled:
            out["skipped"][p] = "needs labelled train and test images"
        elif p in needs_labels and classes < 2:
            out["skipped"][p] = f"needs at least 2 classes, the labels hold {classes}"
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
    if "label_fractions" in todo:
        log(f"label efficiency at fractions {list(label_fractions)}: fine-tune pretrained vs from scratch")
        torch.manual_seed(cfg.seed)
        out["label_fraction"] = ev.label_efficiency(
            trainer.make_encoder, method.encoder.state_dict(), data.x, data.y, data.x_test, data.y_test,
            fractions=tuple(label_fractions), num_classes=data.num_classes, steps=finetune_steps, seed=cfg.seed,
            augment=trainer.augment)
    method.train()
    out["seconds"] = round(time.perf_counter() - t0, 1)
    return out


def evaluate_run(run_dir, *, parts=None, label_fractions=(0.01, 0.1), k: int = 200,
                 knn_temperature: float = 0.1, finetune_steps: int = 500, log=print, device: str | None = None) -> dict:
    """Load the run's last checkpoint, evaluate, merge into `RUN/eval.json` and return the results. `parts` None:
    the default parts of the run's kind of data (images: DEFAULT_PARTS; text: retrieval and baselines). `device`
    (auto | cpu | cuda | ...) replaces the run's own: a run trained on a GPU is evaluated on a CPU, and the reverse."""
    from ..eval import format_report
    from .evaluate_text import TEXT_PARTS, evaluate_text, format_retrieval
    trainer = Trainer.resume(run_dir, show_progress=False, for_training=False, device=device)
    if trainer.task.modality == "image_text":
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
        if parts is not None and set(parts) & set(TEXT_PARTS):
            raise ValueError("`--retrieval` is for text runs; this run trained on images")
        results = evaluate(trainer, parts=DEFAULT_PARTS if parts is None else parts, label_fractions=label_fractions,
                           k=k, knn_temperature=knn_temperature, finetune_steps=finetune_steps, log=log)
        report = format_report
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
