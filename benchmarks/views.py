"""Benchmark contrastlab's batched augmentation against kornia's equivalent pipeline on CPU.

What it measures (torch threads = 2, float32, input uint8 converted to [0, 1] inside the timed call):

* ``fashion-mnist``: 512 Fashion-MNIST test images (28x28, 1 channel; random uint8 when
  ``/usr/share/datasets/fashion-mnist`` is absent) through ``preset("fashion-mnist")``;
* ``simclr``: 512 random RGB 32x32 uint8 images through ``preset("simclr")``;
* kornia: ``AugmentationSequential(RandomResizedCrop, RandomHorizontalFlip, ColorJitter, RandomGrayscale,
  RandomGaussianBlur)`` with the same parameters (grayscale omitted for 1 channel, as in our preset; the
  same 3-tap blur kernel), on the first ``--kornia-batch`` images of the same batch.

For each preset one subprocess (this script with ``--case time``) times ours and kornia IN TURNS (ours,
kornia, ours, ...) after one warm-up each, so both see the same machine load: the machine is shared and
its load swings within seconds. Reported: the MEDIAN wall time per batch, views/s = batch / median (and
from the best rep, the least disturbed), and the median of the per-turn speed ratios. Peak memory comes
from separate subprocesses (``--case mem``): the RSS growth over the baseline taken after imports and
input creation (VmHWM, reset via /proc/self/clear_refs) during a warm-up call and one more. Our per-stage
times (parameter sampling, to_float, crop+flip, jitter, grayscale, blur, final clamp) come from applying
the drawn parameters of one stage at a time, so the bottleneck is visible.

Run:  .venv/bin/python benchmarks/views.py [--reps 15] [--kornia-batch 512] [--threads 2] [--json out.json]

On a host whose cores are busy with other processes, 2-thread runs of many small ops degrade sharply
(each parallel region waits for a descheduled thread; both libraries suffer): compare the
``views/s (best rep)`` column, or ``--threads 1``, to see the code's own speed.
"""
from __future__ import annotations

import argparse, gzip, json, os, platform, statistics, subprocess, sys, time

from _harness import proc_kib, reset_peak, spawn_case  # noqa: E402  (benchmarks/ is on sys.path when run as a script)

BATCH, THREADS, TARGET = 512, 2, 5000.0
FMNIST = "/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz"
PRESETS = {"fashion-mnist": (1, 28), "simclr": (3, 32)}


# ----------------------------------------------------------------------------------------- worker side
def images(preset, n):
    """(n, C, S, S) uint8: real Fashion-MNIST when installed, else seeded random pixels."""
    import numpy as np, torch
    c, s = PRESETS[preset]
    if preset == "fashion-mnist" and os.path.exists(FMNIST):
        with gzip.open(FMNIST, "rb") as f:
            raw = np.frombuffer(f.read(), dtype=np.uint8, offset=16)
        return torch.from_numpy(raw[: n * s * s].reshape(n, 1, s, s).copy()), "Fashion-MNIST t10k"
    return torch.randint(0, 256, (n, c, s, s), generator=torch.Generator().manual_seed(0), dtype=torch.uint8), "random"


def kornia_pipeline(preset):
    import kornia.augmentation as K
    from contrastlab.views import PRESETS as P, blur_kernel_size
    hp, (c, s) = P[preset], PRESETS[preset]
    mods = [K.RandomResizedCrop((s, s), scale=hp["crop_scale"], ratio=hp["crop_ratio"]),
            K.RandomHorizontalFlip(p=hp["flip_p"]),
            K.ColorJitter(hp["brightness"], hp["contrast"], hp["saturation"], hp["hue"], p=hp["jitter_p"])]
    if c == 3 and hp["grayscale_p"] > 0:
        mods.append(K.RandomGrayscale(p=hp["grayscale_p"]))
    if hp["blur_p"] > 0:
        mods.append(K.RandomGaussianBlur(blur_kernel_size(s, s), hp["blur_sigma"], p=hp["blur_p"]))
    return K.AugmentationSequential(*mods)




def timed(fn, reps, budget_s):
    """Median seconds of ``fn`` over up to ``reps`` runs after one warm-up, stopping past ``budget_s``."""
    fn()
    times = []
    while len(times) < reps and (len(times) < 3 or sum(times) < budget_s):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), len(times)


