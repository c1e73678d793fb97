"""GPU benchmark: SimCLR training throughput against a hand-written PyTorch loop, and the NT-Xent kernels.

What it measures, all in this one run (only numbers measured side by side compare):

1. **Training** (SimCLR, ResNet-18 with its small stem, 32 px RGB, batch 512 pairs, projection head 512 -> 128,
   temperature 0.5, AdamW): images/s in fp32 and bf16 of
   * ours: contrastlab's ``Trainer`` step, as ``contrastlab train simclr`` builds it (batch copied to the device,
     views made there by ``Augment``, the method's forward, the float32 NT-Xent, backward, the fused AdamW step), on
     10k random uint8 images held in memory as ``ImageData`` (no files needed); the trainer's step alone
     (``Trainer._train_step``), without the online monitor and checkpoint writes that ``fit`` adds;
   * plain: a hand-written loop with the same model (``create_encoder("resnet18")`` + ``ProjectionHead``), the same
     ``Augment`` preset (``simclr-cifar``), a plain NT-Xent (the full 2B x 2B logits matrix + ``cross_entropy``) and
     ``torch.optim.AdamW``, under ``torch.autocast`` for bf16.
   Median step time over the timed steps after a warm-up; peak device memory of each.
2. **Loss kernels** (NT-Xent, D = 128, float32, forward + backward w.r.t. the embeddings), B pairs from 1024 to
   32768 (2B rows): ``nt_xent(path="dense")`` (one logits matrix, autograd), ``nt_xent(path="tiled")`` (the tiled
   log-sum-exp) and the plain ``cross_entropy`` reference; median time, peak device memory, which path
   ``path="auto"`` takes at that size on this device (``contrastlab.devices.dense_loss_rows``), the faster one
   measured, and where the measured cross-over lies. A size that does not fit prints "OOM".
3. **Two processes** (only when more than one GPU is present, or with ``--dist-check``): ``global_nt_xent`` over 2
   processes (NCCL on GPUs, Gloo on the CPU), each holding half the batch, against the one-process ``nt_xent``.

Default sizes are set for one H200 in well under 8 minutes (30 timed steps per training configuration, at most
``--loss-reps`` repetitions or ``--case-budget-s`` seconds per loss case). ``--device cpu --smoke`` runs every part
at toy sizes (ResNet-18 of width 4 at 16 px, batch 8, 2 steps, B up to 1024): a smoke test, not a measurement.

Run:  .venv/bin/python benchmarks/gpu.py [--device cuda] [--smoke] [--json out.json]
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import sys
import tempfile
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _harness import proc_kib, reset_peak  # noqa: E402

from contrastlab import devices  # noqa: E402
from contrastlab import distributed as dist  # noqa: E402

D, TEMPERATURE, PROJ_HIDDEN, PROJ = 128, 0.5, 512, 128
LOSS_SIZES = (1024, 2048, 4096, 8192, 16384, 32768)
SMOKE_LOSS_SIZES = (64, 256, 1024)


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# ------------------------------------------------------------------------------------------------ memory / time
class Peak:
    """Peak memory growth of a block: the device allocator's on a GPU, the process's RSS (VmHWM) on the CPU."""

    def __init__(self, device):
        self.device, self.bytes = device, None

    def __enter__(self):
        devices.synchronize(self.device)
        devices.reset_peak_memory(self.device)
        self.base = devices.peak_memory(self.device)
        if self.base is None:
            self.base = proc_kib("VmRSS") * 1024 if reset_peak() else None
        return self

    def __exit__(self, *exc):
        devices.synchronize(self.device)
        peak = devices.peak_memory(self.device)
        if peak is None and self.base is not None:
            peak = proc_kib("VmHWM") * 1024
        self.bytes = None if peak is None or self.base is None else max(0, peak - self.base)
        return False


def fmt_bytes(n) -> str:
    if n is None:
        return "-"
    return f"{n / 2**20:.0f} MiB" if n < 2**30 else f"{n / 2**30:.2f} GiB"


def fmt_s(t) -> str:
    if t is None:
        return "-"
    return f"{t * 1e3:.2f} ms" if t < 0.01 else (f"{t * 1e3:.0f} ms" if t < 1 else f"{t:.2f} s")


def timed(fn, device, *, warmup: int, reps: int, budget_s: float) -> list[float]:
    for _ in range(warmup):
        fn()
    devices.synchronize(device)
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        devices.synchronize(device)
        times.append(time.perf_counter() - t0)
        if sum(times) > budget_s and len(times) >= 2:
            break
    return times


# ------------------------------------------------------------------------------------------------- 1. training
def random_images(n: int, size: int, seed: int = 0):
    from contrastlab.data import ImageData
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 256, (n, 3, size, size), dtype=torch.uint8, generator=g)       # (N, 3, H, W)
    return ImageData(name=f"random-{size}px", x=x, y=None, x_test=None, y_test=None, classes=None)


def ours_step(data, device, precision: str, batch: int, width: int):
    """contrastlab's trainer, built as `contrastlab train simclr` builds it; returns (step(s), trainer)."""
    from contrastlab.train import Trainer, TrainConfig
    cfg = TrainConfig(method="simclr", data=data.name, steps=1000, encoder="resnet18", batch_size=batch,
                      encoder_options={"width": width},
                      optimizer="adamw", augment="simclr-cifar", precision=precision, device=str(device),
                      final_eval=False, hyperparameters={"temperature": TEMPERATURE, "proj_hidden_dim": PROJ_HIDDEN,
                                                         "proj_dim": PROJ})
    trainer = Trainer.from_config(cfg, tempfile.mkdtemp(prefix="gpu-bench-"), show_progress=False, data=data)
    trainer.method.train()
    counter = iter(range(10**9))
    return (lambda: trainer._train_step(trainer.method, trainer.optimizer, next(counter))), trainer


