"""The `contrastlab eval RUN` command: evaluate a run's encoder and write RUN/eval.json (the evaluation code is
imported when the command runs).

>>> import argparse
>>> parser = argparse.ArgumentParser(prog="contrastlab")
>>> register(parser.add_subparsers(dest="command"), parser)
>>> args = parser.parse_args(["eval", "runs/simclr", "--knn", "--label-fractions", "0.1"])
>>> args.knn, args.label_fractions, args.k
(True, (0.1,), 200)
"""
from __future__ import annotations

import functools
from pathlib import Path

from .types import fractions, positive_float, positive_int

__all__ = ["register", "eval_command"]


def register(subparsers, top) -> None:
    """Add `eval` to an argparse subparsers object; its usage errors are reported by `top`."""
    ev = subparsers.add_parser("eval", help="evaluate a run's encoder (writes RUN/eval.json)")
    ev.add_argument("run", type=Path)
    ev.add_argument("--device", metavar="DEVICE", help="where to embed: auto, cpu, cuda, cuda:N or mps (default: "
                                                        "the run's own setting)")
    ev.add_argument("--knn", action="store_true", help="weighted kNN top-1")
    ev.add_argument("--linear", action="store_true", help="linear probe top-1")
    ev.add_argument("--label-fractions", type=fractions, metavar="F1,F2",
                    help="fine-tune with these fractions of the labels vs from scratch, e.g. 0.01,0.1")
    ev.add_argument("--k", type=positive_int, default=200, help="neighbours for kNN (default 200)")
    ev.add_argument("--knn-temperature", type=positive_float, default=0.1)
    ev.add_argument("--finetune-steps", type=positive_int, default=500)
    ev.add_argument("--retrieval", action="store_true",
                    help="image runs: P@1, P@10, R-precision, MAP@R of the test images querying each other, beside "
                         "raw pixels and the untrained encoder; text runs: recall@1/10/100, MRR@10, nDCG@10, MAP "
                         "with BM25, TF-IDF and wordllama alongside")
    ev.set_defaults(handler=functools.partial(eval_command, parser=top))


def eval_command(args, *, parser) -> int:
    """`contrastlab eval RUN [--knn] [--linear] [--label-fractions F1,F2] [--retrieval]`."""
    from ..io import CheckpointError
    from ..train import evaluate_run
    from ..train.evaluate import log_eval
    parts = [p for p, on in (("knn", args.knn), ("linear", args.linear),
                             ("label_fractions", args.label_fractions is not None)) if on]
    if args.retrieval:                     # image runs: "retrieval" has its own baselines; text runs: both parts
        parts += ["retrieval", "baselines"]
    parts = parts or None                  # the run's default parts (images or text)
    try:
        results = evaluate_run(args.run, parts=parts, label_fractions=args.label_fractions or (0.01, 0.1),
                               k=args.k, knn_temperature=args.knn_temperature, finetune_steps=args.finetune_steps,
                               device=args.device)
        log_eval(args.run, results)
    except (FileNotFoundError, CheckpointError, ValueError) as e:
        parser.exit(2, f"contrastlab eval: {e}\n")
    return 0
