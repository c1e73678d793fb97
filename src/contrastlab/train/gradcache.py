"""Gradient caching (GradCache; Gao et al. 2021, "Scaling Deep Contrastive Learning Batch Size under Memory
Limited Setup"): a contrastive batch of any size at the activation memory of one micro-batch.

A contrastive loss couples every example with every other, so a big batch cannot simply be split into
accumulated micro-batches. GradCache splits only the encoder's work:

1. encode every chunk without a graph (the RNG state before each chunk is recorded);
2. compute the loss on the concatenated embeddings, detached with ``requires_grad``, and back-propagate it to
   get ``d loss / d embeddings`` (the loss's own parameters, e.g. a learnable temperature, get their gradients
   here);
3. encode each chunk again, with the graph and with its RNG state restored, so dropout and any random
   augmentation inside ``encode`` draw the same numbers, and back-propagate its slice of the cached gradient.

The parameter gradients are then those of one backward through the same chunks: exact, not approximate.
Each replayed chunk is compared with its first pass; a mismatch (a random source that was not replayed) raises
instead of giving silently wrong gradients.

Caveat, BatchNorm in train mode: it normalises each chunk with that chunk's statistics, so the result equals a
direct step over the same chunks, not over one unsplit batch (LayerNorm, or BatchNorm in eval mode, have no
such coupling; SimCLR's "global BN" is a different fix). Pass ``module`` so its buffers (running statistics)
advance once per step rather than once per pass.

Example (two towers, chunks of 2 pairs)::

    >>> import torch
    >>> from contrastlab.losses import info_nce
    >>> q_net, d_net = torch.nn.Linear(8, 4), torch.nn.Linear(8, 4)
    >>> batch = {"query": torch.randn(6, 8), "doc": torch.randn(6, 8)}
    >>> loss = grad_cache_step(lambda c: (q_net(c["query"]), d_net(c["doc"])), split_batch(batch, 2),
    ...                        lambda q, d: info_nce(q, d, temperature=0.1))
    >>> q_net.weight.grad.shape
    torch.Size([4, 8])
"""
from __future__ import annotations

import contextlib
from typing import Callable, Sequence

import torch
from torch import nn

from .. import devices

from ..methods.base import split_batch

__all__ = ["grad_cache_step", "split_batch"]


def _as_tuple(out, where: str) -> tuple:
    outs = tuple(out) if isinstance(out, (tuple, list)) else (out,)
    for o in outs:
        if not torch.is_tensor(o) or not o.is_floating_point():
            raise TypeError(f"`encode` must return a floating-point tensor or a tuple of them, got "
                            f"{type(o).__name__ if not torch.is_tensor(o) else o.dtype} for {where}")
    return outs


def _rng_state(generators: Sequence[torch.Generator]) -> dict:
    return {"global": devices.rng_state(), "gens": [g.get_state() for g in generators]}


def _set_rng_state(state: dict, generators: Sequence[torch.Generator]) -> None:
    devices.set_rng_state(state["global"])
    for g, s in zip(generators, state["gens"]):
        g.set_state(s)


def _replay_gap(first: torch.Tensor, again: torch.Tensor) -> float:
    """Largest difference between the two passes, relative to the embeddings' size; half-precision outputs get
    1/100 of slack (a GPU may pick another kernel for the same shape), far below what a missed dropout gives."""
    if first.shape != again.shape:
        return float("inf")
    if not first.numel():
        return 0.0
    gap = float((first.float() - again.detach().float()).abs().max()) / max(float(first.abs().max()), 1e-12)
    return gap / 100 if first.dtype in (torch.float16, torch.bfloat16) else gap


