"""Property-based tests (hypothesis): invariances every correct implementation must have."""

import math

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from contrastlab import losses as L

SETTINGS = settings(max_examples=25, deadline=None)


@st.composite
def batches(draw, min_b=2, max_b=12):
    b = draw(st.integers(min_b, max_b))
    d = draw(st.integers(2, 6))
    seed = draw(st.integers(0, 2**31 - 1))
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(b, d, generator=g, dtype=torch.float64)
    p = torch.randn(b, d, generator=g, dtype=torch.float64)
    labels = torch.randint(0, draw(st.integers(1, 4)), (b,), generator=g)
    perm = torch.randperm(b, generator=g)
    return a, p, labels, perm


temperatures = st.floats(0.02, 2.0)


@SETTINGS
@given(batches(), temperatures)
def test_nt_xent_and_supcon_permutation_invariant(batch, t):
    a, p, labels, perm = batch
    torch.testing.assert_close(L.nt_xent(a[perm], p[perm], temperature=t), L.nt_xent(a, p, temperature=t))
    v = torch.stack([a, p], 1)
    torch.testing.assert_close(L.supcon(v[perm], labels[perm], temperature=t), L.supcon(v, labels, temperature=t))


@SETTINGS
@given(batches(), temperatures)
def test_swapping_views_leaves_symmetric_losses_unchanged(batch, t):
    a, p, _, _ = batch
    torch.testing.assert_close(L.nt_xent(p, a, temperature=t), L.nt_xent(a, p, temperature=t))
    torch.testing.assert_close(L.clip_loss(p, a, logit_scale=1 / t), L.clip_loss(a, p, logit_scale=1 / t))


@SETTINGS
@given(batches(), temperatures, st.floats(0.1, 50.0))
def test_cosine_losses_ignore_positive_rescaling(batch, t, c):
    a, p, labels, _ = batch
    torch.testing.assert_close(L.info_nce(a * c, p, temperature=t), L.info_nce(a, p, temperature=t))
    torch.testing.assert_close(L.supcon(torch.stack([a, p * c], 1), labels, temperature=t),
                               L.supcon(torch.stack([a, p], 1), labels, temperature=t))
    torch.testing.assert_close(L.triplet(a * c, labels), L.triplet(a, labels))


@SETTINGS
@given(batches(), temperatures)
def test_supcon_depends_on_labels_only_through_the_partition(batch, t):
    a, p, labels, _ = batch
    v = torch.stack([a, p], 1)
    relabelled = labels * 7 - 100                                              # same partition, other names
    torch.testing.assert_close(L.supcon(v, relabelled, temperature=t), L.supcon(v, labels, temperature=t))


@SETTINGS
@given(batches(), temperatures)
def test_info_nce_is_bounded_by_log_of_candidates(batch, t):
    """0 < InfoNCE and, for a perfectly aligned positive that beats every negative, < log(B)."""
    a, p, _, _ = batch
    b = a.shape[0]
    per = L.info_nce(a, p, temperature=t, reduction="none")
    assert (per > 0).all()
    aligned = L.info_nce(a, a, temperature=t, reduction="none")
    assert (aligned <= math.log(b) + 1e-9).all()


@SETTINGS
@given(batches(min_b=3), st.sampled_from(["batch_hard", "batch_all", "semi_hard"]),
       st.sampled_from(["cosine", "euclidean", "squared_euclidean"]))
def test_triplet_nonnegative_and_zero_with_huge_separation(batch, mining, distance):
    a, _, labels, perm = batch
    assert L.triplet(a, labels, mining=mining, distance=distance) >= 0
    torch.testing.assert_close(L.triplet(a[perm], labels[perm], mining=mining, distance=distance),
                               L.triplet(a, labels, mining=mining, distance=distance))
    # classes placed on far-apart orthogonal axes with tiny spread: no triplet violates the margin
    centres = torch.eye(8, dtype=torch.float64)[labels] * 100.0
    spread = torch.cat([centres, a[:, :1] * 1e-3], 1)
    assert L.triplet(spread, labels, mining=mining, distance=distance, margin=0.2) == 0


@SETTINGS
@given(batches())
def test_alignment_and_uniformity_ranges(batch):
    a, p, _, _ = batch
    assert 0 <= float(L.alignment(a, p)) <= 4 + 1e-9                          # |u - v|^2 <= 4 on the sphere
    u = float(L.uniformity(a, t=2.0))
    assert -8 - 1e-9 <= u <= 1e-9                                              # exp(-2 |u-v|^2) in [e^-8, 1]
