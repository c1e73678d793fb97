"""Everything cross-process: rank and world size, a gather that carries gradients, reductions, local launch.

Every function works without a process group: in a single process the world has size 1, gathers return their
input and reductions return their argument, so code written against this module runs unchanged under
``python train.py`` and ``torchrun --nproc-per-node 4 train.py``.

Example::

    >>> import torch
    >>> from contrastlab import distributed as dist
    >>> dist.world_size(), dist.rank(), dist.is_main()
    (1, 0, True)
    >>> x = torch.randn(4, 8, requires_grad=True)
    >>> dist.all_gather_with_grad(x) is x            # single-process fast path: no copy, no process group
    True
    >>> dist.all_reduce_mean(2.5)
    2.5

Launch: under ``torchrun`` call :func:`init_from_env` once at start-up (gloo on CPU, nccl on CUDA); on one CPU
machine :func:`spawn_local` starts N gloo processes itself (tests and benchmarks use it).
"""
from __future__ import annotations

import datetime
import os
import pickle
import queue as queue_mod
import socket
import time
from typing import Callable, Sequence

import torch
import torch.distributed as tdist

from . import devices

__all__ = ["is_distributed", "world_size", "rank", "local_rank", "is_main", "barrier", "leave", "init_from_env",
           "default_device", "gather_sizes", "all_gather_with_grad", "gather_no_grad", "all_reduce_sum",
           "all_reduce_mean", "average_gradients", "seed_for_rank", "free_port", "spawn_local"]

_ENV = ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")


# -- where am I ---------------------------------------------------------------------------------------------
def is_distributed() -> bool:
    """True when a default process group is initialised (even with world size 1)."""
    return tdist.is_available() and tdist.is_initialized()


def world_size() -> int:
    return tdist.get_world_size() if is_distributed() else 1


def rank() -> int:
    return tdist.get_rank() if is_distributed() else 0


_this_rank = rank


def local_rank() -> int:
    """This process's index on its machine (torchrun's LOCAL_RANK; 0 when not launched by it)."""
    return int(os.environ.get("LOCAL_RANK", 0))


def is_main() -> bool:
    """True on rank 0: the process that writes the run directory and prints."""
    return rank() == 0


def barrier() -> None:
    if world_size() > 1:
        tdist.barrier()


def default_device() -> torch.device:
    """This rank's device: ``cuda:LOCAL_RANK`` when CUDA is present (each rank owns one accelerator), else what
    :func:`contrastlab.devices.default_device` picks."""
    return devices.default_device()


def leave() -> None:
    """Leave the process group at the end of a run (every rank, after the run's last barrier): the group is
    destroyed while the interpreter still runs. Left to the interpreter's exit, the group's threads are torn down by
    static destructors, and a rank whose peer has already exited can abort with "terminate called without an active
    exception" (seen under load, on a resumed 2-process run). Does nothing in a single process.

    >>> leave()                       # one process: nothing to leave
    >>> is_distributed()
    False
    """
    if is_distributed():
        tdist.destroy_process_group()


def init_from_env(backend: str | None = None, *, timeout_s: float = 1800.0) -> bool:
    """Join the process group described by torchrun's environment (RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT).

    Returns False, doing nothing, when WORLD_SIZE is unset or 1 (a plain single process); True once the group is
    up (also when it already was). ``backend=None`` picks nccl when CUDA is present and gloo otherwise.
    """
    if is_distributed():
        return True
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return False
    missing = [k for k in _ENV if k not in os.environ]
    if missing:
        raise RuntimeError(f"WORLD_SIZE={os.environ['WORLD_SIZE']} but the environment variables {missing} are "
                           f"missing; launch with `torchrun --nproc-per-node N ...` or set all of {list(_ENV)}")
    if backend is None:
        backend = devices.default_backend()          # nccl only where the tensors are on CUDA
    if backend not in ("gloo", "nccl"):
        raise ValueError(f"`backend` must be 'gloo', 'nccl' or None, got {backend!r}")
    if backend == "nccl":
        devices.set_current(default_device())
    timeout = datetime.timedelta(seconds=timeout_s)
    restart = os.environ.get("TORCHELASTIC_RESTART_COUNT")
    if restart is None:
        tdist.init_process_group(backend, init_method="env://", timeout=timeout)
        return True
    # Under torchrun the store outlives a restart; a restarted group reading the dead processes' addresses fails to
    # connect ("Connection refused"). A key prefix per restart keeps each round's addresses apart.
    agent_store = os.environ.get("TORCHELASTIC_USE_AGENT_STORE", "").lower() == "true"
    rank_, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    store = tdist.TCPStore(os.environ["MASTER_ADDR"], int(os.environ["MASTER_PORT"]), world,
                           is_master=not agent_store and rank_ == 0, timeout=timeout)
    store = tdist.PrefixStore(f"contrastlab/restart_{restart}", store)
    tdist.init_process_group(backend, store=store, rank=rank_, world_size=world, timeout=timeout)
    return True


