"""A FIFO queue of negatives (MoCo, He et al. 2020) that is a ring buffer of module buffers.

It is saved and restored with the model's `state_dict` (so `--resume` continues with the same negatives), only
the entries filled so far are returned (no zero vectors posing as negatives early in training), and every key
enqueued is kept until `size` newer keys have arrived: batches need not divide the size, and a batch larger than
the queue is an error rather than a silent truncation.

>>> q = NegativeQueue(size=5, dim=2)
>>> q.enqueue(torch.eye(2)); len(q)
2
>>> q.enqueue(torch.ones(4, 2)); len(q), q.dropped
(5, 1)
"""
from __future__ import annotations

import torch
from torch import nn

__all__ = ["NegativeQueue"]


class NegativeQueue(nn.Module):
    def __init__(self, *, size: int, dim: int, with_labels: bool = False):
        super().__init__()
        for name, v in (("size", size), ("dim", dim)):
            if not isinstance(v, int) or v < 1:
                raise ValueError(f"`{name}` must be a positive int, got {v!r}")
        self.size, self.dim = size, dim
        self.register_buffer("keys", torch.zeros(size, dim))                     # (K, D)
        self.register_buffer("labels", torch.full((size,), -1, dtype=torch.long) if with_labels else None)
        self.register_buffer("ptr", torch.zeros((), dtype=torch.long))           # next slot to write
        self.register_buffer("count", torch.zeros((), dtype=torch.long))         # slots filled so far
        self.register_buffer("total", torch.zeros((), dtype=torch.long))         # keys ever enqueued

    def __len__(self) -> int:
        return int(self.count)

    @property
    def dropped(self) -> int:
        """Keys pushed out by newer ones (the FIFO's purpose, counted so it is never silent)."""
        return int(self.total) - int(self.count)

    @torch.no_grad()
    def enqueue(self, keys: torch.Tensor, labels: torch.Tensor | None = None) -> None:
        """Append `keys` (B, D); the oldest entries are overwritten once the queue is full."""
        if keys.ndim != 2 or keys.shape[1] != self.dim:
            raise ValueError(f"`keys` must have shape (B, {self.dim}), got {tuple(keys.shape)}")
        b = keys.shape[0]
        if b > self.size:
            raise ValueError(f"cannot enqueue {b} keys into a queue of size {self.size}: "
                             f"the batch would overwrite itself; use a queue at least as large as the batch")
        if (self.labels is not None) != (labels is not None):
            raise ValueError("`labels` must be given exactly when the queue was built with `with_labels=True`")
        idx = (int(self.ptr) + torch.arange(b, device=self.keys.device)) % self.size
        self.keys[idx] = keys.detach().to(self.keys.dtype)
        if labels is not None:
            self.labels[idx] = labels.to(self.labels.device)
        self.ptr.fill_((int(self.ptr) + b) % self.size)
        self.count.fill_(min(int(self.count) + b, self.size))
        self.total.add_(b)

    def negatives(self) -> torch.Tensor:
        """The filled entries, (min(count, K), D), oldest first is not guaranteed (order does not matter)."""
        return self.keys[: int(self.count)]

    def negative_labels(self) -> torch.Tensor | None:
        return None if self.labels is None else self.labels[: int(self.count)]
