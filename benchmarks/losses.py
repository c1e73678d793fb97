"""Benchmark contrastlab's NT-Xent and SupCon against a plain logits-matrix reference and pytorch-metric-learning.

What it measures (CPU, D = 128, float32, forward + backward w.r.t. the embeddings), for B pairs in
{256, 1024, 4096, 16384}:

* ours:  ``contrastlab.losses.nt_xent(z_a, z_b, temperature=0.5)`` and
  ``contrastlab.losses.supcon(views (B, 2, D), labels in [0, 10), temperature=0.1)``;
* plain: the textbook implementations below, which build the full (2B x 2B) logits matrix;
* floor: NT-Xent only, the bare matrix products our tiled kernel cannot avoid (two N x N x D products
  with N = 2B, in 1024-tiles, no exp, no autograd): the hardware's speed at that moment, so
  ``ours/floor`` says how close to the machine we are whatever the host's load;
* PML:   ``NTXentLoss(temperature=0.5)`` and ``SupConLoss(temperature=0.1)`` from
  pytorch-metric-learning, only where they fit (NT-Xent at B <= 1024, SupCon at B <= 4096).

Each (implementation, loss, B) case runs in its own subprocess (this script with ``--case``), under an
address-space cap (``--mem-cap-gib``, on top of the process's size after imports) and a timeout, so a
runaway case is reported as "failed (reason)". Reported: the MEDIAN wall time of forward + backward
after one warm-up (fewer repetitions at large B; the plain reference at B = 16384 runs once, no warm-up),
and the peak RSS growth over the baseline taken after imports and input creation (VmHWM, reset via
/proc/self/clear_refs). Ours and plain see the same seeded inputs; their loss values are compared.

All speed ratios come from this one run on purpose: the machine is shared and noisy, so only
numbers measured side by side are comparable.

Run:  .venv/bin/python benchmarks/losses.py [--quick] [--sizes 256 1024] [--skip-plain-16384] [--json out.json]
"""
from __future__ import annotations

import argparse, gc, json, os, platform, re, resource, statistics, subprocess, sys, tempfile, time

from _harness import proc_kib, reset_peak, spawn_case  # noqa: E402  (benchmarks/ is on sys.path when run as a script)

D, SIZES, LOSSES, IMPLS = 128, (256, 1024, 4096, 16384), ("nt_xent", "supcon"), ("ours", "plain", "pml", "floor")
PML_MAX_B = {"nt_xent": 1024, "supcon": 4096}   # NTXentLoss builds a [2B, 2B(2B-2)] mask: ~34 GB at B=1024
REPS = {256: 5, 1024: 5, 4096: 3, 16384: 2}     # timed repetitions after one warm-up (trimmed by --budget-s)


# ----------------------------------------------------------------------------------------- worker side
def plain_nt_xent(z_a, z_b, t):
    import torch, torch.nn.functional as F
    b = z_a.shape[0]
    z = F.normalize(torch.cat([z_a, z_b]), dim=1)
    sim = (z @ z.T / t).fill_diagonal_(float("-inf"))
    target = torch.cat([torch.arange(b, 2 * b), torch.arange(b)])
    return F.cross_entropy(sim, target)


def plain_supcon(views, labels, t):
    import torch, torch.nn.functional as F
    z = F.normalize(views.reshape(-1, views.shape[-1]), dim=1)
    lab = labels.repeat_interleave(views.shape[1])
    log_prob = torch.log_softmax((z @ z.T / t).fill_diagonal_(float("-inf")), dim=1)
    pos = (lab[:, None] == lab[None, :]).fill_diagonal_(False)
    n_pos = pos.sum(1)
    mean_pos = torch.where(pos, log_prob, 0.0).sum(1) / n_pos.clamp(min=1)
    return -mean_pos[n_pos > 0].mean()


def gemm_floor(z_a, z_b, tile=1024):
    """The products of the symmetric tiled NT-Xent (forward + recompute + contraction = 2 N^2 D MACs)."""
    import torch
    z = torch.cat([z_a, z_b]).detach()
    n = z.shape[0]
    buf = torch.empty(min(tile, n), min(tile, n))
    for _ in range(2):
        for r in range(0, n, tile):
            for c in range(0, n, tile):
                torch.mm(z[r:r + tile], z[c:c + tile].t(), out=buf[: min(tile, n - r), : min(tile, n - c)])
    return torch.zeros(())


