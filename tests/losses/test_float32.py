"""Float32 at low temperature: every softmax-family loss against an exact float64 reference.

The exact reference writes each cross-entropy as ``log(1 + sum_k exp(l_k - l_pos))`` (log1p, float64): no
cancellation, so it stays exact on solved batches, where even a float64 ``log_softmax`` loses the gradient's
``-p_k dl_pos`` terms. The yardstick is the plain float32 ``log_softmax`` form of the same loss (full logits
matrix): ours must be within 10x of its error, value and gradient, and never negative where the loss cannot be.
"""

import pytest
import torch
import torch.nn.functional as F

import contrastlab.losses.clip as clip_mod
import contrastlab.losses.lse as lse_mod
from contrastlab.losses import (LOSSES, clip_loss, debiased_info_nce, info_nce, logistic, multiple_negatives_ranking,
                                n_pair, nt_xent, supcon)
from contrastlab.losses.rows import clip_loss_rows, info_nce_rows, nt_xent_rows, supcon_rows

F32, F64 = torch.float32, torch.float64
EPS32 = torch.finfo(F32).eps
TEMPS = [0.005, 0.01, 0.05]
CASES = ["solved", "random", "duplicated"]
B, D = 6, 8
NOT_SOFTMAX = {"triplet", "margin_contrastive"}   # distance hinges: no log-sum-exp, nothing to cancel
MULTI_POSITIVE = {"supcon_labels", "supcon_mixed", "supcon_rows"}   # anchors with 2 or more positives


def unit(z):
    return F.normalize(z, dim=-1)


# ----------------------------------------------------------------------------- references (full matrices)
def ce_exact(logits, pos, allowed):
    """Per row: log(1 + sum_{allowed k} exp(l_k - l_pos)), ``allowed`` excluding the positive (float64)."""
    l_pos = logits.gather(1, pos[:, None])
    return torch.log1p(torch.where(allowed, torch.exp(logits - l_pos), 0.0).sum(1))


def ce_plain(logits, pos, allowed):
    """Per row: the textbook -log_softmax[pos] over the allowed entries and the positive."""
    keep = allowed.clone()
    keep[torch.arange(len(pos)), pos] = True
    return -torch.log_softmax(logits.masked_fill(~keep, float("-inf")), 1).gather(1, pos[:, None])[:, 0]


def ce(exact):
    return ce_exact if exact else ce_plain


def diag_off(n, m=None):
    return ~torch.eye(n, m if m is not None else n, dtype=torch.bool)


def ref_info_nce(q, p, t, exact, beta=0.0, decoupled=False):
    l = unit(q) @ unit(p).T / t                                                # (B, B)
    n, pos = len(q), torch.arange(len(q))
    if beta == 0 and not decoupled:
        return ce(exact)(l, pos, diag_off(n)).mean()
    neg = l.masked_fill(~diag_off(n), float("-inf"))
    if beta:
        log_neg = torch.log(torch.tensor(n - 1.0, dtype=l.dtype)) + ((1 + beta) * neg).logsumexp(1) \
            - (beta * neg).logsumexp(1)
    else:
        log_neg = neg.logsumexp(1)
    l_pos = l.diagonal()
    if decoupled:
        return (log_neg - l_pos).mean()
    per = F.softplus(log_neg - l_pos) if exact else torch.logaddexp(l_pos, log_neg) - l_pos
    return per.mean()


def shared_negatives(q, p):
    """(B, D) negatives for every query: sums of two other examples' vectors (duplicates where they are)."""
    return p.roll(1, 0) + q.roll(2, 0)


def ref_info_nce_shared(q, p, t, exact):
    keys = torch.cat([p, shared_negatives(q, p)])
    l = unit(q) @ unit(keys).T / t                                             # (B, 2B)
    allowed = torch.ones_like(l, dtype=torch.bool)
    allowed[:, : len(q)] = False
    return ce(exact)(l, torch.arange(len(q)), allowed).mean()


