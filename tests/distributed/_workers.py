"""The cases of the 2-process tests: the same seeded models and batches are built by the spawned ranks (local
slices, DDP, global losses) and by the test process (whole batch, textbook losses in ``_reference``)."""
from __future__ import annotations

import contextlib

import torch
from torch import nn

IN, D, M, V = 6, 5, 3, 2          # input size, embedding size, hard negatives per query, views per example

#: name -> (loss kind, rows per rank, dtype, variant). A variant re-creates a bug of the anchors, so the
#: comparison with one process must FAIL for it (proof that the test would catch that bug).
CASES = {
    "gather": ("gather", (3, 5), torch.float64, None),
    "nt_xent": ("nt_xent", (4, 4), torch.float64, None),
    "nt_xent_uneven": ("nt_xent", (3, 5), torch.float64, None),
    "nt_xent_decoupled": ("nt_xent_decoupled", (4, 4), torch.float64, None),
    "nt_xent_float32": ("nt_xent", (4, 4), torch.float32, None),
    "supcon": ("supcon", (5, 4), torch.float64, None),
    "supcon_unlabelled": ("supcon_unlabelled", (4, 4), torch.float64, None),
    "info_nce": ("info_nce", (4, 4), torch.float64, None),
    "clip": ("clip", (4, 4), torch.float64, None),
    "nt_xent_grad_cache": ("nt_xent", (4, 4), torch.float64, "grad_cache"),
    "clip_grad_cache": ("clip", (3, 5), torch.float64, "grad_cache"),    # temperature outside DDP
    "bug_no_reduce": ("nt_xent", (4, 4), torch.float64, "no_reduce"),
    "bug_unscaled": ("nt_xent", (4, 4), torch.float64, "unscaled"),
    "bug_labels_misaligned": ("supcon", (5, 4), torch.float64, "misaligned"),
}
#: SupCon labels differ by rank: classes 1 and 2 have members on both ranks, 0 and 3 on one rank only, and
#: class 4 has a single member (an anchor without a positive).
SUPCON_LABELS = torch.tensor([0, 1, 2, 0, 4, 1, 3, 3, 2])


def batch(kind: str, n: int, dtype, seed: int) -> dict:
    g = torch.Generator().manual_seed(seed)
    r = lambda *s: torch.randn(*s, generator=g, dtype=dtype)   # noqa: E731
    if kind == "gather":
        return {"x": r(n, D), "w": r(2, n, D), "ids": torch.arange(n) * 10}
    if kind.startswith("nt_xent"):
        return {"xa": r(n, IN), "xb": r(n, IN)}
    if kind.startswith("supcon"):
        return {"views": r(n, V, IN), "labels": SUPCON_LABELS[:n]}
    if kind == "info_nce":
        return {"xq": r(n, IN), "xp": r(n, IN), "xn": r(n, M, IN)}
    return {"xa": r(n, IN), "xb": r(n, IN)}


class Net(nn.Module):
    """Linear towers; CLIP also holds a learnable temperature (so its gradient is checked too)."""

    def __init__(self, kind: str, dtype):
        super().__init__()
        self.kind = kind
        self.f = nn.Linear(IN, D, dtype=dtype)
        if kind in ("info_nce", "clip"):
            self.g = nn.Linear(IN, D, dtype=dtype)
        if kind == "clip":
            from contrastlab.losses import LearnableTemperature
            self.temperature = LearnableTemperature(initial_temperature=0.25)

    def forward(self, b: dict):
        k = self.kind
        if k.startswith("nt_xent"):
            n = b["xa"].shape[0]
            z = self.f(torch.cat([b["xa"], b["xb"]]))
            return z[:n], z[n:]
        if k.startswith("supcon"):
            return (self.f(b["views"].flatten(0, 1)).unflatten(0, b["views"].shape[:2]),)
        if k == "info_nce":
            n = b["xq"].shape[0]
            d = self.g(torch.cat([b["xp"], b["xn"].flatten(0, 1)]))
            return self.f(b["xq"]), d[:n], d[n:].unflatten(0, (n, M))
        scale = (self.temperature.log_scale.exp(),) if "temperature" in self._modules else ()
        return (self.f(b["xa"]), self.g(b["xb"]), *scale)


def global_loss(kind: str, out, b: dict):
    from contrastlab.losses import distributed as G
    if kind == "nt_xent":
        return G.global_nt_xent(*out, temperature=0.3)
    if kind == "nt_xent_decoupled":
        return G.global_nt_xent(*out, temperature=0.3, decoupled=True)
    if kind == "supcon":
        return G.global_supcon(out[0], b["labels"], temperature=0.2)
    if kind == "supcon_unlabelled":
        return G.global_supcon(out[0], None, temperature=0.2)
    if kind == "info_nce":
        return G.global_info_nce(*out, temperature=0.2)
    return G.global_clip_loss(out[0], out[1], logit_scale=out[2])


