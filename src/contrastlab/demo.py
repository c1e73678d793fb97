"""The loss demo: every registered loss on real embeddings, matched pairs against shuffled ones.

Two augmented views (a one-pixel shift, a brightness change and pixel noise) of scikit-learn's
handwritten digits are embedded by PCA fitted on the clean images. A good contrastive loss is lower
for true pairs than for the same views with their partners (or labels) shuffled; the table shows
by how much, and how long forward + backward takes.

Example::

    >>> from contrastlab.demo import loss_table
    >>> rows = loss_table(batch=64, dim=16, seed=0)
    >>> all(r["matched"] < r["shuffled"] for r in rows)
    True
"""

from __future__ import annotations

import time

import numpy as np
import torch

from .losses import LOSSES, create_loss


def digit_views(*, batch: int, dim: int, seed: int):
    """Two augmented views of ``batch`` digits, PCA-embedded to ``dim``: (B, dim) x2, labels (B,)."""
    from sklearn.datasets import load_digits

    rng = np.random.default_rng(seed)
    digits = load_digits()
    images = digits.images.astype(np.float32) / 16.0                           # (1797, 8, 8)
    idx = rng.choice(len(images), size=batch, replace=False)

    def view(x):
        shift = rng.integers(-1, 2, size=(len(x), 2))
        out = np.stack([np.roll(img, tuple(s), axis=(0, 1)) for img, s in zip(x, shift)])
        out = out * rng.uniform(0.8, 1.2, size=(len(x), 1, 1)) + rng.normal(0, 0.1, size=out.shape)
        return out.reshape(len(x), -1)

    flat = images.reshape(len(images), -1)
    mean = flat.mean(0)
    _, _, vt = np.linalg.svd(flat - mean, full_matrices=False)
    proj = vt[:dim].T                                                          # (64, dim)
    za, zb = ((view(images[idx]) - mean) @ proj, (view(images[idx]) - mean) @ proj)
    return (torch.tensor(za, dtype=torch.float32), torch.tensor(zb, dtype=torch.float32),
            torch.tensor(digits.target[idx], dtype=torch.long))


def _inputs(kind, za, zb, labels):
    if kind == "pairs":
        return (za, zb)
    if kind == "views_labels":
        return (torch.stack([za, zb], 1), labels)
    if kind == "embeddings_labels":
        return (torch.cat([za, zb]), labels.repeat(2))
    same = torch.arange(len(za)) % 2 == 0                                      # pairs_flags: half true pairs
    partner = torch.where(same, torch.arange(len(za)), torch.roll(torch.arange(len(za)), 1))
    return (za, zb[partner], same)


def loss_table(*, batch: int = 512, dim: int = 32, seed: int = 0) -> list[dict]:
    """One row per registered loss: value on matched and on shuffled pairs, and fwd+bwd time."""
    torch.manual_seed(seed)
    za, zb, labels = digit_views(batch=batch, dim=dim, seed=seed)
    perm = torch.randperm(batch, generator=torch.Generator().manual_seed(seed + 1))
    rows = []
    for name, spec in sorted(LOSSES.items()):
        fn = create_loss(name)
        matched = _inputs(spec.inputs, za, zb, labels)
        shuffled = _inputs(spec.inputs, za, zb[perm], labels[perm])
        leaves = [x.detach().requires_grad_() if x.is_floating_point() else x for x in matched]
        fn(*leaves).backward()                                                 # warm-up: first calls pay one-time costs
        start = time.perf_counter()
        value = fn(*leaves)
        value.backward()
        elapsed = time.perf_counter() - start
        with torch.no_grad():
            rows.append({"loss": name, "paper": spec.paper, "matched": float(value),
                         "shuffled": float(fn(*shuffled)), "ms": 1e3 * elapsed})
    return rows


def run(*, batch: int = 512, dim: int = 32, seed: int = 0) -> int:
    from .losses import alignment, uniformity

    print(f"contrastlab loss demo: {batch} handwritten digits (scikit-learn), two augmented views each, "
          f"PCA embeddings of size {dim}\n")
    rows = loss_table(batch=batch, dim=dim, seed=seed)
    head = f"| {'loss':<18} | {'paper':<40} | {'matched':>8} | {'shuffled':>8} | {'gap':>7} | {'fwd+bwd':>8} |"
    print(head)
    print("|" + "|".join("-" * (len(c)) for c in head.split("|")[1:-1]) + "|")
    for r in rows:
        print(f"| {r['loss']:<18} | {r['paper']:<40} | {r['matched']:8.4f} | {r['shuffled']:8.4f} | "
              f"{r['shuffled'] - r['matched']:7.4f} | {r['ms']:6.1f}ms |")
    za, zb, _ = digit_views(batch=batch, dim=dim, seed=seed)
    print(f"\nalignment (lower = views closer): {float(alignment(za, zb)):.4f}    "
          f"uniformity (lower = more spread): {float(uniformity(torch.cat([za, zb]))):.4f}")
    wins = sum(r["matched"] < r["shuffled"] for r in rows)
    print(f"{wins}/{len(rows)} losses are lower on matched pairs than on shuffled ones: they see the structure.")
    return 0 if wins == len(rows) else 1