def ref_debiased(q, p, t, exact, tau_plus=0.1):
    l = unit(q) @ unit(p).T / t
    n, k = len(q), len(q) - 1
    l_pos = l.diagonal()
    if exact:                                                                  # log1p(N_g e^{-l+})
        r = torch.where(diag_off(n), torch.exp(l - l_pos[:, None]), 0.0).sum(1)
        ng = torch.maximum((r - tau_plus * k) / (1 - tau_plus), k * torch.exp(-1 / t - l_pos))
        return torch.log1p(ng).mean()
    m = l.max(1).values.detach()[:, None]                                      # the usual max shift
    neg = torch.where(diag_off(n), torch.exp(l - m), 0.0).sum(1)
    pos = torch.exp(l_pos - m[:, 0])
    ng = torch.maximum((neg - tau_plus * k * pos) / (1 - tau_plus), k * torch.exp(-1 / t - m[:, 0]))
    return (torch.log(pos + ng) + m[:, 0] - l_pos).mean()


def ref_nt_xent(a, b, t, exact, decoupled=False):
    z = unit(torch.cat([a, b]))
    n = len(z)
    l = z @ z.T / t
    pos = (torch.arange(n) + len(a)) % n
    allowed = diag_off(n) & (torch.arange(n)[None, :] != pos[:, None])
    if decoupled:
        return (l.masked_fill(~allowed, float("-inf")).logsumexp(1) - l.gather(1, pos[:, None])[:, 0]).mean()
    return ce(exact)(l, pos, allowed).mean()


def ref_supcon(views, labels, t, exact):
    b, v, d = views.shape
    z = unit(views).reshape(b * v, d)
    n = len(z)
    lab = (torch.arange(b) if labels is None else labels).repeat_interleave(v)
    l = z @ z.T / t
    is_pos = (lab[:, None] == lab[None, :]) & diag_off(n)
    if exact:   # term (i, p) = log(1 + sum_{a not in {i, p}} exp(l_ia - l_ip))
        diff = l[:, None, :] - l[:, :, None]                                  # (i, p, a)
        eye = torch.eye(n, dtype=torch.bool)
        keep = ~(eye[:, None, :] | eye[None, :, :])                           # a != i and a != p
        term = torch.log1p(torch.where(keep, torch.exp(diff), 0.0).sum(2))    # (i, p)
    else:
        term = -torch.log_softmax(l.masked_fill(~diag_off(n), float("-inf")), 1)
    n_pos = is_pos.sum(1)
    per = torch.where(is_pos, term, 0.0).sum(1) / n_pos.clamp(min=1)
    return per[n_pos > 0].mean()


def ref_clip(a, b, t, exact):
    l = unit(a) @ unit(b).T / t
    pos, allowed = torch.arange(len(a)), diag_off(len(a))
    return (ce(exact)(l, pos, allowed).mean() + ce(exact)(l.T, pos, allowed).mean()) / 2


def ref_mnrl(q, d, t, exact, ids=None, negatives=False, symmetric=False):
    keys = torch.cat([d, shared_negatives(q, d)]) if negatives else d
    l = unit(q) @ unit(keys).T / t
    n = len(q)
    allowed = diag_off(n, len(keys))
    if ids is not None:   # duplicates of the positive document are not negatives
        allowed[:, :n] &= ids[:, None] != ids[None, :]
    per = ce(exact)(l, torch.arange(n), allowed)
    if symmetric:
        lt = unit(d) @ unit(q).T / t
        per = 0.5 * (per + ce(exact)(lt, torch.arange(n), allowed[:, :n]))
    return per.mean()


def ref_n_pair(a, p, t, exact):   # raw inner products: unit rows scaled by 1/sqrt(t) give logits cos / t
    l = (unit(a) / t ** 0.5) @ (unit(p) / t ** 0.5).T
    return ce(exact)(l, torch.arange(len(a)), diag_off(len(a))).mean()


def ref_logistic(a, b, t, exact, bias=-10.0):
    l = unit(a) @ unit(b).T / t + bias
    sign = 2.0 * torch.eye(len(a), dtype=l.dtype) - 1.0
    return F.softplus(-sign * l).sum() / len(a)


# ----------------------------------------------------------------------------- ours
HALVES = [(0, 3), (3, B)]