def make_fn(impl, preset, x):
    import warnings, torch
    from contrastlab.views import preset as make_preset
    if impl == "ours":
        aug, gen = make_preset(preset), torch.Generator().manual_seed(0)
        return lambda: aug(x, generator=gen)
    warnings.filterwarnings("ignore")
    aug = kornia_pipeline(preset)
    torch.manual_seed(0)
    return lambda: aug(x.div(255.0))


def time_case(preset, kornia_batch, reps, budget_s, threads):
    """Ours (batch 512) and kornia (``kornia_batch``) timed in turns, so both see the same machine load."""
    import torch
    torch.set_num_threads(threads)
    from contrastlab.views import ViewParams, preset as make_preset, to_float
    x, source = images(preset, BATCH)
    fns = {"ours": make_fn("ours", preset, x), "kornia": make_fn("kornia", preset, x[:kornia_batch])}
    for fn in fns.values():
        fn()                                                     # warm-up
    times = {"ours": [], "kornia": []}
    while len(times["ours"]) < reps and (len(times["ours"]) < 3 or sum(map(sum, times.values())) < budget_s):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    out = {"source": source, "times_s": times, "batch": {"ours": BATCH, "kornia": kornia_batch}}
    # our stages: apply one stage's drawn parameters at a time (apply() always clamps: subtracted below)
    aug, gen = make_preset(preset), torch.Generator().manual_seed(0)
    b, c, h, w = x.shape
    xf, p = to_float(x), aug.sample(b, c, h, w, generator=gen)
    off = dict.fromkeys(("boxes", "flip", "factors", "order", "gray", "blur", "sigma"))
    stage_fns = {"sample params": lambda: aug.sample(b, c, h, w, generator=gen), "to_float": lambda: to_float(x)}
    for name, keys in {"crop+flip": ("boxes", "flip"), "jitter": ("factors", "order"), "grayscale": ("gray",),
                       "blur": ("blur", "sigma"), "clamp": ()}.items():
        if all(getattr(p, k) is not None for k in keys):        # else: off in this preset / for this input
            q = ViewParams(**{**off, **{k: getattr(p, k) for k in keys}})
            stage_fns[name] = lambda q=q: aug.apply(xf, q)
    out["stages"] = {name: timed(fn, reps, budget_s / 8)[0] for name, fn in stage_fns.items()}
    for name in ("crop+flip", "jitter", "grayscale", "blur"):
        if name in out["stages"]:
            out["stages"][name] = max(out["stages"][name] - out["stages"]["clamp"], 0.0)
    return out


def memory_case(impl, preset, batch, threads):
    """Peak RSS growth of one warm-up call plus one call, over the baseline after imports and inputs."""
    import resource, torch
    torch.set_num_threads(threads)
    x, _ = images(preset, batch)
    fn = make_fn(impl, preset, x)
    hwm_ok = reset_peak()
    base = proc_kib("VmRSS") if hwm_ok else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    fn()
    fn()
    peak = (proc_kib("VmHWM") if hwm_ok else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) - base
    return {"peak_bytes": max(peak, 0) * 1024, "mem_method": "VmHWM" if hwm_ok else "ru_maxrss"}


# ------------------------------------------------------------------------------------------- driver side
def spawn(case, args):
    cmd = [sys.executable, os.path.abspath(__file__), "--case", *map(str, case), "--reps", str(args.reps),
           "--budget-s", str(args.budget_s), "--threads", str(args.threads)]
    r = spawn_case(cmd, timeout_s=args.timeout_s)
    return {"error": r["error"][:100]} if "error" in r else r


def fmt_mem(b):
    return f"{b / 2**20:.1f} MiB"


