"""Scaling the contrastive batch: processes (Gloo), gradient caching (GradCache), mixed precision (GPU).

What it measures, all in this one run (the machine is shared and noisy: only side-by-side numbers compare):

1. **Processes** (CPU): SimCLR steps (small CNN + projection head + NT-Xent with global negatives, SGD) on random
   28x28 images, the same global batch (default 512 pairs) in 1 process with all cores against 2 Gloo processes
   with half the batch and half the cores each (DDP + ``global_nt_xent``). Pairs/s and the ratio 2-proc / 1-proc.
2. **GradCache** (CPU): the largest batch whose training step stays within a peak-RSS budget (default 4 GiB,
   the whole process's VmHWM, torch included), without and with gradient caching (micro-batches of 256 pairs).
   Each trial runs in its own subprocess (killed by a watchdog once its RSS passes the budget); the search fits
   the measured peaks with a line, probes where it meets the budget and brackets the limit to 5%. With caching
   the memory limit lies far beyond what a few minutes of CPU can step through, so that search starts at the
   direct limit and stops at ``--cached-times`` x the direct limit, and says so (printing the batch the
   fitted line predicts for the budget). Then the time per step, cached / direct, at a batch both can do
   (``--time-pairs``): direct and cached steps interleaved in one process, medians after one warm-up each.
3. **Precision** (only when CUDA is present): SimCLR images/s on Fashion-MNIST (augmented on the GPU) at batch
   512 and 4096, fp32 against bf16 autocast.

Run:  .venv/bin/python benchmarks/scale.py [--quick] [--budget-gib 4] [--cached-times 2] [--json out.json]
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import sys
import threading
import time

from _harness import proc_kib, spawn_case  # noqa: E402  (benchmarks/ is on sys.path when run as a script)

PROJ, TEMPERATURE, MICRO = 128, 0.5, 256


# ------------------------------------------------------------------------------------------------- shared pieces
def _model():
    import torch
    from contrastlab.models import ProjectionHead, create_encoder
    enc = create_encoder("small_cnn", in_channels=1)
    return torch.nn.Sequential(enc, ProjectionHead(enc.out_dim, hidden_dim=512, out_dim=PROJ))


def _views(pairs: int, seed: int):
    import torch
    g = torch.Generator().manual_seed(seed)
    return torch.rand(pairs, 2, 1, 28, 28, generator=g)                      # (B, 2, 1, 28, 28)


def _encode(net):
    return lambda v: net(v.flatten(0, 1)).unflatten(0, v.shape[:2])          # (b, 2, ...) -> (b, 2, P)


def _loss(z):
    from contrastlab.losses.distributed import global_nt_xent
    return global_nt_xent(z[:, 0], z[:, 1], temperature=TEMPERATURE)


# ------------------------------------------------------------------------------------ 1. processes (spawned ranks)
def throughput_rank(global_pairs: int, steps: int, warmup: int, seed: int) -> dict:
    import torch
    from torch.nn.parallel import DistributedDataParallel as DDP
    from contrastlab import distributed as dist
    torch.manual_seed(seed)
    net = _model()
    model = DDP(net) if dist.world_size() > 1 else net
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    views = _views(global_pairs // dist.world_size(), dist.seed_for_rank(seed))
    times = []
    for s in range(warmup + steps):
        dist.barrier()
        t0 = time.perf_counter()
        loss = _loss(_encode(model)(views))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        dist.barrier()
        times.append(time.perf_counter() - t0)
    return {"step_s": statistics.median(times[warmup:]), "loss": dist.all_reduce_mean(loss)}


def bench_processes(args) -> list[dict]:
    from contrastlab.distributed import spawn_local
    cores = os.cpu_count() or 2
    rows = []
    for nprocs in (1, 2):
        out = spawn_local(throughput_rank, nprocs=nprocs, threads=max(1, cores // nprocs), timeout_s=600,
                          args=(args.pairs, args.steps, 1, 0))[0]
        rows.append({"processes": nprocs, "threads_each": max(1, cores // nprocs), "global_pairs": args.pairs,
                     "step_s": round(out["step_s"], 4), "pairs_per_s": round(args.pairs / out["step_s"], 1),
                     "loss": round(out["loss"], 4)})
    rows[1]["ratio"] = round(rows[1]["pairs_per_s"] / rows[0]["pairs_per_s"], 3)
    return rows


# ------------------------------------------------------------------------------- 2. GradCache (one trial per process)
def _watchdog(limit_kib: int) -> None:
    def watch():
        while True:
            if proc_kib("VmRSS") > limit_kib:
                print(json.dumps({"fits": False, "peak_gib": proc_kib("VmHWM") / 2**20, "killed": True}), flush=True)
                os._exit(0)
            time.sleep(0.005)
    threading.Thread(target=watch, daemon=True).start()


def run_trial(mode: str, pairs: int, steps: int, budget_gib: float, micro: int) -> dict:
    """One process, one configuration: ``steps`` SGD steps; peak RSS of the whole process and the step times."""
    import torch
    from contrastlab.train.gradcache import grad_cache_step, split_batch
    limit = int(budget_gib * 2**20)
    cap = proc_kib("VmSize") * 1024 + int((budget_gib + 4) * 2**30)        # hard stop for a runaway allocation
    resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
    _watchdog(limit)
    torch.manual_seed(0)
    net = _model()
    opt = torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9)
    views = _views(pairs, 1)

    def step(direct: bool) -> float:
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        if direct:
            _loss(_encode(net)(views)).backward()
        else:
            grad_cache_step(_encode(net), split_batch(views, micro), _loss, module=net)
        opt.step()
        return time.perf_counter() - t0
    if mode == "ab":                           # interleaved: direct, cached, direct, ... (load drifts cancel)
        times = {"direct": [], "cached": []}
        for _ in range(steps):
            for m in times:
                times[m].append(step(m == "direct"))
        return {"fits": True, "peak_gib": proc_kib("VmHWM") / 2**20, **times}
    times = [step(mode == "direct") for _ in range(steps)]
    peak = proc_kib("VmHWM")
    return {"fits": peak <= limit, "peak_gib": peak / 2**20, "step_s": times}


def _trial(mode, pairs, steps, args) -> dict:
    cmd = [sys.executable, os.path.abspath(__file__), "--trial", mode, str(pairs), str(steps),
           str(args.budget_gib), str(MICRO)]
    out = spawn_case(cmd, timeout_s=args.trial_timeout)
    if "error" in out:                             # MemoryError under the address-space cap: does not fit
        out = {"fits": False, "peak_gib": float("nan"), "error": out["error"]}
    print(f"    {mode:6s} B={pairs:6d}: peak {out['peak_gib']:.2f} GiB, "
          f"{'fits' if out['fits'] else 'over'}" + (f", {out['step_s'][-1]:.2f} s/step" if out.get("step_s") else ""),
          flush=True)
    return out


def _line(seen: dict, budget: float):
    """(prediction, slope): where the line through the two largest fitting trials' peaks meets the budget."""
    ok = sorted(b for b, r in seen.items() if r["fits"])
    (b1, r1), (b2, r2) = ((b, seen[b]) for b in ok[-2:])
    slope = (r2["peak_gib"] - r1["peak_gib"]) / (b2 - b1)
    return (b2 + (budget - r2["peak_gib"]) / slope if slope > 0 else float("inf")), slope


