"""Train each method on Fashion-MNIST for a fixed CPU budget and judge the frozen encoders in one table.

    python benchmarks/train_fmnist.py                       # 15 minutes per method (the issue's budget)
    python benchmarks/train_fmnist.py --minutes 5 --methods simclr,supervised

Rows: raw pixels, a randomly initialised encoder of the same architecture, and each trained method; columns:
weighted kNN top-1 (k=200, cosine), linear probe top-1, and fine-tuning with 1% / 10% of the labels, pretrained
vs from scratch (the same network, subset, recipe and number of steps). Every number is on the 10k test images.
Runs go to `--out` (default .bench/train_fmnist/); an existing finished run is evaluated again, not retrained.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
GOALS = "SimCLR linear >= 88% and kNN >= 86%; SupCon >= supervised; SimCLR 1% fine-tune >= scratch + 5 points"


def _train(method: str, minutes: float, run: Path, extra: list[str]) -> None:
    if (run / "status.json").exists() and json.loads((run / "status.json").read_text()).get("state") == "done":
        print(f"[{method}] reusing finished run {run}", flush=True)
        return
    if (run / "checkpoints" / "last.pt").exists():           # an interrupted benchmark: continue the run
        cmd = [sys.executable, "-m", "contrastlab", "train", "--resume", str(run)]
    else:
        shutil.rmtree(run, ignore_errors=True)                 # killed before its first checkpoint
        cmd = [sys.executable, "-m", "contrastlab", "train", method, "--data", "fashion-mnist", "--minutes",
               str(minutes), "--run", str(run), "--no-eval", *extra]
    print(f"[{method}] {' '.join(cmd[1:])}", flush=True)
    subprocess.run(cmd, check=True, cwd=ROOT)


def _random_encoder_row(data, seed: int) -> dict:
    """kNN and linear probe on an untrained encoder (the architecture's prior, no learning)."""
    from contrastlab import eval as ev
    from contrastlab.models import create_encoder
    from contrastlab.train.trainer import channel_stats
    torch.manual_seed(seed)
    mean, std = channel_stats(data.x)
    enc = create_encoder("small_cnn", in_channels=data.channels, mean=mean, std=std).eval()
    tr, te = ev.embed(enc, data.x), ev.embed(enc, data.x_test)
    return {"knn_top1": ev.knn_top1(tr, data.y, te, data.y_test, k=200, temperature=0.1),
            "linear_top1": ev.linear_probe(tr, data.y, te, data.y_test)["top1"]}


def _pct(v) -> str:
    return "-" if v is None else f"{100 * v:.1f}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=15.0, help="training budget per method (default 15)")
    ap.add_argument("--minutes-for", default="", metavar="M=MIN,...",
                    help="per-method budgets overriding --minutes, e.g. moco=5,triplet=5")
    ap.add_argument("--methods", default="simclr,moco,supcon,triplet,supervised")
    ap.add_argument("--label-fractions", default="0.01,0.1")
    ap.add_argument("--label-methods", default="simclr,supcon,supervised",
                    help="methods whose encoders are also fine-tuned on label fractions (costly)")
    ap.add_argument("--finetune-steps", type=int, default=300)
    ap.add_argument("--out", type=Path, default=ROOT / ".bench" / "train_fmnist")
    ap.add_argument("--set", dest="overrides", action="append", default=[], help="passed to every training run")
    ap.add_argument("--json", type=Path, help="also write the results as JSON")
    args = ap.parse_args()
    from contrastlab import __version__
    from contrastlab.data import load_images
    from contrastlab.train import evaluate_run

    methods = [m for m in args.methods.split(",") if m]
    minutes = {m: args.minutes for m in methods}
    for item in filter(None, args.minutes_for.split(",")):
        name, _, value = item.partition("=")
        if name not in minutes:
            ap.error(f"--minutes-for names {name!r}, which is not in --methods {methods}")
        minutes[name] = float(value)
    fractions = tuple(float(f) for f in args.label_fractions.split(",") if f)
    extra = [a for o in args.overrides for a in ("--set", o)]
    args.out.mkdir(parents=True, exist_ok=True)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout
    print(f"torch {torch.__version__} | {torch.get_num_threads()} threads | {platform.processor() or platform.machine()}"
          f" | {os.cpu_count()} cores | contrastlab {__version__} @ {commit.strip()} | minutes: {minutes}")
    data = load_images("fashion-mnist")
    rows: dict[str, dict] = {}
    t0 = time.perf_counter()
    from contrastlab import eval as ev
    rows["raw pixels"] = ev.pixel_baselines(data.x, data.y, data.x_test, data.y_test, k=200)
    rows["raw pixels"] = {"knn_top1": rows["raw pixels"]["pixels_knn_top1"],
                          "linear_top1": rows["raw pixels"]["pixels_linear_top1"]}
    rows["random init (small_cnn)"] = _random_encoder_row(data, 0)
    print(f"baselines in {time.perf_counter() - t0:.0f} s", flush=True)
    for m in methods:
        run = args.out / m
        _train(m, minutes[m], run, extra)
        parts = ["knn", "linear"] + (["label_fractions"] if m in args.label_methods.split(",") else [])
        res = evaluate_run(run, parts=parts, label_fractions=fractions, finetune_steps=args.finetune_steps,
                           log=lambda s: print(f"[{m}] {s}", flush=True))
        cfg = json.loads((run / "config.json").read_text())
        status = json.loads((run / "status.json").read_text())
        res["steps"], res["budget_minutes"] = status["step"], cfg["budget"].get("minutes")
        res["epochs"] = round(status["step"] * cfg["train"]["batch_size"] / len(data.x), 2)
        rows[m] = res

    cols = [f"{f:g}" for f in fractions]
    head = "| encoder | budget (min) | steps | epochs | kNN top-1 | linear top-1 | " + " | ".join(
        f"{c} labels: pretrained / scratch" for c in cols) + " |"
    print("\n### Fashion-MNIST, frozen-encoder evaluation on the 10k test images\n")
    print(head)
    print("|" + "---|" * (6 + len(cols)))
    for name, r in rows.items():
        lf = r.get("label_fraction", {})
        cells = []
        for f in fractions:                    # keys are floats in memory, strings after a JSON round trip
            v = lf.get(f) or lf.get(str(f))
            cells.append(f"{_pct(v['pretrained'])} / {_pct(v['scratch'])}" if v else "-")
        print(f"| {name} | {r.get('budget_minutes', '-')} | {r.get('steps', '-')} | {r.get('epochs', '-')} | {_pct(r.get('knn_top1'))} | "
              f"{_pct(r.get('linear_top1'))} | " + " | ".join(cells) + " |")

    print(f"\nGoals (the issue sets them for 15 minutes per method): {GOALS}")
    s = rows.get("simclr")
    if s:
        print(f"- SimCLR linear {_pct(s.get('linear_top1'))}% (goal 88): "
              f"{'met' if s.get('linear_top1', 0) >= 0.88 else 'NOT MET'}")
        print(f"- SimCLR kNN {_pct(s.get('knn_top1'))}% (goal 86): {'met' if s.get('knn_top1', 0) >= 0.86 else 'NOT MET'}")
        lf = s.get("label_fraction", {})
        one = lf.get(0.01) or lf.get("0.01")
        if one:
            gain = 100 * (one["pretrained"] - one["scratch"])
            print(f"- SimCLR 1% labels: +{gain:.1f} points over scratch (goal +5): {'met' if gain >= 5 else 'NOT MET'}")
    if "supcon" in rows and "supervised" in rows:
        a, b = rows["supcon"].get("linear_top1", 0), rows["supervised"].get("linear_top1", 0)
        print(f"- SupCon linear {_pct(a)}% vs supervised {_pct(b)}%: {'met' if a >= b else 'NOT MET'}")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