def plain_nt_xent(z_a, z_b, t):
    """The textbook NT-Xent: the full (2B, 2B) logits matrix, the diagonal masked, cross-entropy to the positive."""
    b = z_a.shape[0]
    z = F.normalize(torch.cat([z_a, z_b]), dim=1)                                      # (2B, D)
    sim = (z @ z.T / t).fill_diagonal_(float("-inf"))                                  # (2B, 2B)
    target = torch.cat([torch.arange(b, 2 * b), torch.arange(b)]).to(z.device)
    return F.cross_entropy(sim, target)


def plain_step(data, device, precision: str, batch: int, width: int, seed: int = 0):
    """A hand-written SimCLR loop: the same encoder, head and Augment; plain NT-Xent; torch's AdamW."""
    from contrastlab.models import ProjectionHead, create_encoder
    from contrastlab.train.tasks import channel_stats
    from contrastlab.views import make_views, preset
    mean, std = channel_stats(data.x)
    torch.manual_seed(seed)
    enc = create_encoder("resnet18", in_channels=3, width=width, mean=mean, std=std)
    model = torch.nn.Sequential(enc, ProjectionHead(enc.out_dim, hidden_dim=PROJ_HIDDEN, out_dim=PROJ)).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3 * batch / 256, weight_decay=1e-4)
    augment = preset("simclr-cifar")
    n = len(data)
    state = {"step": 0}

    def step():
        s = state["step"]
        state["step"] += 1
        g = torch.Generator().manual_seed(seed * 100_003 + s)
        idx = torch.randint(0, n, (batch,), generator=g)
        x = devices.to_device(data.x[idx], device)                                       # (B, 3, H, W) uint8
        views = make_views(x, augment, n_views=2, generator=g)                            # (B, 2, 3, H, W)
        opt.zero_grad(set_to_none=True)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16"):
            z = model(views.flatten(0, 1)).unflatten(0, (batch, 2))                       # (B, 2, P)
        loss = plain_nt_xent(z[:, 0].float(), z[:, 1].float(), TEMPERATURE)
        loss.backward()
        opt.step()
        return loss.detach()
    return step, model


def bench_training(args, device) -> list[dict]:
    data = random_images(args.images, args.size)
    rows = []
    for precision in ("fp32", "bf16"):
        row = {"precision": precision}
        for impl, build in (("ours", ours_step), ("plain", plain_step)):
            log(f"  training {impl} {precision}: {args.warmup} warm-up + {args.steps} timed steps at batch "
                f"{args.batch}")
            try:
                step, keep = build(data, device, precision, args.batch, args.width)
                with Peak(device) as peak:
                    times = timed(step, device, warmup=args.warmup, reps=args.steps, budget_s=float("inf"))
                row[impl] = {"step_s": statistics.median(times), "images_per_s": args.batch / statistics.median(times),
                             "peak_bytes": peak.bytes}
                del step, keep
                gc.collect()
            except Exception as e:                                                         # noqa: BLE001
                if not devices.is_out_of_memory(e):
                    raise
                row[impl] = {"error": "OOM"}
            devices.free_cached_memory(device)
            log(f"    {impl} {precision}: " + (f"{row[impl]['images_per_s']:.0f} images/s" if "error" not in row[impl]
                                               else row[impl]["error"]))
        rows.append(row)
    return rows