def grad_cache_step(encode: Callable, chunks: Sequence, loss_fn: Callable, *,
                    generators: Sequence[torch.Generator] = (), module: nn.Module | None = None,
                    no_sync: Callable | None = None, replay_rng: bool = True,
                    check_replay: float | None = 1e-4) -> torch.Tensor:
    """Accumulate into ``.grad`` the gradient of ``loss_fn(*embeddings of all chunks)``, one chunk's graph at
    a time; returns the loss (detached). The caller zeroes the gradients before and steps the optimizer after.

    Shape:
        ``encode(chunk)`` returns a tensor (B_c, ...) or a tuple of them (two towers); the i-th outputs of all
        chunks are concatenated on axis 0 and passed to ``loss_fn`` as its i-th argument.

    Args:
        generators: torch.Generator objects that ``encode`` draws from (e.g. an augmentation's); their state
            is replayed too (the global CPU and CUDA generators always are).
        module: whose buffers (BatchNorm running statistics) are restored after the replay, so they advance once.
        no_sync: DistributedDataParallel's ``model.no_sync``: gradients are all-reduced only with the last chunk.
            Parameters of ``loss_fn`` (a learnable temperature) are outside that forward: keep them out of the
            DDP module and call :func:`contrastlab.distributed.average_gradients` on them after this step.
        replay_rng: False skips the replay (only to show why it is needed: dropout then differs between passes).
        check_replay: raise if a replayed chunk's embeddings differ from its first pass by more than this
            fraction of their largest magnitude (100x more for fp16 / bf16 outputs); None skips the check.
    """
    if not callable(encode) or not callable(loss_fn):
        raise TypeError("`encode` and `loss_fn` must be callables (chunk -> embeddings, embeddings -> loss)")
    chunks = list(chunks)
    if not chunks:
        raise ValueError("`chunks` must hold at least one chunk, got none")
    generators = tuple(generators)
    states, firsts = [], []
    with torch.no_grad():                                                     # pass 1: embeddings, no graph
        for i, c in enumerate(chunks):
            states.append(_rng_state(generators))
            firsts.append(_as_tuple(encode(c), f"chunk {i}"))
    after = _rng_state(generators)
    buffers = {k: b.clone() for k, b in module.named_buffers()} if module is not None else None
    if len({len(f) for f in firsts}) != 1:
        raise ValueError(f"`encode` must return the same number of tensors for every chunk, got "
                         f"{[len(f) for f in firsts]}")
    full = [torch.cat([f[k] for f in firsts]).requires_grad_() for k in range(len(firsts[0]))]
    with torch.enable_grad():
        loss = loss_fn(*full)
    if not torch.is_tensor(loss) or loss.dim() != 0:
        raise ValueError(f"`loss_fn` must return a scalar tensor, got {getattr(loss, 'shape', type(loss))}")
    loss.backward()
    grads = [e.grad if e.grad is not None else torch.zeros_like(e) for e in full]
    lo = [0] * len(full)                                                      # each output's row offset
    for i, c in enumerate(chunks):                                            # pass 2: replay, one graph at a time
        if replay_rng:
            _set_rng_state(states[i], generators)
        sync = no_sync() if no_sync is not None and i < len(chunks) - 1 else contextlib.nullcontext()
        with sync, torch.enable_grad():
            again = _as_tuple(encode(c), f"chunk {i}")
            if check_replay is not None:
                gap = max(_replay_gap(f, a) for f, a in zip(firsts[i], again))
                if gap > check_replay:
                    raise RuntimeError(
                        f"grad_cache_step: chunk {i}'s replayed embeddings differ from its first pass by {gap:.3g} "
                        f"(relative; `check_replay` = {check_replay}): a random source inside `encode` was not "
                        f"replayed (pass its torch.Generator in `generators`) or `encode` is not deterministic")
            torch.autograd.backward(again, [g[o:o + f.shape[0]] for g, o, f in zip(grads, lo, firsts[i])])
        lo = [o + f.shape[0] for o, f in zip(lo, firsts[i])]
    if replay_rng:
        _set_rng_state(after, generators)                                      # as if each chunk ran once
    if buffers is not None:
        with torch.no_grad():
            for k, b in module.named_buffers():
                b.copy_(buffers[k])
    return loss.detach()
