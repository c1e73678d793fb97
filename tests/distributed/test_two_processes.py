"""Two Gloo processes on 127.0.0.1 against one process on the concatenated batch (issue #7, "Done when").

All cases run in ONE spawn (starting two Python processes with torch is most of this file's time); each rank
returns its loss and its DDP-averaged parameter gradients, and this process recomputes them on the whole batch
with the textbook float64 losses of ``_reference``. The ``bug_*`` cases re-create the anchors' bugs and must
NOT match, which shows the comparison is sharp enough to catch them.
"""
from __future__ import annotations

import fcntl
import os
import pickle

import pytest
import torch

from contrastlab.distributed import spawn_local
from contrastlab.io import atomic_write_bytes

from . import _workers as W

SEED = 1234
TOL = {torch.float64: 1e-10, torch.float32: 1e-5}


@pytest.fixture(scope="module")
def ranks(tmp_path_factory):
    """Both ranks' results. Under pytest-xdist the workers share one spawn: the first one to take the lock runs
    it and leaves the results in the session's temporary directory for the other."""
    base = tmp_path_factory.getbasetemp()
    shared = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
    done = shared / "contrastlab_two_processes.pt"
    with open(shared / "contrastlab_two_processes.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not done.exists():
            out = spawn_local(W.run_all, nprocs=2, args=(SEED,), timeout_s=120, threads=1)
            atomic_write_bytes(done, pickle.dumps(out))
        return pickle.loads(done.read_bytes())


def _mismatch(got: dict, ref: dict, tol: float) -> list[str]:
    bad = []
    if abs(got["loss"] - ref["loss"]) > tol * max(1.0, abs(ref["loss"])):
        bad.append(f"loss {got['loss']!r} != {ref['loss']!r}")
    for n, g in ref["grads"].items():
        err = float((got["grads"][n] - g).abs().max())
        if err > tol * max(1.0, float(g.abs().max())):
            bad.append(f"grad {n}: max error {err:.3g}")
    return bad


def test_all_gather_with_grad_matches_one_process(ranks):
    kind, sizes, dtype, _ = W.CASES["gather"]
    full = W.batch("gather", sum(sizes), dtype, SEED)
    x = full["x"].clone().requires_grad_()
    total = sum((full["w"][r] * x).sum() + (r + 1) * (x ** 3).sum() for r in range(2))   # sum of both objectives
    total.backward()
    for r, out in enumerate(ranks):
        got = out["gather"]
        lo = sum(sizes[:r])
        assert torch.equal(got["y"], full["x"]), "gathered values out of rank order"
        torch.testing.assert_close(got["grad"], x.grad[lo:lo + sizes[r]], rtol=0, atol=1e-12)
        assert torch.equal(got["ids"], full["ids"]) and got["sizes"] == [3, 5]
        assert got["mean"] == 1.5 and got["world"] == (2, r, r == 0)


@pytest.mark.parametrize("name", [n for n, c in W.CASES.items() if c[0] != "gather" and not n.startswith("bug")])
def test_two_processes_equal_one_process(ranks, name):
    ref = W.single_process(name, SEED)
    tol = TOL[W.CASES[name][2]]
    for r, out in enumerate(ranks):
        bad = _mismatch(out[name], ref, tol)
        assert not bad, f"{name}, rank {r}: " + "; ".join(bad)


@pytest.mark.parametrize("name", [n for n in W.CASES if n.startswith("bug")])
def test_reintroduced_bug_is_caught(ranks, name):
    ref = W.single_process(name, SEED)
    assert _mismatch(ranks[0][name], ref, TOL[torch.float64]), f"{name} should differ from one process"


def test_unscaled_bug_is_exactly_half(ranks):
    """The world-size factor: without it every gradient is 1/2 of the one-process gradient."""
    ref = W.single_process("bug_unscaled", SEED)
    for n, g in ref["grads"].items():
        torch.testing.assert_close(ranks[0]["bug_unscaled"]["grads"][n] * 2, g, rtol=1e-10, atol=1e-12)