def _comm_device() -> torch.device:
    """The device collectives run on: the GPU for nccl, the CPU for gloo."""
    return default_device() if tdist.get_backend() == "nccl" else devices.CPU


# -- gathers --------------------------------------------------------------------------------------------------
def gather_sizes(n: int) -> list[int]:
    """Every rank's ``n`` (its local batch size), in rank order. One tiny collective; ``[n]`` in one process."""
    if world_size() == 1:
        return [int(n)]
    t = torch.tensor([int(n)], dtype=torch.long, device=_comm_device())
    out = [torch.empty_like(t) for _ in range(world_size())]
    tdist.all_gather(out, t)
    return [int(o) for o in out]


def _check_sizes(x: torch.Tensor, sizes: Sequence[int] | None) -> list[int]:
    sizes = gather_sizes(x.shape[0]) if sizes is None else [int(s) for s in sizes]
    if len(sizes) != world_size() or sizes[rank()] != x.shape[0]:
        raise ValueError(f"`sizes` must hold every rank's number of rows ({world_size()} entries, this rank's "
                         f"= {x.shape[0]}), got {sizes}")
    return sizes


def _gather_padded(x: torch.Tensor, sizes: list[int]) -> torch.Tensor:
    """all_gather of tensors whose first axis differs by rank (gloo and nccl need equal shapes): pad, gather, cut."""
    dev = x.device
    xc = x.detach().to(_comm_device()).contiguous()
    m = max(sizes)
    if xc.shape[0] < m:
        xc = torch.cat([xc, xc.new_zeros(m - xc.shape[0], *xc.shape[1:])])
    out = [torch.empty_like(xc) for _ in sizes]
    tdist.all_gather(out, xc)
    return torch.cat([o[:s] for o, s in zip(out, sizes)]).to(dev)        # (sum(sizes), ...)


class _AllGather(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, sizes):
        ctx.sizes = sizes
        return _gather_padded(x, sizes)

    @staticmethod
    def backward(ctx, grad):
        sizes, r = ctx.sizes, rank()
        g = grad.contiguous().to(_comm_device())
        tdist.all_reduce(g, op=tdist.ReduceOp.SUM)                        # sum_r dL_r / dY, on every rank
        start = sum(sizes[:r])
        return g[start:start + sizes[r]].to(grad.device), None


def all_gather_with_grad(x: torch.Tensor, *, sizes: Sequence[int] | None = None) -> torch.Tensor:
    """Concatenate every rank's ``x`` along axis 0, in rank order, keeping the gradient path to the local part.

    Shape:
        x: (B_r, ...) on rank r, the trailing axes equal on every rank (B_r may differ). Output: (sum_r B_r, ...).
        ``sizes``: every rank's B_r if already known (saves one tiny collective), else gathered here.

    Gradient: the backward all-reduces (SUM) the incoming gradient over ranks and returns this rank's slice.
    Why SUM is right when each rank's loss is scaled as in :mod:`contrastlab.losses.distributed` and the model is
    wrapped in DistributedDataParallel (which *averages* parameter gradients): let rank r compute ``L_r`` from its
    local rows and the gathered columns Y = [z_1, ..., z_W], scaled so that the full-batch loss is
    ``L = (1/W) sum_r L_r``. Then ``dL/dtheta = sum_s (dL/dz_s) (dz_s/dtheta)``, where only rank s can compute
    ``dz_s/dtheta``. Rank r's graph sees the other ranks' ``z_s`` only as constants inside Y, so rank s must
    receive every rank's ``dL_r/dY[s]``: the SUM over r, sliced to s. With ``dL_s/dz_s`` through its own rows,
    z_s gets ``sum_r dL_r/dz_s = W dL/dz_s``, and DDP's average over s divides by W:
    ``(1/W) sum_s W (dL/dz_s)(dz_s/dtheta) = dL/dtheta``, the single-process gradient. The anchors' bugs are the
    two wrong alternatives: no
    reduction (only ``dL_s/dz_s`` survives: the other ranks' terms are lost) and an average instead of a sum
    (gradients 1/W too small). Without DDP, sum parameter gradients over ranks and divide by W yourself.

    In one process this returns ``x`` itself.
    """
    if world_size() == 1:
        return x
    return _AllGather.apply(x, _check_sizes(x, sizes))


def gather_no_grad(x: torch.Tensor, *, sizes: Sequence[int] | None = None) -> torch.Tensor:
    """All ranks' ``x`` concatenated along axis 0 in rank order, detached (labels, ids, metrics); any dtype.

    Shape: (B_r, ...) -> (sum_r B_r, ...). In one process this returns ``x`` detached.
    """
    if world_size() == 1:
        return x.detach()
    return _gather_padded(x, _check_sizes(x, sizes))