# ---------------------------------------------------------------------------------------------- 2. loss kernels
def bench_losses(args, device) -> list[dict]:
    from contrastlab.losses import nt_xent
    from contrastlab.losses.infonce import nt_xent_path
    impls = {"dense": lambda a, b: nt_xent(a, b, temperature=TEMPERATURE, path="dense"),
             "tiled": lambda a, b: nt_xent(a, b, temperature=TEMPERATURE, path="tiled"),
             "plain": lambda a, b: plain_nt_xent(a, b, TEMPERATURE)}
    failed: set[str] = set()                         # an implementation that ran out of memory skips larger sizes
    rows = []
    for b in args.loss_sizes:
        g = torch.Generator().manual_seed(b)
        z_a, z_b = (t.to(device).clone().requires_grad_() for t in torch.randn(2, b, D, generator=g).unbind(0))
        row = {"B": b, "rows": 2 * b, "auto": nt_xent_path(2 * b, device)}
        for name, fn in impls.items():
            if name in failed:
                row[name] = {"error": "OOM"}
                continue

            def once():
                z_a.grad = z_b.grad = None
                out = fn(z_a, z_b)
                out.backward()
                return out
            try:
                with Peak(device) as peak:
                    value = float(once().detach())
                times = timed(once, device, warmup=0, reps=args.loss_reps, budget_s=args.case_budget_s)
                row[name] = {"time_s": statistics.median(times), "peak_bytes": peak.bytes, "loss": value}
            except Exception as e:                                                         # noqa: BLE001
                if not devices.is_out_of_memory(e):
                    raise
                failed.add(name)
                row[name] = {"error": "OOM"}
            z_a.grad = z_b.grad = None
            devices.free_cached_memory(device)
            r = row[name]
            log(f"  NT-Xent B={b} {name}: " + (r["error"] if "error" in r else
                                               f"{fmt_s(r['time_s'])}, {fmt_bytes(r['peak_bytes'])}"))
        del z_a, z_b
        devices.free_cached_memory(device)
        rows.append(row)
    return rows


def crossover(rows: list[dict]) -> str:
    """Where the tiled kernel starts beating the dense matrix, as measured (the first B from which it stays faster)."""
    faster = [(r["B"], _faster(r)) for r in rows]
    known = [(b, f) for b, f in faster if f is not None]
    if not known:
        return "not measured"
    for i, (b, f) in enumerate(known):
        if all(f2 == "tiled" for _, f2 in known[i:]):
            return (f"tiled is faster from B = {b} ({2 * b} rows) on" if i else
                    f"tiled is faster at every measured B (from {b})")
    return f"dense is faster up to the largest measured B = {known[-1][0]}"


def _faster(r: dict) -> str | None:
    d, t = r.get("dense", {}), r.get("tiled", {})
    if "time_s" in d and "time_s" in t:
        return "dense" if d["time_s"] <= t["time_s"] else "tiled"
    if "time_s" in t:
        return "tiled"                                                  # the dense matrix did not fit
    return "dense" if "time_s" in d else None


# --------------------------------------------------------------------------------------------- 3. two processes
def _rank_loss(b: int, seed: int, on_accelerator: bool):
    """One rank of the 2-process check: this rank's half of a seeded batch on its device (its GPU under NCCL, else
    the CPU), global_nt_xent."""
    from contrastlab.losses.distributed import global_nt_xent
    device = dist.default_device() if on_accelerator else devices.CPU
    g = torch.Generator().manual_seed(seed)
    z_a, z_b = torch.randn(2, b, D, generator=g, dtype=torch.float64).unbind(0)        # the global batch
    half = b // dist.world_size()
    rows = slice(dist.rank() * half, (dist.rank() + 1) * half)
    a = z_a[rows].to(device).requires_grad_()
    p = z_b[rows].to(device).requires_grad_()
    loss = global_nt_xent(a, p, temperature=TEMPERATURE)
    loss.backward()
    return {"loss": dist.all_reduce_mean(loss.detach()), "grad_a": a.grad.cpu(), "rows": (rows.start, rows.stop)}


