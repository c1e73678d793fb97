"""Retrieval of a SimCLR run on Fashion-MNIST beside raw pixels and the untrained encoder, in one table.

    python benchmarks/retrieval.py                    # 15 minutes of SimCLR training (the issue's budget)
    python benchmarks/retrieval.py --minutes 0.3      # a smoke run

Trains SimCLR on Fashion-MNIST for `--minutes` into `--out`/simclr (default .bench/retrieval/; a finished run there is
evaluated again, not retrained), then runs `contrastlab eval RUN --retrieval`'s evaluation: the 10k test images query
each other (self excluded, cosine, exact search; Musgrave et al. 2020, "A Metric Learning Reality Check"), scored by
precision@1, precision@10, R-precision and MAP@R for raw pixels, the small_cnn freshly initialised with the run's
seed (random init) and the trained encoder, on the same queries. The evaluation's seconds and peak memory (the
process's resident-set peak; on a GPU also torch's peak allocation) are printed under the table.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _harness import proc_kib, reset_peak  # noqa: E402  (benchmarks/ is on sys.path when run as a script)
from train_fmnist import _train  # noqa: E402

import torch  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
NAMES = {"pixels": "raw pixels", "untrained": "random init (small_cnn)"}
COLUMNS = (("precision@1", "P@1"), ("precision@10", "P@10"), ("r_precision", "R-precision"), ("map@r", "MAP@R"))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=15.0, help="SimCLR training budget (default 15)")
    ap.add_argument("--out", type=Path, default=ROOT / ".bench" / "retrieval")
    ap.add_argument("--device", default=None, help="where to evaluate (default: the run's own setting)")
    ap.add_argument("--set", dest="overrides", action="append", default=[], help="passed to the training run")
    ap.add_argument("--json", type=Path, help="also write the retrieval results as JSON")
    args = ap.parse_args()
    if not args.minutes > 0:
        ap.error(f"--minutes must be > 0, got {args.minutes}")
    from contrastlab import __version__, devices
    from contrastlab.train import evaluate_run

    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout
    print(f"torch {torch.__version__} | {torch.get_num_threads()} threads | {platform.processor() or platform.machine()}"
          f" | {os.cpu_count()} cores | contrastlab {__version__} @ {commit.strip()} | SimCLR minutes: {args.minutes:g}",
          flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    run = args.out / "simclr"
    _train("simclr", args.minutes, run, [a for o in args.overrides for a in ("--set", o)])

    device = devices.resolve(args.device or json.loads((run / "config.json").read_text())["train"]["device"])
    measured = reset_peak()
    devices.reset_peak_memory(device)
    t0 = time.perf_counter()
    res = evaluate_run(run, parts=["retrieval"], device=args.device, log=lambda s: print(f"[eval] {s}", flush=True))
    seconds = time.perf_counter() - t0
    rss = proc_kib("VmHWM") / 1024
    gpu = devices.peak_memory(device)

    r = res["retrieval"]
    status = json.loads((run / "status.json").read_text())
    budget = json.loads((run / "config.json").read_text())["budget"].get("minutes")
    print(f"\n### Fashion-MNIST retrieval: the {r['items']:,} test images query each other (self excluded, cosine)\n")
    print("| encoder | " + " | ".join(h for _, h in COLUMNS) + " |")
    print("|---|" + "---:|" * len(COLUMNS))
    for name, row in r["table"].items():
        label = NAMES.get(name, f"SimCLR ({budget:g} min, {status['step']:,} steps)" if name == "simclr" else name)
        print(f"| {label} | " + " | ".join(f"{100 * row[k]:.1f}" for k, _ in COLUMNS) + " |")
    for name, why in r["skipped"].items():
        print(f"\nskipped: {name} ({why})")
    peak = f"peak RSS {rss:,.0f} MiB" + ("" if measured else " (the peak could not be reset: the process's peak)")
    if gpu is not None:
        peak += f", torch peak on {device} {gpu / 2 ** 20:,.0f} MiB"
    print(f"\nevaluation: {seconds:.1f} s in all (loading the run and data included; the retrieval part "
          f"{r['seconds']:.1f} s), {peak}; scores in %")
    if args.json:
        args.json.write_text(json.dumps({**r, "eval_seconds": round(seconds, 1), "peak_rss_mib": round(rss),
                                         "gpu_peak_bytes": gpu, "train_steps": status["step"]}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
