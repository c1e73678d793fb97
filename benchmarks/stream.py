"""Peak memory of training on an image folder, streamed from disk or loaded in memory, at 2,000 and 20,000 images.

    python benchmarks/stream.py                        # 96 px, 2,000 and 20,000 PNGs, 40 SimCLR steps per run
    python benchmarks/stream.py --small 200 --large 2000 --steps 4 --side 32      # a quick check

The claim: streamed, peak memory does not grow with the size of the collection (the goal: the 20,000-image run
within 1.2x of the 2,000-image run), while the in-memory loader's grows with it (the anchor, measured in the same
run). Each of the four runs is its own process: `contrastlab` SimCLR on `folder:PATH` with the same settings, the
same number of steps and DataLoader workers. Memory is the peak of the whole process tree, sampled every 20 ms from
/proc: the trainer's resident set plus each decoding worker's private memory (USS; the pages a forked worker shares
with the trainer are counted once). The trainer's own peak RSS (VmHWM, exact) is shown beside it. The folders are
generated once (PNG, one sub-folder per class) under `--out`. The online monitor's probe and kNN bank have the same
size in every run (PROBE, BANK), so that only the data differs between the runs.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CLASSES = 10
PROBE, BANK = 256, 1024    # the online monitor's images, the same in every run (at most the small folder's test split
                           # and train split): what grows with the folder is then the data alone, not the monitor


def _children(pid: int) -> list[int]:
    out = []
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{tid}/children") as f:
                out += [int(c) for c in f.read().split()]
    except OSError:
        pass
    return out


def _kib(pid: int, fields: tuple[str, ...], name: str = "smaps_rollup") -> int:
    try:
        with open(f"/proc/{pid}/{name}") as f:
            return sum(int(line.split()[1]) for line in f if line.split(":")[0] in fields)
    except OSError:
        return 0


def tree_kib(pid: int) -> int:
    """The trainer's resident memory plus its workers' private memory (USS: what each worker adds; the pages they
    share with the trainer after fork are counted once, in the trainer)."""
    total, todo = _kib(pid, ("VmRSS",), "status"), _children(pid)
    while todo:
        p = todo.pop()
        total += _kib(p, ("Private_Clean", "Private_Dirty"))
        todo += _children(p)
    return total


def _make_folder(root: Path, n: int, side: int, *, like: Path | None = None) -> Path:
    """`n` PNGs of `side` px in CLASSES sub-folders; images of a smaller folder are hard links into `like`."""
    import numpy as np
    from PIL import Image
    done = root / ".complete"
    if done.exists():
        return root
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:side, :side] / side
    for i in range(n):
        cls = i % CLASSES
        path = root / f"class{cls}" / f"{i:06d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        if like is not None:
            os.link(like / f"class{cls}" / f"{i:06d}.png", path)
            continue
        freq = 1 + cls
        base = np.sin(2 * np.pi * (freq * xx + rng.random()) ) * np.cos(2 * np.pi * (freq * yy + rng.random()))
        img = (127 + 100 * base[..., None] * rng.random(3) + rng.normal(0, 8, (side, side, 3))).clip(0, 255)
        Image.fromarray(img.astype(np.uint8)).save(path, compress_level=1)
        if (i + 1) % 2000 == 0:
            print(f"  wrote {i + 1}/{n} images", flush=True)
    done.write_text(str(n))
    return root


def child(args) -> None:
    """One training run in this process; prints one JSON line with its peaks."""
    from contrastlab.progress import quiet
    from contrastlab.train import TrainConfig, Trainer
    peak = {"tree": 0}
    stop = threading.Event()

    def sample():
        while not stop.is_set():
            peak["tree"] = max(peak["tree"], tree_kib(os.getpid()))
            stop.wait(0.02)
    t = threading.Thread(target=sample, daemon=True)
    t.start()
    t0 = time.perf_counter()
    cfg = TrainConfig(method="simclr", data=f"folder:{args.folder}", steps=args.steps, batch_size=args.batch,
                      stream=args.mode == "stream", workers=args.workers, final_eval=False, seed=0,
                      probe_size=PROBE, monitor_bank=BANK, hyperparameters={"proj_hidden_dim": 256, "proj_dim": 64})
    with quiet():
        trainer = Trainer.from_config(cfg, args.run, show_progress=False)
        loaded = time.perf_counter() - t0
        trainer.fit()
    stop.set()
    t.join()
    with open("/proc/self/status") as f:
        hwm = next(int(line.split()[1]) for line in f if line.startswith("VmHWM:"))
    print(json.dumps({"tree_mib": peak["tree"] / 1024, "trainer_rss_mib": hwm / 1024, "images": len(trainer.data)
                      + (0 if trainer.data.x_test is None else len(trainer.data.x_test)),
                      "streamed": trainer.data.streamed, "load_s": loaded, "total_s": time.perf_counter() - t0}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--small", type=int, default=2000)
    ap.add_argument("--large", type=int, default=20000)
    ap.add_argument("--side", type=int, default=96)
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--out", type=Path, default=ROOT / ".bench" / "stream")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--mode", choices=("stream", "memory"), help=argparse.SUPPRESS)
    ap.add_argument("--folder", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--run", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        return child(args)
    if args.small >= args.large:
        raise SystemExit(f"--small must be below --large, got {args.small} and {args.large}")
    print(f"folders of {args.small:,} and {args.large:,} PNGs at {args.side} px under {args.out}", flush=True)
    large = _make_folder(args.out / f"photos-{args.large}-{args.side}", args.large, args.side)
    small = _make_folder(args.out / f"photos-{args.small}-{args.side}", args.small, args.side, like=large)
    env = {**os.environ, "XDG_CACHE_HOME": str(args.out / "cache")}   # the folder check is cached per run set
    rows = {}
    for mode in ("memory", "stream"):
        for n, folder in ((args.small, small), (args.large, large)):
            run = args.out / "runs" / f"{mode}-{n}"
            subprocess.run(["rm", "-rf", str(run)], check=True)
            print(f"training on {n:,} images, {mode} ({args.steps} steps, batch {args.batch}) ...", flush=True)
            p = subprocess.run([sys.executable, __file__, "--child", "--mode", mode, "--folder", str(folder), "--run",
                                str(run), "--steps", str(args.steps), "--batch", str(args.batch), "--workers",
                                str(args.workers)], capture_output=True, text=True, env=env, cwd=ROOT)
            if p.returncode != 0:
                raise SystemExit(f"{mode} run on {n} images failed:\n{p.stderr[-3000:]}")
            rows[mode, n] = json.loads(p.stdout.strip().splitlines()[-1])
    raw = args.large * 3 * args.side * args.side / 2 ** 20
    print(f"\npeak memory, SimCLR small_cnn, {args.side} px, batch {args.batch}, {args.steps} steps, "
          f"{args.workers} decoding workers when streamed; the {args.large:,} images decoded take {raw:,.0f} MiB")
    print(f"| loader | images | peak, trainer + workers | trainer peak RSS | load s | growth {args.small:,} -> "
          f"{args.large:,} |")
    print("| --- | --- | --- | --- | --- | --- |")
    for mode in ("memory", "stream"):
        a, b = rows[mode, args.small], rows[mode, args.large]
        for n, r in ((args.small, a), (args.large, b)):
            growth = f"{b['tree_mib'] / a['tree_mib']:.2f}x" if n == args.large else ""
            name = "in memory (anchor)" if mode == "memory" else "streamed (ours)"
            print(f"| {name} | {r['images']:,} | {r['tree_mib']:,.0f} MiB | {r['trainer_rss_mib']:,.0f} MiB | "
                  f"{r['load_s']:.1f} | {growth} |")
    st = rows["stream", args.large]["tree_mib"] / rows["stream", args.small]["tree_mib"]
    mem = rows["memory", args.large]["tree_mib"] / rows["memory", args.small]["tree_mib"]
    print(f"\nstreamed growth {st:.2f}x (goal <= 1.20x: {'met' if st <= 1.2 else 'NOT met'}); "
          f"in-memory growth {mem:.2f}x")


if __name__ == "__main__":
    main()