def run_case(loss, impl, b, reps, warmup, budget_s, cap_gib):
    import torch
    from contrastlab.losses import nt_xent, supcon
    if impl == "pml":
        from pytorch_metric_learning.losses import NTXentLoss, SupConLoss
    cap = proc_kib("VmSize") * 1024 + int(cap_gib * 2**30)
    resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
    torch.manual_seed(b)
    if loss == "nt_xent":
        z_a, z_b = torch.randn(2, b, D).unbind(0)
        z_a, z_b = z_a.clone().requires_grad_(), z_b.clone().requires_grad_()
        leaves = [z_a, z_b]
        fn = {"ours": lambda: nt_xent(z_a, z_b, temperature=0.5),
              "plain": lambda: plain_nt_xent(z_a, z_b, 0.5), "floor": lambda: gemm_floor(z_a, z_b)}.get(impl)
        if impl == "pml":
            emb, lab, crit = torch.cat([z_a, z_b]).detach().requires_grad_(), torch.arange(b).repeat(2), NTXentLoss(temperature=0.5)
            leaves, fn = [emb], lambda: crit(emb, lab)
    else:
        views = torch.randn(b, 2, D, requires_grad=True)
        labels = torch.randint(0, 10, (b,))
        leaves = [views]
        fn = {"ours": lambda: supcon(views, labels, temperature=0.1),
              "plain": lambda: plain_supcon(views, labels, 0.1)}.get(impl)
        if impl == "pml":
            emb, lab, crit = views.detach().reshape(2 * b, D).requires_grad_(), labels.repeat_interleave(2), SupConLoss(temperature=0.1)
            leaves, fn = [emb], lambda: crit(emb, lab)
    gc.collect()
    hwm_ok = reset_peak()
    base = proc_kib("VmRSS") if hwm_ok else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    times, value = [], None
    for i in range(warmup + reps):
        for x in leaves:
            x.grad = None
        t0 = time.perf_counter()
        out = fn()
        if out.requires_grad:
            out.backward()
        dt = time.perf_counter() - t0
        value = float(out.detach()) if value is None else value
        if i >= warmup:
            times.append(dt)
            if sum(times) + dt > budget_s and len(times) >= min(2, reps):   # next rep would exceed the budget
                break
    peak = (proc_kib("VmHWM") if hwm_ok else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) - base
    return {"time_s": statistics.median(times), "times_s": times, "peak_bytes": max(peak, 0) * 1024,
            "loss": value, "mem_method": "VmHWM" if hwm_ok else "ru_maxrss"}


# ------------------------------------------------------------------------------------------- driver side
def spawn(loss, impl, b, args):
    once = impl == "plain" and b == 16384
    cmd = [sys.executable, os.path.abspath(__file__), "--case", loss, impl, str(b),
           "--reps", "1" if once else str(REPS[b]), "--warmup", "0" if once else "1",
           "--budget-s", str(args.budget_s), "--mem-cap-gib", str(args.mem_cap_gib)]
    r = spawn_case(cmd, timeout_s=args.timeout_s)
    if "error" not in r or r["returncode"] is None:
        return r
    err = r["error"]
    if "alloc" in err.lower() or "MemoryError" in err:
        asked = re.search(r"allocate (\d+) bytes", err)
        err = "OOM" + (f": asked {int(asked[1]) / 1e9:.0f} GB" if asked else "") + f", cap {args.mem_cap_gib:g} GiB"
    elif r["returncode"] < 0:
        err = f"killed by signal {-r['returncode']}"
    return {"error": err[:80]}


def fmt_t(r):
    if r is None:
        return "skipped"
    if "error" in r:
        return f"failed ({r['error']})"
    t = r["time_s"]
    return (f"{t * 1e3:.0f} ms" if t < 1 else f"{t:.2f} s") + ("" if len(r["times_s"]) > 1 else " (1 run)")


def fmt_m(r):
    if r is None or "error" in r:
        return "-"
    m = r["peak_bytes"]
    return f"{m / 2**20:.0f} MiB" if m < 2**30 else f"{m / 2**30:.2f} GiB"


def ratio(r, ours):
    ok = r and ours and "error" not in r and "error" not in ours
    return r["time_s"] / ours["time_s"] if ok else None


def rel_diff(ours, plain):
    ok = ours and plain and "error" not in ours and "error" not in plain
    return abs(ours["loss"] - plain["loss"]) / abs(plain["loss"]) if ok else None