def reference_loss(kind: str, out, b: dict):
    from . import _reference as R
    if kind.startswith("nt_xent"):
        return R.nt_xent(*out, 0.3, decoupled=kind == "nt_xent_decoupled")
    if kind.startswith("supcon"):
        return R.supcon(out[0], b["labels"] if kind == "supcon" else None, 0.2)
    if kind == "info_nce":
        return R.info_nce(*out, 0.2)
    return R.clip(*out)


def _slice(b: dict, lo: int, hi: int) -> dict:
    return {k: v[lo:hi] for k, v in b.items()}


# -- the re-created bugs -----------------------------------------------------------------------------------------
class _GatherNoReduce(torch.autograd.Function):
    """all_gather whose backward keeps only this rank's own gradient (no all-reduce)."""

    @staticmethod
    def forward(ctx, x, sizes):
        from contrastlab.distributed import _gather_padded
        ctx.sizes = sizes
        return _gather_padded(x, sizes)

    @staticmethod
    def backward(ctx, g):
        from contrastlab.distributed import rank
        start = sum(ctx.sizes[:rank()])
        return g[start:start + ctx.sizes[rank()]], None


@contextlib.contextmanager
def _bug(variant):
    import contrastlab.distributed as cd
    saved = cd.all_gather_with_grad, cd.gather_no_grad
    if variant == "no_reduce":
        cd.all_gather_with_grad = lambda x, sizes=None: _GatherNoReduce.apply(x, cd._check_sizes(x, sizes))
    if variant == "misaligned":                      # labels gathered in the wrong rank order
        cd.gather_no_grad = lambda x, sizes=None: torch.cat(saved[1](x, sizes=sizes).split(sizes)[::-1])
    try:
        yield
    finally:
        cd.all_gather_with_grad, cd.gather_no_grad = saved


# -- what each rank runs -----------------------------------------------------------------------------------------
def _gather_case(sizes, dtype, seed) -> dict:
    from contrastlab import distributed as cd
    r = cd.rank()
    full = batch("gather", sum(sizes), dtype, seed)
    lo = sum(sizes[:r])
    x = full["x"][lo:lo + sizes[r]].clone().requires_grad_()
    y = cd.all_gather_with_grad(x)                                       # (N, D)
    loss = (full["w"][r] * y).sum() + (r + 1) * (y ** 3).sum()          # a different objective per rank
    loss.backward()
    return {"y": y.detach(), "grad": x.grad, "ids": cd.gather_no_grad(full["ids"][lo:lo + sizes[r]]),
            "sizes": cd.gather_sizes(sizes[r]), "mean": cd.all_reduce_mean(float(r + 1)),
            "world": (cd.world_size(), cd.rank(), cd.is_main())}


def _loss_case(kind, sizes, dtype, variant, seed) -> dict:
    from torch.nn.parallel import DistributedDataParallel as DDP

    from contrastlab import distributed as cd
    r = cd.rank()
    torch.manual_seed(seed)
    model = Net(kind, dtype)
    outside = model._modules.pop("temperature") if variant == "grad_cache" and kind == "clip" else None
    ddp = DDP(model)
    full = batch(kind, sum(sizes), dtype, seed + 1)
    lo = sum(sizes[:r])
    local = _slice(full, lo, lo + sizes[r])
    with _bug(variant):
        if variant == "grad_cache":                  # chunks of 2 rows; a loss-side temperature outside DDP
            from contrastlab.train.gradcache import grad_cache_step, split_batch
            extra = lambda: (outside.log_scale.exp(),) if outside is not None else ()   # noqa: E731
            loss = grad_cache_step(ddp, split_batch(local, 2), lambda *z: global_loss(kind, (*z, *extra()), local),
                                   no_sync=ddp.no_sync)
            if outside is not None:
                cd.average_gradients(outside.parameters())
                model.temperature = outside              # so its gradient is reported under its usual name
        else:
            loss = global_loss(kind, ddp(local), local)
            if variant == "unscaled":
                loss = loss / cd.world_size()
            loss.backward()
    return {"loss": cd.all_reduce_mean(loss), "grads": {n: p.grad.clone() for n, p in model.named_parameters()}}


def run_all(seed: int) -> dict:
    """Every case, in one process group (one spawn for the whole test file)."""
    out = {}
    for i, (name, (kind, sizes, dtype, variant)) in enumerate(CASES.items()):
        if kind == "gather":
            out[name] = _gather_case(sizes, dtype, seed + 100 * i)
        else:
            out[name] = _loss_case(kind, sizes, dtype, variant, seed + 100 * i)
    return out


def single_process(name: str, seed: int) -> dict:
    """The reference: one process, the whole batch, the textbook loss."""
    kind, sizes, dtype, _ = CASES[name]
    i = list(CASES).index(name)
    torch.manual_seed(seed + 100 * i)
    model = Net(kind, dtype)
    full = batch(kind, sum(sizes), dtype, seed + 100 * i + 1)
    loss = reference_loss(kind, model(full), full)
    loss.backward()
    return {"loss": float(loss.detach()), "grads": {n: p.grad.clone() for n, p in model.named_parameters()}}