def header():
    import torch, kornia
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")),
               platform.processor())
    git = subprocess.run(["git", "describe", "--always", "--dirty"], capture_output=True, text=True,
                         cwd=os.path.dirname(os.path.abspath(__file__))).stdout.strip()
    return {"torch": torch.__version__, "kornia": kornia.__version__, "cpu": cpu,
            "cores": os.cpu_count(), "git": git, "python": platform.python_version()}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--reps", type=int, default=15, help="timed repetitions per implementation after one warm-up")
    ap.add_argument("--kornia-batch", type=int, default=BATCH, help="kornia's batch (<= 512; views/s is per image)")
    ap.add_argument("--budget-s", type=float, default=30.0, help="stop timed repetitions past this (at least 3 kept)")
    ap.add_argument("--timeout-s", type=float, default=150.0, help="wall-clock cap per case")
    ap.add_argument("--threads", type=int, default=THREADS, help="torch threads (the target is stated for 2)")
    ap.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    ap.add_argument("--case", nargs="+", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.case:
        kind, rest = args.case[0], args.case[1:]
        out = (time_case(rest[0], int(rest[1]), args.reps, args.budget_s, args.threads) if kind == "time"
               else memory_case(rest[0], rest[1], int(rest[2]), args.threads))
        print(json.dumps(out))
        return

    t_start, info = time.time(), header()
    info["threads"] = args.threads
    load0 = os.getloadavg()[0]
    kb = max(1, min(args.kornia_batch, BATCH))
    results = {}
    for preset in PRESETS:
        results[preset] = {"time": spawn(("time", preset, kb), args),
                           "mem": {"ours": spawn(("mem", "ours", preset, BATCH), args),
                                   "kornia": spawn(("mem", "kornia", preset, kb), args)}}
    print(f"# views benchmark: torch {info['torch']}, kornia {info['kornia']}, torch threads = {info['threads']}, "
          f"{info['cores']} cores ({info['cpu']}), git {info['git']}")
    print(f"load average {load0:.2f} at start, {os.getloadavg()[0]:.2f} at end (other processes share these "
          f"cores; ours and kornia run in turns so both see the same load)\n")
    print("| preset | input | impl | batch | reps | median ms / batch | views/s (median) | views/s (best rep) "
          "| ours / kornia (median of per-turn ratios) | peak RSS growth |")
    print("| --- " * 10 + "|")
    fm_vps = None
    for preset, (c, s) in PRESETS.items():
        r = results[preset]["time"]
        if "error" in r:
            print(f"| {preset} | {c}x{s}x{s} | both | - | - | failed ({r['error']}) | - | - | - | - |")
            continue
        ours_t, kor_t = r["times_s"]["ours"], r["times_s"]["kornia"]
        vps = {k: r["batch"][k] / statistics.median(v) for k, v in r["times_s"].items()}
        best = {k: r["batch"][k] / min(v) for k, v in r["times_s"].items()}
        turn = statistics.median((r["batch"]["ours"] / a) / (r["batch"]["kornia"] / b) for a, b in zip(ours_t, kor_t))
        if preset == "fashion-mnist":
            fm_vps = vps["ours"]
        for name in ("ours", "kornia"):
            mem = results[preset]["mem"][name]
            mem = f"failed ({mem['error']})" if "error" in mem else fmt_mem(mem["peak_bytes"])
            ratio = f"{turn:.1f}x" if name == "ours" else ""
            median_ms = statistics.median(r["times_s"][name]) * 1e3
            print(f"| {preset} | {c}x{s}x{s} ({r['source']}) | {name} | {r['batch'][name]} | "
                  f"{len(r['times_s'][name])} | {median_ms:.1f} | {vps[name]:,.0f} | {best[name]:,.0f} | {ratio} | {mem} |")
    stage_names = ("sample params", "to_float", "crop+flip", "jitter", "grayscale", "blur", "clamp")
    print("\nOur per-stage median time for one batch of 512 (each stage alone, final clamp subtracted):\n")
    print("| preset | " + " | ".join(stage_names) + " |")
    print("| --- " * (len(stage_names) + 1) + "|")
    for preset in PRESETS:
        st = results[preset]["time"].get("stages", {})
        print(f"| {preset} | " + " | ".join(f"{st[k] * 1e3:.2f} ms" if k in st else "off" for k in stage_names) + " |")
    if fm_vps is None:
        print(f"\ntarget >= {TARGET:,.0f} views/s at 28x28: not measured")
    else:
        print(f"\ntarget >= {TARGET:,.0f} views/s at 28x28 (fashion-mnist preset, batch 512, "
              f"torch threads = {args.threads}): {fm_vps:,.0f} views/s (median) -> {'PASS' if fm_vps >= TARGET else 'FAIL'}")
    print(f"total benchmark time {time.time() - t_start:.0f} s")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"info": info, "load_start": load0, "results": results}, f, indent=1)


if __name__ == "__main__":
    main()