def header():
    import torch, pytorch_metric_learning
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), platform.processor())
    git = subprocess.run(["git", "describe", "--always", "--dirty"], capture_output=True, text=True,
                         cwd=os.path.dirname(os.path.abspath(__file__))).stdout.strip()
    return {"torch": torch.__version__, "threads": torch.get_num_threads(), "cpu": cpu, "cores": os.cpu_count(),
            "pml": pytorch_metric_learning.__version__, "git": git, "python": platform.python_version()}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", choices=SIZES)
    ap.add_argument("--quick", action="store_true", help="B in {256, 1024} only (smoke test)")
    ap.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    ap.add_argument("--skip-plain-16384", action="store_true", help="skip the plain reference at B=16384 (~40 s, ~12 GiB)")
    ap.add_argument("--mem-cap-gib", type=float, default=16.0, help="address-space cap per case, over the post-import size")
    ap.add_argument("--timeout-s", type=float, default=300.0, help="wall-clock cap per case")
    ap.add_argument("--budget-s", type=float, default=40.0, help="stop timed repetitions past this (at least 2 are kept)")
    ap.add_argument("--case", nargs=3, metavar=("LOSS", "IMPL", "B"), help=argparse.SUPPRESS)
    ap.add_argument("--reps", type=int, default=5, help=argparse.SUPPRESS)
    ap.add_argument("--warmup", type=int, default=1, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.case:
        loss, impl, b = args.case
        print(json.dumps(run_case(loss, impl, int(b), args.reps, args.warmup, args.budget_s, args.mem_cap_gib)))
        return
    sizes = sorted(args.sizes or ((256, 1024) if args.quick else SIZES))
    meta = header()
    print(f"torch {meta['torch']} | {meta['threads']} threads | CPU: {meta['cpu']} ({meta['cores']} cores) | "
          f"pytorch-metric-learning {meta['pml']} | contrastlab @ {meta['git']}")
    print(f"D={D}, float32, forward+backward; median wall time; peak = RSS growth over post-setup baseline\n", flush=True)
    res = {loss: {b: {} for b in sizes} for loss in LOSSES}
    for loss in LOSSES:
        for b in sizes:
            for impl in IMPLS:
                if (impl == "pml" and b > PML_MAX_B[loss]) or (impl == "floor" and loss != "nt_xent") or (impl == "plain" and b == 16384 and args.skip_plain_16384):
                    res[loss][b][impl] = None
                    continue
                t0 = time.perf_counter()
                r = res[loss][b][impl] = spawn(loss, impl, b, args)
                print(f"  [{loss} B={b} {impl}] {fmt_t(r)}, {fmt_m(r)} ({time.perf_counter() - t0:.0f} s)", file=sys.stderr, flush=True)
    for loss in LOSSES:
        print(f"\n### {loss}\n")
        print("| B | ours time | ours peak mem | plain time | plain peak mem | PML time | PML peak mem "
              "| plain/ours speed ratio | PML/ours speed ratio | rel. diff. vs plain | GEMM floor | ours/floor |")
        print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for b in sizes:
            o, p, m, f = (res[loss][b][i] for i in IMPLS)
            rp, rm, rd, rf = ratio(p, o), ratio(m, o), rel_diff(o, p), ratio(o, f)
            print(f"| {b} | {fmt_t(o)} | {fmt_m(o)} | {fmt_t(p)} | {fmt_m(p)} | {fmt_t(m)} | {fmt_m(m)} | "
                  + " | ".join("-" if x is None else f"{x:.1f}x" for x in (rp, rm)) + f" | {'-' if rd is None else f'{rd:.1e}'} | "
                  + f"{fmt_t(f) if f else '-'} | {'-' if rf is None else f'{rf:.2f}x'} |")
        diffs = [rel_diff(res[loss][b]["pml"], res[loss][b]["plain"]) for b in sizes]
        print("\nPML vs plain rel. diff.: " + ", ".join(f"B={b}: {d:.1e}" for b, d in zip(sizes, diffs) if d is not None))
    nt = res["nt_xent"]
    get = lambda b, i: (nt.get(b) or {}).get(i)
    ok = lambda *rs: all(r and "error" not in r for r in rs)
    o4, p4, o16, o256, m256 = get(4096, "ours"), get(4096, "plain"), get(16384, "ours"), get(256, "ours"), get(256, "pml")
    targets = [
        ("(1) NT-Xent B=4096: ours time <= 0.6 x plain time",
         ok(o4, p4) and o4["time_s"] <= 0.6 * p4["time_s"], ok(o4, p4) and f"ours/plain = {o4['time_s'] / p4['time_s']:.2f}"),
        ("(2) NT-Xent B=16384: ours peak mem growth < 1 GiB and ours time <= 12 s",
         ok(o16) and o16["peak_bytes"] < 2**30 and o16["time_s"] <= 12,
         ok(o16) and f"{fmt_m(o16)}, {o16['time_s']:.2f} s"),
        ("(3) NT-Xent B=256: ours >= 100x faster than PML NTXentLoss",
         ok(o256, m256) and m256["time_s"] >= 100 * o256["time_s"], ok(o256, m256) and f"PML/ours = {m256['time_s'] / o256['time_s']:.0f}x"),
    ]
    print("\n### Targets\n")
    for name, met, detail in targets:
        print(f"- {name}: " + (f"{'MET' if met else 'NOT MET'} ({detail})" if detail else "n/a (not measured in this run, or failed)"))
    if args.json:
        out = {"meta": meta, "sizes": sizes, "results": res,
               "targets": [{"target": n, "met": bool(m) if d else None, "detail": d or None} for n, m, d in targets]}
        d = os.path.dirname(os.path.abspath(args.json))
        fd, tmp = tempfile.mkstemp(dir=d, prefix=".losses-", suffix=".json")
        with os.fdopen(fd, "w") as f:
            json.dump(out, f, indent=1)
        os.replace(tmp, args.json)


if __name__ == "__main__":
    main()