def largest_batch(mode: str, args, *, start: int, cap: int, tol: float = 0.05) -> dict:
    """Largest batch (a multiple of 64) whose step fits the budget. Peak RSS is affine in the batch, so: two
    trials, then probe where the line through the fitting peaks meets the budget (just below it, or just above
    to close the bracket), bisecting inside the bracket, until it is within ``tol`` or the batch reaches ``cap``."""
    budget = args.budget_gib
    seen: dict[int, dict] = {}
    for b in (start, 2 * start):
        seen[b] = _trial(mode, b, 1, args)
    while True:
        ok = sorted(b for b, r in seen.items() if r["fits"])
        bad = sorted(b for b, r in seen.items() if not r["fits"])
        lo, hi = (ok[-1] if ok else 0), (bad[0] if bad else None)
        result = {"largest": lo, "first_over": hi, "limited_by": "memory", "trials": len(seen), "peaks": seen}
        if hi is not None and hi - lo <= max(64, tol * hi):
            return result
        if hi is None and lo >= cap:
            predicted = _line(seen, budget)[0]
            return {**result, "limited_by": f"the batch cap {cap}", "predicted_by_memory": int(predicted)}
        predicted = _line(seen, budget)[0] if len(ok) >= 2 else 2 * max(lo, 64)
        if hi is None:
            guess = 0.99 * predicted if 0.99 * predicted > (1 + tol / 2) * lo else (1 + tol / 2) * lo
            guess = min(guess, cap)
        else:
            guess = min(max(predicted, lo + (hi - lo) / 4), hi - (hi - lo) / 4)
        guess = max(64, int(guess) // 64 * 64)
        if guess in seen:
            guess = max(64, (lo + (hi or 2 * lo)) // 2 // 64 * 64)
        if guess in seen:
            return result
        seen[guess] = _trial(mode, guess, 1, args)


def bench_grad_cache(args) -> dict:
    print(f"  largest batch within {args.budget_gib} GiB peak RSS (one subprocess per trial):", flush=True)
    direct = largest_batch("direct", args, start=args.start, cap=10**9)
    top = max(direct["largest"], args.start)  # cached: at the direct limit, then up to `--cached-times` x it
    cached = largest_batch("cached", args, start=top, cap=args.cached_times * top)
    b = args.time_pairs
    ab = spawn_case([sys.executable, os.path.abspath(__file__), "--trial", "ab", str(b), str(args.ab_rounds + 1),
                     "1000", str(MICRO)], timeout_s=args.trial_timeout * 2)
    if "error" in ab:
        raise RuntimeError(f"the timing trial failed: {ab['error']}")
    t_direct, t_cached = (statistics.median(ab[m][1:]) for m in ("direct", "cached"))   # after a warm-up each
    return {"direct": direct, "cached": cached, "time_pairs": b, "direct_step_s": t_direct,
            "cached_step_s": t_cached, "time_ratio": t_cached / t_direct}


# ----------------------------------------------------------------------------------------- 3. GPU precision
def bench_precision(args) -> list[dict]:
    import torch
    from contrastlab.data import load_images
    from contrastlab.losses import nt_xent
    from contrastlab.train.precision import MixedPrecision, fp32_loss
    from contrastlab.views import make_views, preset
    dev = torch.device("cuda")
    x = load_images("fashion-mnist").x.to(dev)                                # (60000, 1, 28, 28) uint8
    augment, gen = preset("fashion-mnist"), torch.Generator(device=dev).manual_seed(0)
    rows = []
    for batch in (512, 4096):
        for precision in ("fp32", "bf16"):
            torch.manual_seed(0)
            net = _model().to(dev)
            opt = torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9)
            amp, loss_fn = MixedPrecision(dev, precision), fp32_loss(nt_xent)
            times = []
            for s in range(3 + args.steps):
                torch.cuda.synchronize()
                t0 = time.perf_counter()
                idx = torch.randint(0, x.shape[0], (batch,), device=dev, generator=gen)
                v = make_views(x[idx], augment, generator=gen)                # (B, 2, 1, 28, 28)
                with amp.autocast():
                    z = _encode(net)(v)
                    loss = loss_fn(z[:, 0], z[:, 1], temperature=TEMPERATURE)
                opt.zero_grad(set_to_none=True)
                amp.backward(loss)
                amp.step(opt)
                torch.cuda.synchronize()
                times.append(time.perf_counter() - t0)
            step = statistics.median(times[3:])
            rows.append({"batch": batch, "precision": precision, "images_per_s": round(2 * batch / step, 1),
                         "step_ms": round(1000 * step, 2)})
    return rows


# --------------------------------------------------------------------------------------------------------- main
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--trial", nargs=5, metavar=("MODE", "PAIRS", "STEPS", "BUDGET_GIB", "MICRO"),
                    help=argparse.SUPPRESS)
    ap.add_argument("--quick", action="store_true", help="fewer steps and a 1 GiB budget (a smoke run)")
    ap.add_argument("--pairs", type=int, default=512, help="global batch (pairs) of the process comparison")
    ap.add_argument("--steps", type=int, default=4, help="timed steps per configuration (after one warm-up)")
    ap.add_argument("--budget-gib", type=float, default=4.0, help="peak-RSS budget of the largest-batch search")
    ap.add_argument("--start", type=int, default=2048, help="first batch the search tries (then twice it)")
    ap.add_argument("--cached-times", type=int, default=2,
                    help="the cached search stops at this multiple of the direct limit (time, not memory)")
    ap.add_argument("--time-pairs", type=int, default=1024, help="batch of the cached / direct time ratio")
    ap.add_argument("--ab-rounds", type=int, default=3, help="timed direct/cached step pairs, interleaved")
    ap.add_argument("--trial-timeout", type=float, default=240.0)
    ap.add_argument("--json", help="also write the results here")
    args = ap.parse_args()
    if args.trial:
        mode, pairs, steps, budget, micro = args.trial
        print(json.dumps(run_trial(mode, int(pairs), int(steps), float(budget), int(micro))))
        return
    if args.quick:
        args.steps, args.budget_gib, args.start, args.time_pairs, args.ab_rounds = 2, 1.0, 256, 512, 2
    import torch
    results = {"torch": torch.__version__, "cores": os.cpu_count()}
    t_all = time.perf_counter()

    print(f"1. processes: SimCLR step (small CNN + head + NT-Xent, global negatives), {args.pairs} pairs "
          f"per step in total, random 28x28 images", flush=True)
    rows = bench_processes(args)
    results["processes"] = rows
    print(f"  {'processes':>9} {'threads each':>12} {'s/step':>8} {'pairs/s':>9} {'ratio':>6}")
    for r in rows:
        print(f"  {r['processes']:>9} {r['threads_each']:>12} {r['step_s']:>8.3f} {r['pairs_per_s']:>9.1f} "
              f"{r.get('ratio', 1.0):>6.2f}")

    print(f"2. GradCache: micro-batches of {MICRO} pairs", flush=True)
    gc = bench_grad_cache(args)
    results["grad_cache"] = gc
    for mode in ("direct", "cached"):
        r = gc[mode]
        peak = r["peaks"][r["largest"]]["peak_gib"] if r["largest"] in r["peaks"] else float("nan")
        extra = (f"first over: {r['first_over']}" if r["first_over"] else
                 f"stopped by {r['limited_by']}; the memory line predicts ~{r.get('predicted_by_memory')}")
        print(f"  {mode:6s}: largest batch {r['largest']:6d} pairs (peak {peak:.2f} GiB; {extra}; "
              f"{r['trials']} trials)")
    print(f"  time per step at {gc['time_pairs']} pairs: direct {gc['direct_step_s']:.3f} s, cached "
          f"{gc['cached_step_s']:.3f} s, ratio cached/direct {gc['time_ratio']:.2f} (anchors: about 2x)")

    if torch.cuda.is_available():
        print(f"3. precision on {torch.cuda.get_device_name()}: SimCLR on Fashion-MNIST, images/s", flush=True)
        results["precision"] = bench_precision(args)
        for r in results["precision"]:
            print(f"  batch {r['batch']:5d} {r['precision']:5s}: {r['images_per_s']:10.1f} images/s "
                  f"({r['step_ms']:.1f} ms/step)")
    else:
        print("3. precision: no CUDA device here; the fp32 / bf16 GPU comparison is skipped")
    print(f"total {time.perf_counter() - t_all:.0f} s")
    if args.json:
        from contrastlab.io import write_json
        write_json(args.json, results)


if __name__ == "__main__":
    main()
