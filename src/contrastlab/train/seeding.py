"""Seeded random generators, one per purpose, from integer keys: the only source of training randomness.

Every random draw of training step `s` comes from a generator seeded by (seed, purpose, s, ...), so a run killed at
any point and resumed replays the same draws. The generators are CPU generators on every device: the draws are
small (a permutation, a few numbers per image) and are moved to the device by the code that uses them, so the same
seed gives the same batches, crops and shuffles on a CPU and on a GPU.

Purposes (the second key): 1 the epoch's permutation, 2 a step's views, 3 the probe / monitor bank, 4 the
monitor's view geometry, 5 the evaluation's view geometry.

>>> a, b = generator(0, 2, 7), generator(0, 2, 7)
>>> bool((torch.rand(3, generator=a) == torch.rand(3, generator=b)).all())
True
"""
from __future__ import annotations

import torch

__all__ = ["generator", "views_generator", "mix"]


def mix(*keys: int) -> int:
    """A seed in [0, 2**63 - 1) from integer keys: a fixed arithmetic mix (Python's hash() is salted per process)."""
    seed = 0
    for k in keys:
        seed = (seed * 1_000_003 + int(k) + 0x9E3779B9) % (2 ** 63 - 1)
    return seed


def generator(*keys: int) -> torch.Generator:
    """A CPU generator seeded by :func:`mix` of ``keys``."""
    return torch.Generator().manual_seed(mix(*keys))


def views_generator(seed: int, step: int, rank: int = 0) -> torch.Generator:
    """The generator of step `step`'s views on process `rank` (rank 0 draws what one process draws)."""
    return generator(seed, 2, step) if rank == 0 else generator(seed, 2, step, rank)
