"""Offline evaluation of a sequence run: frozen pooled features of the full train/test split.

Keys: ``svm_top1`` (RBF SVM, C by cross-validation: TS2Vec's protocol) with ``svm_C``, ``linear_top1`` (L-BFGS
logistic regression), ``one_nn_euclidean_top1`` (1-NN on the raw series, the UCR reference) and
``untrained_svm_top1`` / ``untrained_linear_top1`` (the same encoder with its initial random weights, seeded by the
run's seed), and ``label_fraction`` ({fraction: {"pretrained", "scratch"}}: the evaluated encoder and a fresh one
fine-tuned end to end with a linear head on a stratified fraction of the training labels, as for images; see
:func:`contrastlab.eval.label_efficiency`).
"""
from __future__ import annotations

import time
from datetime import datetime, timezone

import torch

__all__ = ["evaluate_sequences", "format_sequence_report", "frozen_scores"]


def frozen_scores(encoder, data, *, seed: int = 0) -> dict:
    """{"svm_top1", "svm_C", "linear_top1"} of `encoder`'s pooled features (`encoder(x)` -> (B, F))."""
    from ..eval import linear_probe
    from ..eval.sequences import embed_series, svm_accuracy
    train_f, test_f = embed_series(encoder, data.x), embed_series(encoder, data.x_test)
    svm = svm_accuracy(train_f, data.y, test_f, data.y_test, seed=seed)
    linear = linear_probe(train_f, data.y, test_f, data.y_test, num_classes=data.num_classes)
    return {"svm_top1": svm["top1"], "svm_C": svm["C"], "linear_top1": linear["top1"]}


#: label efficiency of a sequence run: UCR/UEA training sets hold 20 to 1,000 series, so the images' 1% would
#: leave less than one series per class; 10% and 50% of the labels instead
SEQUENCE_LABEL_FRACTIONS = (0.1, 0.5)
FINETUNE_STEPS = 100


def evaluate_sequences(trainer, *, label_fractions=SEQUENCE_LABEL_FRACTIONS, finetune_steps: int = FINETUNE_STEPS,
                       log=print) -> dict:
    from ..eval import label_efficiency
    from ..eval.sequences import one_nn_euclidean
    data, method, cfg = trainer.data, trainer.method, trainer.config
    out: dict = {"method": cfg.method, "data": cfg.data, "step": trainer.step,
                 "evaluated": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"), "skipped": {}}
    if data.y is None or data.x_test is None or int(torch.unique(data.y).numel()) < 2:
        out["skipped"]["all"] = "needs labelled train and test series of at least 2 classes"
        return out
    t0 = time.perf_counter()
    log(f"SVM and linear probe on frozen features of {len(data.x)} train and {len(data.x_test)} test series")
    was = method.training
    method.eval()
    out.update(frozen_scores(trainer.features(), data, seed=cfg.seed))
    method.train(was)
    out["one_nn_euclidean_top1"] = one_nn_euclidean(data.x, data.y, data.x_test, data.y_test)
    if trainer.make_encoder is not None:
        rng = torch.get_rng_state()
        torch.manual_seed(cfg.seed)                              # the run's initial weights (built after this seed)
        untrained = trainer.make_encoder()
        torch.set_rng_state(rng)
        from ..devices import module_device
        untrained.to(module_device(method))
        out.update({f"untrained_{k}": v for k, v in frozen_scores(untrained, data, seed=cfg.seed).items()})
        if label_fractions:
            log(f"label efficiency at fractions {list(label_fractions)}: fine-tune pretrained vs from scratch "
                f"({finetune_steps} steps each, no augmentation)")
            torch.manual_seed(cfg.seed)
            out["label_fraction"] = label_efficiency(
                trainer.make_encoder, method.evaluated_encoder().state_dict(), data.x, data.y, data.x_test,
                data.y_test, fractions=tuple(label_fractions), num_classes=data.num_classes, steps=finetune_steps,
                seed=cfg.seed, batch_size=cfg.batch_size, progress=trainer.show_progress)
    else:
        out["skipped"]["untrained"] = "a custom encoder: give Trainer(make_encoder=...) to build an untrained one"
        out["skipped"]["label_fraction"] = "a custom encoder: give Trainer(make_encoder=...) to fine-tune from scratch"
    out["seconds"] = round(time.perf_counter() - t0, 1)
    return out


def format_sequence_report(results: dict) -> str:
    rows = [("SVM (RBF, C by CV)", "svm_top1", "untrained_svm_top1"),
            ("linear probe", "linear_top1", "untrained_linear_top1")]
    if "svm_top1" not in results:
        return "(no evaluation results: " + "; ".join(f"{k}: {v}" for k, v in results.get("skipped", {}).items()) + ")"
    lines = [f"{results['method']} on {results['data']} at step {results['step']}",
             f"  {'protocol':<22}{'trained':>9}{'untrained':>11}"]
    for label, mine, base in rows:
        other = results.get(base)
        lines.append(f"  {label:<22}{results[mine]:>9.3f}{'' if other is None else f'{other:>11.3f}'}")
    lines.append(f"  {'1-NN Euclidean (raw)':<22}{results['one_nn_euclidean_top1']:>9.3f}")
    for fraction, accs in results.get("label_fraction", {}).items():
        lines.append(f"  {f'fine-tune, {float(fraction):.0%} labels':<22}{accs['pretrained']:>9.3f}"
                     f"{accs['scratch']:>11.3f}  (from scratch)")
    return "\n".join(lines)