def bench_two_processes(args, device) -> dict:
    from contrastlab.losses import nt_xent
    b, seed = args.dist_batch, 7
    backend = devices.backend_for(device)
    log(f"  2 processes ({backend}): global_nt_xent over B = {b} pairs vs one process")
    ranks = dist.spawn_local(_rank_loss, nprocs=2, args=(b, seed, device != devices.CPU), backend=backend,
                             timeout_s=300,
                             threads=max(1, (os.cpu_count() or 2) // 2))
    g = torch.Generator().manual_seed(seed)
    z_a, z_b = torch.randn(2, b, D, generator=g, dtype=torch.float64).unbind(0)
    z_a = z_a.clone().requires_grad_()
    one = nt_xent(z_a, z_b, temperature=TEMPERATURE)
    one.backward()
    one = one.detach()
    loss_diff = max(abs(r["loss"] - float(one)) for r in ranks)
    # DDP averages gradients over ranks: the gradient each rank holds for its own rows, / world, is one process's
    grad_diff = max(float((r["grad_a"] / 2 - z_a.grad[slice(*r["rows"])]).abs().max()) for r in ranks)
    ok = loss_diff <= 1e-10 and grad_diff <= 1e-10
    return {"backend": backend, "B": b, "one_process": float(one), "ranks": [r["loss"] for r in ranks],
            "loss_abs_diff": loss_diff, "grad_abs_diff": grad_diff, "equal": ok}


# ---------------------------------------------------------------------------------------------------- report
def report(meta, train_rows, loss_rows, two) -> str:
    out = [f"## contrastlab GPU benchmark: {meta['device_name']} | torch {meta['torch']} | {meta['when']}", ""]
    width = "" if meta["width"] == 64 else f" (width {meta['width']})"
    out += [f"### SimCLR ResNet-18{width}, {meta['size']} px, batch {meta['batch']} pairs: images/s (median of "
            f"{meta['steps']} steps)",
            "", "| precision | ours images/s | plain images/s | ours / plain | ours peak mem | plain peak mem |",
            "|---|---:|---:|---:|---:|---:|"]
    for r in train_rows:
        o, p = r["ours"], r["plain"]
        ips = lambda x: "OOM" if "error" in x else f"{x['images_per_s']:.0f}"              # noqa: E731
        ratio = ("-" if "error" in o or "error" in p else f"{o['images_per_s'] / p['images_per_s']:.2f}x")
        out.append(f"| {r['precision']} | {ips(o)} | {ips(p)} | {ratio} | {fmt_bytes(o.get('peak_bytes'))} | "
                   f"{fmt_bytes(p.get('peak_bytes'))} |")
    out += ["", f"### NT-Xent kernels, D = {D}, float32, forward + backward (median; peak memory growth)", "",
            "| B pairs | auto path | dense time | dense peak | tiled time | tiled peak | plain time | plain peak "
            "| faster (measured) | max rel. diff vs plain |", "|---:|---|---:|---:|---:|---:|---:|---:|---|---:|"]
    for r in loss_rows:
        cell = lambda x: ("OOM", "-") if "error" in x else (fmt_s(x["time_s"]), fmt_bytes(x["peak_bytes"]))  # noqa
        diffs = [abs(r[k]["loss"] - r["plain"]["loss"]) / abs(r["plain"]["loss"]) for k in ("dense", "tiled")
                 if "loss" in r[k] and "loss" in r["plain"]]
        out.append(f"| {r['B']} | {r['auto']} | " + " | ".join(" | ".join(cell(r[k])) for k in ("dense", "tiled",
                                                                                                 "plain"))
                   + f" | {_faster(r) or '-'} | {max(diffs) if diffs else float('nan'):.1e} |")
    out += ["", f"Measured cross-over: {crossover(loss_rows)}; `auto` takes the dense matrix up to "
                f"{meta['dense_rows']} rows (B = {meta['dense_rows'] // 2}) on this device "
                f"(contrastlab.devices.DENSE_LOSS_ROWS)."]
    if two is None:
        out += ["", "2-process check: skipped (one GPU; --dist-check forces it)."]
    else:
        out += ["", f"2-process check ({two['backend']}, B = {two['B']}, float64): one process "
                    f"{two['one_process']:.12f}, "
                    f"ranks {', '.join(f'{v:.12f}' for v in two['ranks'])}; |diff| loss {two['loss_abs_diff']:.1e}, "
                    f"gradient {two['grad_abs_diff']:.1e}: {'EQUAL' if two['equal'] else 'DIFFERENT'}"]
    return "\n".join(out)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", default="auto", help="auto (this machine's GPU, else the CPU), cpu, cuda, cuda:N")
    ap.add_argument("--smoke", action="store_true", help="toy sizes (ResNet-18 width 4 at 16 px, batch 8, 2 steps, "
                                                          "B <= 1024): a smoke test")
    ap.add_argument("--batch", type=int, help="training batch in pairs (default 512; smoke 16)")
    ap.add_argument("--steps", type=int, help="timed training steps per configuration (default 30; smoke 3)")
    ap.add_argument("--warmup", type=int, help="untimed training steps first (default 5; smoke 1)")
    ap.add_argument("--images", type=int, help="random images in memory (default 10000; smoke 32)")
    ap.add_argument("--size", type=int, help="image side in pixels (default 32; smoke 16)")
    ap.add_argument("--width", type=int, help="ResNet-18 base width (default 64, the standard; smoke 4)")
    ap.add_argument("--loss-sizes", type=int, nargs="+", help=f"B pairs (default {' '.join(map(str, LOSS_SIZES))})")
    ap.add_argument("--loss-reps", type=int, default=10, help="timed repetitions per loss case (after one warm-up)")
    ap.add_argument("--case-budget-s", type=float, default=5.0, help="stop a loss case's repetitions past this")
    ap.add_argument("--dist-check", action="store_true", help="run the 2-process check even with fewer than 2 GPUs")
    ap.add_argument("--dist-batch", type=int, default=256, help="pairs in the 2-process check")
    ap.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    args = ap.parse_args(argv)
    device = devices.resolve(args.device)
    smoke = args.smoke
    args.batch = args.batch or (8 if smoke else 512)
    args.steps = args.steps or (2 if smoke else 30)
    args.warmup = args.warmup if args.warmup is not None else (1 if smoke else 5)
    args.images = args.images or (32 if smoke else 10_000)
    args.size = args.size or (16 if smoke else 32)
    args.width = args.width or (4 if smoke else 64)
    args.loss_sizes = tuple(args.loss_sizes or (SMOKE_LOSS_SIZES if smoke else LOSS_SIZES))
    if smoke:
        args.loss_reps, args.case_budget_s, args.dist_batch = min(args.loss_reps, 2), min(args.case_budget_s, 2.0), 16
    devices.set_current(device)
    t_start = time.perf_counter()
    name = devices.device_name(device) + (f" ({os.cpu_count()} cores)" if device == devices.CPU else "")
    meta = {"device": str(device), "device_name": name, "torch": torch.__version__, "batch": args.batch,
            "size": args.size, "width": args.width,
            "steps": args.steps, "dense_rows": devices.dense_loss_rows(device), "smoke": smoke,
            "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    log(f"benchmarks/gpu.py on {name}{' (smoke sizes)' if smoke else ''}")
    if device == devices.CPU and not smoke:
        log("note: the full sizes on a CPU take a long time; --smoke runs toy sizes")
    log("1. training throughput")
    train_rows = bench_training(args, device)
    log(f"2. loss kernels ({time.perf_counter() - t_start:.0f} s so far)")
    loss_rows = bench_losses(args, device)
    two = None
    if args.dist_check or (device != devices.CPU and devices.device_count(device) > 1):
        log(f"3. two processes ({time.perf_counter() - t_start:.0f} s so far)")
        two = bench_two_processes(args, device)
    print(report(meta, train_rows, loss_rows, two))
    log(f"done in {time.perf_counter() - t_start:.0f} s")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"meta": meta, "training": train_rows, "losses": loss_rows, "two_processes": two}, f, indent=1)
    return 0 if two is None or two["equal"] else 1


if __name__ == "__main__":
    sys.exit(main())