def all_reduce_sum(value: float | torch.Tensor) -> float:
    """The sum over ranks of a number (or a one-element tensor), as a float. A plain float in one process."""
    v = float(value.detach()) if torch.is_tensor(value) else float(value)
    if world_size() == 1:
        return v
    t = torch.tensor([v], dtype=torch.float64, device=_comm_device())
    tdist.all_reduce(t, op=tdist.ReduceOp.SUM)
    return float(t)


def all_reduce_mean(value: float | torch.Tensor) -> float:
    """The mean over ranks (e.g. of each rank's loss, for logging). A plain float in one process."""
    return all_reduce_sum(value) / world_size()


def average_gradients(params) -> None:
    """Average ``.grad`` over ranks in place (one collective), for parameters that DistributedDataParallel does
    not manage: e.g. a loss's learnable temperature used outside the DDP forward, as with GradCache. A missing
    gradient counts as zeros (every rank must take part). No-op in one process."""
    params = list(params)
    if world_size() == 1 or not params:
        return
    for p in params:
        if p.grad is None:
            p.grad = torch.zeros_like(p)
    flat = torch.cat([p.grad.detach().reshape(-1).to(_comm_device()) for p in params])
    tdist.all_reduce(flat, op=tdist.ReduceOp.SUM)
    flat /= world_size()
    for p, g in zip(params, flat.split([p.numel() for p in params])):
        p.grad.copy_(g.view_as(p.grad))


def seed_for_rank(seed: int, *, rank: int | None = None) -> int:
    """A seed for this rank's own random draws (its data order, its views): ``seed`` itself on rank 0, so a
    one-process run is unchanged, and a well-mixed distinct seed on every other rank. Model initialisation should
    use the plain ``seed`` (DDP also broadcasts rank 0's weights).

    >>> seed_for_rank(7, rank=0), seed_for_rank(7, rank=1) != seed_for_rank(8, rank=0)
    (7, True)
    """
    r = _this_rank() if rank is None else int(rank)
    if r == 0:
        return int(seed)
    return (int(seed) * 1_000_003 + r * 0x9E3779B97F4A7C15) % (2 ** 63 - 1)


# -- launching N local processes (CPU, gloo) -------------------------------------------------------------------
def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _spawned(local: int, fn, nprocs: int, port: int, backend: str, timeout_s: float, threads, results, args):
    os.environ.update(RANK=str(local), LOCAL_RANK=str(local), WORLD_SIZE=str(nprocs),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    if threads:
        torch.set_num_threads(threads)
    init_from_env(backend, timeout_s=timeout_s)                             # no group at all when nprocs == 1
    try:
        out = fn(*args)
        results.put((local, pickle.dumps(out)))
    finally:
        if is_distributed():
            tdist.destroy_process_group()


def spawn_local(fn: Callable, *, nprocs: int, args: tuple = (), backend: str = "gloo", timeout_s: float = 120.0,
                threads: int | None = None) -> list:
    """Run ``fn(*args)`` in ``nprocs`` fresh processes joined in one process group on 127.0.0.1.

    Returns the list of each rank's return value (pickled back), in rank order. ``fn`` must be importable by
    name (a module-level function). A child that raises makes this raise too; if the processes have not all
    finished after ``timeout_s`` seconds (a hung collective) they are terminated and TimeoutError is raised.
    ``threads`` sets each child's torch thread count (share the cores: e.g. cores // nprocs).
    """
    import torch.multiprocessing as mp
    if not isinstance(nprocs, int) or nprocs < 1:
        raise ValueError(f"`nprocs` must be a positive int, got {nprocs!r}")
    ctx = mp.get_context("spawn")
    results = ctx.Queue()
    pc = mp.start_processes(_spawned, args=(fn, nprocs, free_port(), backend, timeout_s, threads, results, args),
                            nprocs=nprocs, join=False, start_method="spawn")
    got: dict[int, object] = {}
    deadline = time.monotonic() + timeout_s

    def drain(block_s: float) -> None:
        try:
            while True:
                r, payload = results.get(timeout=block_s)
                got[r] = pickle.loads(payload)
                block_s = 0.0
        except queue_mod.Empty:
            pass

    while True:
        drain(0.05)                                   # read while the children run: a full pipe would block them
        if pc.join(timeout=0.05):
            break
        if time.monotonic() > deadline:
            for p in pc.processes:
                if p.is_alive():
                    p.terminate()
            for p in pc.processes:
                p.join(5)
            raise TimeoutError(f"spawn_local: {nprocs} processes running {getattr(fn, '__name__', fn)!r} did not "
                               f"finish within `timeout_s` = {timeout_s} s (a collective that only some ranks "
                               f"called hangs like this)")
    drain(1.0)
    if len(got) != nprocs:
        raise RuntimeError(f"spawn_local: only ranks {sorted(got)} of {nprocs} returned a result")
    return [got[r] for r in range(nprocs)]