def _mnrl_ids(b):
    ids = torch.arange(b)
    ids[1] = ids[0]
    return ids


# name -> (registry name, ours(a, b, labels, t), reference(a, b, labels, t, exact), cross-entropy: never negative)
VARIANTS = {
    "info_nce": ("info_nce", lambda a, b, y, t: info_nce(a, b, temperature=t),
                 lambda a, b, y, t, e: ref_info_nce(a, b, t, e), True),
    "info_nce_hard": ("info_nce", lambda a, b, y, t: info_nce(a, b, temperature=t, hard_negative_beta=0.5),
                      lambda a, b, y, t, e: ref_info_nce(a, b, t, e, beta=0.5), True),
    "info_nce_decoupled": ("info_nce", lambda a, b, y, t: info_nce(a, b, temperature=t, decoupled=True),
                           lambda a, b, y, t, e: ref_info_nce(a, b, t, e, decoupled=True), False),
    "info_nce_shared_negatives": ("info_nce", lambda a, b, y, t: info_nce(a, b, shared_negatives(a, b), temperature=t),
                                  lambda a, b, y, t, e: ref_info_nce_shared(a, b, t, e), True),
    "debiased_info_nce": ("debiased_info_nce", lambda a, b, y, t: debiased_info_nce(a, b, temperature=t),
                          lambda a, b, y, t, e: ref_debiased(a, b, t, e), True),
    "nt_xent": ("nt_xent", lambda a, b, y, t: nt_xent(a, b, temperature=t),
                lambda a, b, y, t, e: ref_nt_xent(a, b, t, e), True),
    "nt_xent_decoupled": ("nt_xent", lambda a, b, y, t: nt_xent(a, b, temperature=t, decoupled=True),
                          lambda a, b, y, t, e: ref_nt_xent(a, b, t, e, decoupled=True), False),
    "supcon_views": ("supcon", lambda a, b, y, t: supcon(torch.stack([a, b], 1), temperature=t),
                     lambda a, b, y, t, e: ref_supcon(torch.stack([a, b], 1), None, t, e), True),
    "supcon_labels": ("supcon", lambda a, b, y, t: supcon(torch.stack([a, b], 1), y, temperature=t),
                      lambda a, b, y, t, e: ref_supcon(torch.stack([a, b], 1), y, t, e), True),
    "supcon_mixed": ("supcon", lambda a, b, y, t: supcon(torch.stack([a, b], 1)[:, :1], y, temperature=t),
                     lambda a, b, y, t, e: ref_supcon(torch.stack([a, b], 1)[:, :1], y, t, e), True),
    "clip": ("clip", lambda a, b, y, t: clip_loss(a, b, logit_scale=1 / t),
             lambda a, b, y, t, e: ref_clip(a, b, t, e), True),
    "clip_learnable_scale": ("clip", lambda a, b, y, t: clip_loss(a, b, logit_scale=torch.tensor(1 / t, dtype=a.dtype)),
                             lambda a, b, y, t, e: ref_clip(a, b, t, e), True),
    "logistic": ("logistic", lambda a, b, y, t: logistic(a, b, temperature=t),
                 lambda a, b, y, t, e: ref_logistic(a, b, t, e), True),
    "multiple_negatives_ranking": (
        "multiple_negatives_ranking", lambda a, b, y, t: multiple_negatives_ranking(a, b, temperature=t),
        lambda a, b, y, t, e: ref_mnrl(a, b, t, e), True),
    "mnrl_negatives_symmetric": (
        "multiple_negatives_ranking",
        lambda a, b, y, t: multiple_negatives_ranking(a, b, shared_negatives(a, b), temperature=t, symmetric=True),
        lambda a, b, y, t, e: ref_mnrl(a, b, t, e, negatives=True, symmetric=True), True),
    "mnrl_document_ids": (
        "multiple_negatives_ranking",
        lambda a, b, y, t: multiple_negatives_ranking(a, b, shared_negatives(a, b), temperature=t,
                                                      document_ids=_mnrl_ids(len(a))),
        lambda a, b, y, t, e: ref_mnrl(a, b, t, e, ids=_mnrl_ids(len(a)), negatives=True), True),
    "n_pair": ("n_pair", lambda a, b, y, t: n_pair(unit(a) / t ** 0.5, unit(b) / t ** 0.5),
               lambda a, b, y, t, e: ref_n_pair(a, b, t, e), True),
    # the rows ("local loss") forms, summed over two halves of the batch
    "nt_xent_rows": ("nt_xent", lambda a, b, y, t: sum(nt_xent_rows(a[i:j], b[i:j], a, b, offset=i, temperature=t)
                                                       for i, j in HALVES),
                     lambda a, b, y, t, e: ref_nt_xent(a, b, t, e), True),
    "info_nce_rows": ("info_nce", lambda a, b, y, t: sum(info_nce_rows(a[i:j], b[i:j], b, offset=i, temperature=t)
                                                         for i, j in HALVES),
                      lambda a, b, y, t, e: ref_info_nce(a, b, t, e), True),
    "clip_loss_rows": ("clip", lambda a, b, y, t: sum(clip_loss_rows(a[i:j], b[i:j], a, b, logit_scale=1 / t, offset=i)
                                                      for i, j in HALVES),
                       lambda a, b, y, t, e: ref_clip(a, b, t, e), True),
    "supcon_rows": ("supcon", lambda a, b, y, t: sum(
        supcon_rows(torch.stack([a, b], 1)[i:j], y[i:j], torch.stack([a, b], 1), y, offset=i, temperature=t)
        for i, j in HALVES), lambda a, b, y, t, e: ref_supcon(torch.stack([a, b], 1), y, t, e), True),
}


