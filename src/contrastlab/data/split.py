"""Deterministic index selection: stratified hold-out splits, label remapping, the probe subset.

Stratification allocates ``round(N * fraction)`` picks over the classes in proportion to their
sizes (largest remainder: every class gets floor or ceil of ``n_c * fraction``), then picks at
random inside each class with a seeded generator, so the same labels and seed give the same split
on every machine.

Example::

    >>> import numpy as np
    >>> from contrastlab.data.split import stratified_holdout
    >>> train, test = stratified_holdout(np.array([0] * 6 + [1] * 12), fraction=1 / 6, seed=0)
    >>> len(train), len(test), np.bincount(np.array([0] * 6 + [1] * 12)[test]).tolist()
    (15, 3, [1, 2])
"""

from __future__ import annotations

import numbers
import warnings

import numpy as np
import torch

from .images import ImageData

__all__ = ["stratified_holdout", "group_holdout", "remap_labels", "holdout_image_data", "probe_subset"]

TEST_FRACTION = 1 / 6


def _allocate(counts: np.ndarray, total: int, caps: np.ndarray) -> np.ndarray:
    """Split ``total`` picks over classes proportionally to ``counts`` (largest remainder, capped)."""
    quota = counts * (total / max(int(counts.sum()), 1))
    take = np.minimum(np.floor(quota).astype(np.int64), caps)
    order = np.argsort(-(quota - np.floor(quota)), kind="stable")     # largest remainder first
    for c in order:
        if take.sum() >= total:
            break
        if take[c] < caps[c]:
            take[c] += 1
    return take


def _stratified_pick(labels: np.ndarray, total: int, seed: int, *, keep_one: bool) -> np.ndarray:
    values, inverse, counts = np.unique(labels, return_inverse=True, return_counts=True)
    caps = counts - 1 if keep_one else counts
    take = _allocate(counts, total, caps)
    rng = np.random.default_rng(seed)
    picked = [rng.permutation(np.flatnonzero(inverse == c))[:k] for c, k in enumerate(take)]
    return np.sort(np.concatenate(picked)) if picked else np.zeros(0, dtype=np.int64)


def stratified_holdout(labels: np.ndarray, *, fraction: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(train_idx, test_idx), sorted; ``round(N * fraction)`` test rows, at least one train row per class."""
    labels = np.asarray(labels)
    test = _stratified_pick(labels, round(len(labels) * fraction), seed, keep_one=True)
    return np.setdiff1d(np.arange(len(labels)), test), test


def group_holdout(groups: np.ndarray, *, fraction: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(train_idx, test_idx) holding out whole groups (no group on both sides), about ``fraction`` of rows."""
    groups = np.asarray(groups)
    ids, sizes = np.unique(groups, return_counts=True)
    order = np.random.default_rng(seed).permutation(len(ids))
    want, held, chosen = round(len(groups) * fraction), 0, []
    for g in order[:-1]:                                                # always keep one group for training
        if held >= want:
            break
        chosen.append(ids[g])
        held += sizes[g]
    is_test = np.isin(groups, np.asarray(chosen, dtype=groups.dtype))
    return np.flatnonzero(~is_test), np.flatnonzero(is_test)


def remap_labels(values: np.ndarray, name: str = "y") -> tuple[np.ndarray, tuple[str, ...]]:
    """Any integer (or string) labels -> (codes 0..K-1 in sorted order of the values, the values as names)."""
    uniq, codes = np.unique(np.asarray(values), return_inverse=True)
    return codes.reshape(-1).astype(np.int64), tuple(str(v) for v in uniq.tolist())


def holdout_image_data(name: str, x, y: np.ndarray | None, classes: tuple[str, ...] | None, *,
                       group: np.ndarray | None = None, notes: tuple[str, ...] = (),
                       fraction: float = TEST_FRACTION, seed: int = 0) -> ImageData:
    """Build :class:`ImageData` from (N, C, H, W) uint8 (an array, or an :class:`~contrastlab.data.stream.ImageSource`
    whose splits stay lazy) and codes, holding out a test split when labelled.

    Labelled data gets a stratified hold-out (whole groups when ``group`` is given, so no group
    leaks across the split); unlabelled data gets no test split. The choice goes into ``notes``.
    Labels that are all distinct (every class a single image) cannot be split by class: no test split is held
    out, with a warning (a test image's class would never be seen in training).
    """
    from .stream import is_source

    def t(a):
        return a if is_source(a) else torch.from_numpy(a)

    def part(a, rows):                     # a source: a lazy subset; an array: a contiguous copy
        return a.subset(rows) if is_source(a) else np.ascontiguousarray(a[rows])
    if y is None:
        return ImageData(name, t(x), None, None, None, None, None if group is None else t(group), notes)
    if group is not None:
        train, test = group_holdout(group, fraction=fraction, seed=seed)
        how = f"held out {len(test)} of {len(y)} images in whole groups (~{fraction:.1%}, seed {seed})"
    else:
        train, test = stratified_holdout(y, fraction=fraction, seed=seed)
        how = f"held out {len(test)} of {len(y)} images ({fraction:.1%}, stratified, seed {seed})"
    if len(test) == 0:
        note = f"no test split in file and too few images to hold one out ({len(y)})"
        k = len(np.unique(y))
        if group is None and k == len(y) and round(len(y) * fraction) >= 1:     # enough images, but no class of 2
            note = (f"every label of `y` is distinct ({len(y)} images, {k} classes): a stratified test split needs "
                    f"classes of at least 2 images, so none is held out and the label-based evaluation (kNN, "
                    f"linear probe) is skipped; give `x_test`/`y_test`, or if `y` holds ids rather than classes, "
                    f"leave it out (or pass them as `group`)")
            warnings.warn(f"{name}: {note}", stacklevel=3)
        return ImageData(name, t(x), t(y), None, None, classes, None if group is None else t(group),
                         notes + (note,))
    return ImageData(name, t(part(x, train)), t(y[train]), t(part(x, test)), t(y[test]), classes, None if group is None else t(group[train]),
                     notes + (f"no test split in file: {how}",))


def probe_subset(data: ImageData, *, size: int = 1000, seed: int = 0) -> torch.Tensor:
    """Fixed, sorted indices of up to ``size`` images to snapshot embeddings of, for the dashboard.

    Indices point into ``data.x_test`` (or ``data.x`` when there is no test split), stratified
    over the labels when labelled; the same data, size and seed always give the same indices.

    Example::

        >>> from contrastlab.data import load_images, probe_subset
        >>> data = load_images("digits")
        >>> idx = probe_subset(data, size=100)
        >>> idx.shape, data.y_test[idx].bincount().tolist()
        (torch.Size([100]), [10, 10, 10, 10, 10, 10, 10, 10, 10, 10])
    """
    if not isinstance(size, numbers.Integral) or isinstance(size, bool) or size < 1:
        raise ValueError(f"`size` must be a positive int, got {size!r}")
    if not isinstance(seed, numbers.Integral) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"`seed` must be a non-negative int, got {seed!r}")
    x, y = (data.x, data.y) if data.x_test is None else (data.x_test, data.y_test)
    n = int(x.shape[0])
    if size >= n:
        return torch.arange(n)
    if y is None:
        picked = np.sort(np.random.default_rng(seed).permutation(n)[:size])
    else:
        picked = _stratified_pick(y.cpu().numpy(), int(size), int(seed), keep_one=False)
    return torch.from_numpy(picked.astype(np.int64))