def batch(case, seed=0):
    """(a, b, labels) in float64. solved: each class of the labels near one of orthonormal directions;
    duplicated: random, with an example repeated, a positive equal to its anchor, an anchor equal to another
    pair's positive, and one vector in two classes."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.tensor([0, 0, 1, 1, 1, 2])                                # classes of 2, 3 and 1 examples
    if case == "solved":
        basis = torch.linalg.qr(torch.randn(D, D, generator=g, dtype=F64))[0]    # random orthonormal rows
        a = basis[labels] + 1e-3 * torch.randn(B, D, generator=g, dtype=F64)
        b = basis[labels] + 1e-3 * torch.randn(B, D, generator=g, dtype=F64)
        return a, b, labels
    a, b = torch.randn(2, B, D, generator=g, dtype=F64)
    if case == "duplicated":
        a[1], b[1] = a[0], b[0]
        b[2] = a[2]
        a[4] = b[3]
        a[5] = a[0]
    return a, b, labels


def solved_pairs(seed=0):
    """A solved batch for the pair losses: every example its own orthonormal direction."""
    g = torch.Generator().manual_seed(seed)
    basis = torch.linalg.qr(torch.randn(D, D, generator=g, dtype=F64))[0][:B]
    return (basis + 1e-3 * torch.randn(B, D, generator=g, dtype=F64),
            basis + 1e-3 * torch.randn(B, D, generator=g, dtype=F64))


def value_and_grad(fn, a, b, dtype):
    a, b = a.to(dtype).requires_grad_(), b.to(dtype).requires_grad_()
    out = fn(a, b)
    ga, gb = torch.autograd.grad(out, (a, b))
    return out.detach().double(), torch.cat([ga, gb]).double()


@pytest.fixture(params=["default-tiles", "3x3-tiles-recomputed"])
def tiling(request, monkeypatch):
    if request.param != "default-tiles":
        monkeypatch.setattr(lse_mod, "TILE", 3)
        monkeypatch.setattr(clip_mod, "TILE", 3)
        monkeypatch.setattr(lse_mod, "CACHE_BYTES", 0)


def test_every_softmax_loss_in_the_registry_is_covered():
    covered = {spec for spec, *_ in VARIANTS.values()}
    assert covered == set(LOSSES) - NOT_SOFTMAX, "classify a new loss: add it to VARIANTS or NOT_SOFTMAX"


@pytest.mark.parametrize("t", TEMPS)
@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_float32_matches_float64_as_well_as_plain_log_softmax(tiling, name, case, t):
    _, ours, ref, never_negative = VARIANTS[name]
    a, b, y = batch(case)
    if case == "solved" and name not in MULTI_POSITIVE:
        a, b = solved_pairs()
    v32, g32 = value_and_grad(lambda u, w: ours(u, w, y, t), a, b, F32)
    v64, g64 = value_and_grad(lambda u, w: ref(u, w, y, t, True), a, b, F64)
    vpl, gpl = value_and_grad(lambda u, w: ref(u, w, y, t, False), a, b, F32)
    if never_negative:
        assert v32 >= 0, f"a cross-entropy read {float(v32)!r}"
    # Floors, for where the plain form is exact by luck (two equal logits from one product): one float32
    # rounding of a logit of size 1/t for the value; 1e-4 of the largest entry for the gradient. SupCon with
    # several positives per anchor on collapsed classes is held to it too: its exact gradient is the difference
    # of the positives' softmax weights and 1/|P|, which ours (the kernel's ``targets``) takes on the logits.
    v_err, v_plain = float((v32 - v64).abs()), float((vpl - v64).abs())
    assert v_err <= 10 * v_plain + EPS32 / t, (v_err, v_plain, float(v64))
    g_err, g_plain, g_max = float((g32 - g64).abs().max()), float((gpl - g64).abs().max()), float(g64.abs().max())
    floor = 1e-4 * g_max + 1e-37
    assert g_err <= 10 * g_plain + floor, (g_err, g_plain, g_max)


@pytest.mark.parametrize("t", TEMPS)
@pytest.mark.parametrize("case", CASES)
def test_per_item_cross_entropies_are_never_negative(case, t):
    a, b, _ = batch(case) if case != "solved" else (*solved_pairs(), None)
    a, b = a.float(), b.float()
    assert (info_nce(a, b, temperature=t, reduction="none") >= 0).all()
    assert (info_nce(a, b, shared_negatives(a, b), temperature=t, reduction="none") >= 0).all()
    assert (debiased_info_nce(a, b, temperature=t, reduction="none") >= 0).all()
    assert (multiple_negatives_ranking(a, b, temperature=t, reduction="none") >= 0).all()
    assert (multiple_negatives_ranking(a, b, temperature=t, symmetric=True, reduction="none") >= 0).all()


# the batch from the issue: already solved at temperature 0.01
REPRO_A = [[-0.6905213, -0.07873065, 0.13791826], [0.013304937, 0.138624, -0.12031955]]
REPRO_B = [[-1.5564139, -1.0591151, -0.8082713], [-0.050885953, 0.37568197, -0.13041225]]


def test_issue_repro_solved_batch_has_the_exact_tiny_gradient():
    a, b = torch.tensor(REPRO_A, dtype=F64), torch.tensor(REPRO_B, dtype=F64)
    v32, g32 = value_and_grad(lambda u, w: nt_xent(u, w, temperature=0.01), a, b, F32)
    v64, g64 = value_and_grad(lambda u, w: ref_nt_xent(u, w, 0.01, True), a, b, F64)
    _, gpl = value_and_grad(lambda u, w: ref_nt_xent(u, w, 0.01, False), a, b, F32)
    g_max = float(g64.abs().max())
    assert 1e-33 < g_max < 1e-31                                             # the exact value, about 3.7e-32
    assert float((g32 - g64).abs().max()) <= 1e-3 * g_max                     # relative precision, not 2.8e-4
    assert float((g32 - g64).abs().max()) <= 10 * float((gpl - g64).abs().max())
    assert 0 <= float(v32) <= 1e-30


def test_issue_repro_cross_entropies_are_not_negative():
    a, b = torch.tensor(REPRO_A), torch.tensor(REPRO_B)
    for value in (info_nce(a, b, temperature=0.01), multiple_negatives_ranking(a, b, temperature=0.01),
                  supcon(torch.stack([a, b], 1), temperature=0.01), nt_xent(a, b, temperature=0.01),
                  clip_loss(a, b, logit_scale=100.0), n_pair(a * 10, b * 10)):
        assert float(value) >= 0.0, float(value)
