"""Independent reference tests: every loss against a float64 re-implementation written directly from
the published formula (explicit loops, full matrices), plus hand-computable closed forms and
cross-checks that are facts from the literature. No library code computes an expected value."""

import math

import pytest
import torch

import contrastlab.losses.clip as clip_mod
import contrastlab.losses.lse as lse_mod
from contrastlab.losses import (LearnableTemperature, alignment, clip_loss, debiased_info_nce, info_nce, logistic,
                                margin_contrastive, n_pair, nt_xent, supcon, tiled_lse, triplet, uniformity)

F64 = torch.float64
SEEDS = [0, 1, 2]
TEMPS = [0.05, 0.1, 0.5, 1.0]


# ----------------------------------------------------------------------------- helpers / references
def rand(seed, *shape, scale=1.0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=g, dtype=F64) * scale


def close(got, expected, tol=1e-10):
    expected = torch.as_tensor(expected, dtype=F64)
    assert got.dtype == F64, got.dtype
    torch.testing.assert_close(got, expected, rtol=tol, atol=tol)


def grads_match(lib, ref, *xs, tol=1e-10):
    """d lib / d xs == d ref / d xs (each closure maps the same inputs to a scalar)."""
    xa = [x.detach().clone().requires_grad_() for x in xs]
    xb = [x.detach().clone().requires_grad_() for x in xs]
    ga = torch.autograd.grad(lib(*xa), xa)
    gb = torch.autograd.grad(ref(*xb), xb)
    for u, v in zip(ga, gb):
        torch.testing.assert_close(u, v, rtol=tol, atol=tol)


def cos(a, b):
    return (a @ b) / (a.norm() * b.norm())


def onehots(n, d):
    return torch.eye(d, dtype=F64)[:n]


def neg_list(p, negatives, i):
    if negatives is None:
        return [p[j] for j in range(len(p)) if j != i]
    return list(negatives) if negatives.dim() == 2 else list(negatives[i])


def neg_mass(q_i, negs, t, beta):
    """sum_k exp(s_k/t), or Robinson et al.'s K * sum_k w_k exp(s_k/t) with w_k ∝ exp(beta s_k/t), mean(w)=1."""
    s = [cos(q_i, n) for n in negs]
    if beta == 0:
        return sum(torch.exp(x / t) for x in s)
    return len(s) * sum(torch.exp((1 + beta) * x / t) for x in s) / sum(torch.exp(beta * x / t) for x in s)


def info_nce_ref(q, p, negatives=None, t=0.1, beta=0.0, decoupled=False):
    out = []
    for i in range(len(q)):
        pos = torch.exp(cos(q[i], p[i]) / t)
        neg = neg_mass(q[i], neg_list(p, negatives, i), t, beta)
        out.append(-torch.log(pos / (neg if decoupled else pos + neg)))
    return torch.stack(out)


def debiased_ref(q, p, negatives=None, t=0.1, tau_plus=0.1, beta=0.0):
    out, clamped = [], []
    for i in range(len(q)):
        negs = neg_list(p, negatives, i)
        k = len(negs)
        pos = torch.exp(cos(q[i], p[i]) / t)
        raw = (neg_mass(q[i], negs, t, beta) - tau_plus * k * pos) / (1 - tau_plus)
        floor = torch.tensor(k * math.exp(-1 / t), dtype=F64)
        clamped.append(bool(raw < floor))
        out.append(-torch.log(pos / (pos + torch.maximum(raw, floor))))
    return torch.stack(out), clamped


def nt_xent_ref(a, b, t, decoupled=False):
    z, n = torch.cat([a, b]), 2 * len(a)
    total = 0.0
    for k in range(n):
        pos = (k + len(a)) % n
        others = [j for j in range(n) if j != k and not (decoupled and j == pos)]
        den = sum(torch.exp(cos(z[k], z[j]) / t) for j in others)
        total = total - torch.log(torch.exp(cos(z[k], z[pos]) / t) / den)
    return total / n


def supcon_ref(views, labels, t):
    b, v, d = views.shape
    z = views.reshape(b * v, d)
    lab = (torch.arange(b) if labels is None else labels).repeat_interleave(v)
    terms = []
    for i in range(b * v):
        pos = [j for j in range(b * v) if j != i and lab[j] == lab[i]]
        if not pos:
            continue
        den = sum(torch.exp(cos(z[i], z[a]) / t) for a in range(b * v) if a != i)
        terms.append(-sum(torch.log(torch.exp(cos(z[i], z[j]) / t) / den) for j in pos) / len(pos))
    return torch.stack(terms).mean() if terms else torch.zeros((), dtype=F64)


def dist_ref(a, b, kind):
    if kind == "cosine":
        return float(1 - cos(a, b))
    if kind == "euclidean":
        return float((a - b).norm())
    return float(((a - b) ** 2).sum())


def triplet_ref(x, labels, margin, mining, distance):
    n = len(x)
    d = [[dist_ref(x[i], x[j], distance) for j in range(n)] for i in range(n)]
    pos = {a: [p for p in range(n) if p != a and labels[p] == labels[a]] for a in range(n)}
    neg = {a: [m for m in range(n) if labels[m] != labels[a]] for a in range(n)}
    terms = []
    if mining == "batch_hard":
        for a in range(n):
            if pos[a] and neg[a]:
                hard_p, hard_n = max(d[a][p] for p in pos[a]), min(d[a][m] for m in neg[a])
                terms.append(max(hard_p - hard_n + margin, 0.0))
        return sum(terms) / len(terms) if terms else 0.0
    if mining == "batch_all":
        hinge = [max(d[a][p] - d[a][m] + margin, 0.0) for a in range(n) for p in pos[a] for m in neg[a]]
        active = [h for h in hinge if h > 0]
        return sum(active) / len(active) if active else 0.0
    for a in range(n):  # semi_hard
        for p in pos[a]:
            if not neg[a]:
                continue
            farther = [d[a][m] for m in neg[a] if d[a][m] > d[a][p]]
            dn = min(farther) if farther else max(d[a][m] for m in neg[a])
            terms.append(max(d[a][p] - dn + margin, 0.0))
    return sum(terms) / len(terms) if terms else 0.0


def n_pair_ref(f, fp, l2_reg):
    b = len(f)
    total = sum(torch.log(1 + sum(torch.exp(f[i] @ fp[j] - f[i] @ fp[i]) for j in range(b) if j != i))
                for i in range(b))
    reg = sum(f[i] @ f[i] + fp[i] @ fp[i] for i in range(b)) / b
    return total / b + l2_reg * reg


def margin_ref(a, b, is_pos, margin):
    terms = []
    for i in range(len(a)):
        d = (a[i] - b[i]).norm()
        terms.append(0.5 * d ** 2 if is_pos[i] else 0.5 * torch.clamp(margin - d, min=0) ** 2)
    return torch.stack(terms).mean()


def logistic_ref(a, b, t, bias):
    n = len(a)
    total = 0.0
    for i in range(n):
        for j in range(n):
            y = 1.0 if i == j else -1.0
            total = total - torch.log(torch.sigmoid(y * (cos(a[i], b[j]) / t + bias)))
    return total / n


def clip_ref(a, b, s):
    n = len(a)
    logit = [[s * cos(a[i], b[j]) for j in range(n)] for i in range(n)]
    rows = sum(-torch.log(torch.exp(logit[i][i]) / sum(torch.exp(logit[i][j]) for j in range(n))) for i in range(n))
    cols = sum(-torch.log(torch.exp(logit[j][j]) / sum(torch.exp(logit[i][j]) for i in range(n))) for j in range(n))
    return (rows / n + cols / n) / 2


def unit(z):
    return torch.stack([r / r.norm() for r in z])


@pytest.fixture(params=["default_tiles", "tiny_tiles"])
def tiles(request, monkeypatch):
    """Run the softmax losses also with 3x3 tiles and no tile cache (several tiles, recompute path)."""
    if request.param == "tiny_tiles":
        monkeypatch.setattr(lse_mod, "TILE", 3)
        monkeypatch.setattr(clip_mod, "TILE", 3)
        monkeypatch.setattr(lse_mod, "CACHE_BYTES", 0)


# ----------------------------------------------------------------------------- InfoNCE
@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("t", TEMPS)
@pytest.mark.parametrize("neg_mode", ["in_batch", "shared", "per_query"])
@pytest.mark.parametrize("beta,decoupled", [(0.0, False), (0.0, True), (0.5, False), (2.0, False), (1.0, True)])
def test_info_nce_matches_reference(seed, t, neg_mode, beta, decoupled, tiles):
    b, d, m = 7, 5, 4
    q, p = rand(seed, b, d), rand(seed + 100, b, d)
    negs = {"in_batch": None, "shared": rand(seed + 200, m, d), "per_query": rand(seed + 300, b, m, d)}[neg_mode]
    kw = dict(temperature=t, hard_negative_beta=beta, decoupled=decoupled)
    ref = info_nce_ref(q, p, negs, t, beta, decoupled)
    close(info_nce(q, p, negs, reduction="none", **kw), ref)
    close(info_nce(q, p, negs, reduction="sum", **kw), ref.sum())
    close(info_nce(q, p, negs, **kw), ref.mean())
    w = rand(seed + 400, b)
    args = (q, p) if negs is None else (q, p, negs)
    grads_match(lambda *x: (w * info_nce(*x[:2], x[2] if len(x) > 2 else None, reduction="none", **kw)).sum(),
                lambda *x: (w * info_nce_ref(*x[:2], x[2] if len(x) > 2 else None, t, beta, decoupled)).sum(),
                *args)


@pytest.mark.parametrize("t", TEMPS)
def test_info_nce_analytic_orthonormal(t):
    b = 5  # q_i = p_i = e_i: s+ = 1, all negatives s = 0
    e = onehots(b, 6)
    close(info_nce(e, 3 * e, temperature=t), math.log(1 + (b - 1) * math.exp(-1 / t)))
    close(info_nce(e, e, temperature=t, decoupled=True), -1 / t + math.log(b - 1))
    # equal negative similarities: the beta weights are uniform, so beta changes nothing
    close(info_nce(e, e, temperature=t, hard_negative_beta=3.0), math.log(1 + (b - 1) * math.exp(-1 / t)))


def test_info_nce_options_off_reduce_to_plain():
    q, p, n = rand(0, 6, 4), rand(1, 6, 4), rand(2, 6, 3, 4)
    for negs in (None, n):
        plain = info_nce(q, p, negs, temperature=0.2, reduction="none")
        close(info_nce(q, p, negs, temperature=0.2, reduction="none", hard_negative_beta=0.0, decoupled=False), plain)
        close(info_nce(q, p, negs, temperature=0.2, reduction="none", hard_negative_beta=1e-9), plain, tol=1e-7)


# ----------------------------------------------------------------------------- Debiased InfoNCE
@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("t,tau_plus", [(0.5, 0.1), (0.1, 0.1), (1.0, 0.3), (0.2, 0.9), (0.5, 0.99)])
@pytest.mark.parametrize("neg_mode", ["in_batch", "shared", "per_query"])
@pytest.mark.parametrize("beta", [0.0, 1.0])
def test_debiased_matches_reference(seed, t, tau_plus, neg_mode, beta, tiles):
    b, d, m = 6, 4, 5
    q, p = rand(seed, b, d), rand(seed + 100, b, d)
    negs = {"in_batch": None, "shared": rand(seed + 200, m, d), "per_query": rand(seed + 300, b, m, d)}[neg_mode]
    kw = dict(temperature=t, tau_plus=tau_plus, hard_negative_beta=beta)
    ref, _ = debiased_ref(q, p, negs, t, tau_plus, beta)
    close(debiased_info_nce(q, p, negs, reduction="none", **kw), ref)
    close(debiased_info_nce(q, p, negs, **kw), ref.mean())
    args = (q, p) if negs is None else (q, p, negs)
    grads_match(lambda *x: debiased_info_nce(*x[:2], x[2] if len(x) > 2 else None, reduction="sum", **kw),
                lambda *x: debiased_ref(*x[:2], x[2] if len(x) > 2 else None, t, tau_plus, beta)[0].sum(), *args)


def test_debiased_clamp_active_and_inactive():
    q = rand(5, 6, 4)
    p = q + 0.01 * rand(6, 6, 4)  # positives nearly identical to queries
    for tau_plus, want_clamped in [(0.9, True), (0.01, False)]:
        ref, clamped = debiased_ref(q, p, None, 0.5, tau_plus)
        assert all(c == want_clamped for c in clamped)
        close(debiased_info_nce(q, p, temperature=0.5, tau_plus=tau_plus, reduction="none"), ref)


@pytest.mark.parametrize("t", [0.1, 1.0])
def test_debiased_analytic_orthonormal(t):
    b, k, tau = 4, 3, 0.1  # s+ = 1, s- = 0: NegSum = K
    e = onehots(b, 5)
    ng = max((k - tau * k * math.exp(1 / t)) / (1 - tau), k * math.exp(-1 / t))
    close(debiased_info_nce(e, e, temperature=t, tau_plus=tau), math.log(1 + ng * math.exp(-1 / t)))
    if t == 0.1:  # clamp active: Ng = K e^{-1/t}
        close(debiased_info_nce(e, e, temperature=t, tau_plus=tau), math.log(1 + k * math.exp(-2 / t)))


def test_debiased_tau_zero_is_info_nce():
    q, p, n = rand(7, 6, 4), rand(8, 6, 4), rand(9, 5, 4)  # s >= -1 so NegSum >= K e^{-1/t}: no clamp
    for negs in (None, n):
        close(debiased_info_nce(q, p, negs, temperature=0.3, tau_plus=0.0, reduction="none"),
              info_nce_ref(q, p, negs, 0.3))


# ----------------------------------------------------------------------------- NT-Xent / SupCon
@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("t", TEMPS)
@pytest.mark.parametrize("decoupled", [False, True])
def test_nt_xent_matches_reference(seed, t, decoupled, tiles):
    a, b = rand(seed, 5, 4), rand(seed + 50, 5, 4)
    close(nt_xent(a, b, temperature=t, decoupled=decoupled), nt_xent_ref(a, b, t, decoupled))
    grads_match(lambda x, y: nt_xent(x, y, temperature=t, decoupled=decoupled),
                lambda x, y: nt_xent_ref(x, y, t, decoupled), a, b)


@pytest.mark.parametrize("t", TEMPS)
def test_nt_xent_analytic_orthonormal(t):
    b = 4  # z_a = z_b = e_i: positive s = 1, the 2B-2 negatives s = 0
    e = onehots(b, 4)
    close(nt_xent(e, 2 * e, temperature=t), math.log(1 + (2 * b - 2) * math.exp(-1 / t)))
    close(nt_xent(e, e, temperature=t, decoupled=True), -1 / t + math.log(2 * b - 2))


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("t", TEMPS)
@pytest.mark.parametrize("labels", [None, [0, 1, 0, 2, 1, 3], [0, 0, 0, 0, 0, 0]])
@pytest.mark.parametrize("v", [1, 2, 3])
def test_supcon_matches_reference(seed, t, labels, v, tiles):
    views = rand(seed, 6, v, 4)
    lab = None if labels is None else torch.tensor(labels)
    ref = supcon_ref(views, lab, t)
    got = supcon(views, lab, temperature=t)
    assert torch.isfinite(got)
    close(got, ref)
    if labels is None and v == 1:
        assert got.item() == 0.0  # no anchor has a positive
    else:
        grads_match(lambda x: supcon(x, lab, temperature=t), lambda x: supcon_ref(x, lab, t), views)


def test_supcon_analytic():
    z = torch.ones(3, 2, 4, dtype=F64)  # 6 identical views, one class: every ratio is 1/(N-1)
    close(supcon(z, torch.zeros(3, dtype=torch.long), temperature=0.1), math.log(5))
    close(supcon(rand(0, 5, 1, 3), torch.arange(5), temperature=0.1), 0.0)  # no positives anywhere


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("t", TEMPS)
def test_nt_xent_equals_supcon_two_views(seed, t):
    a, b = rand(seed, 6, 5), rand(seed + 9, 6, 5)
    close(nt_xent(a, b, temperature=t), supcon(torch.stack([a, b], 1), temperature=t))


# ----------------------------------------------------------------------------- Triplet
TRIPLET_LABELS = [[0, 0, 1, 1, 2, 2, 0, 1, 3], [0, 1, 0, 1, 0, 1, 2, 2, 2], [5, 5, 5, 5, 7, 7, 7, 8, 9]]


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("labels", TRIPLET_LABELS)
@pytest.mark.parametrize("mining", ["batch_hard", "batch_all", "semi_hard"])
@pytest.mark.parametrize("distance", ["cosine", "euclidean", "squared_euclidean"])
@pytest.mark.parametrize("margin", [0.05, 0.2, 1.0])
def test_triplet_matches_reference(seed, labels, mining, distance, margin):
    x, lab = rand(seed, len(labels), 3), torch.tensor(labels)
    got = triplet(x, lab, margin=margin, mining=mining, distance=distance)
    close(got, triplet_ref(x, lab.tolist(), margin, mining, distance))


@pytest.mark.parametrize("mining", ["batch_hard", "batch_all", "semi_hard"])
def test_triplet_no_valid_triplet_is_zero(mining):
    x = rand(3, 5, 3)
    close(triplet(x, torch.zeros(5, dtype=torch.long), mining=mining), 0.0)  # no negatives
    close(triplet(x, torch.arange(5), mining=mining), 0.0)  # no positives


def test_triplet_analytic_three_points():
    # a=(0,0), b=(1,0) same class; c=(0,3) other class. margin 2.5, euclidean.
    x, lab = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 3.0]], dtype=F64), torch.tensor([0, 0, 1])
    h0, h1 = 1 - 3 + 2.5, 1 - math.sqrt(10) + 2.5  # anchors 0 and 1 (anchor 2 has no positive)
    for mining in ["batch_hard", "batch_all", "semi_hard"]:  # one negative: all three agree here
        close(triplet(x, lab, margin=2.5, mining=mining, distance="euclidean"), (h0 + h1) / 2)
    close(triplet(x, lab, margin=0.5, mining="batch_all", distance="squared_euclidean"), 0.0)  # 1 - 9 + .5 < 0


# ----------------------------------------------------------------------------- N-pair / margin contrastive
@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("l2_reg", [0.0, 0.02])
def test_n_pair_matches_reference(seed, l2_reg):
    f, fp = rand(seed, 7, 4, scale=0.7), rand(seed + 1, 7, 4, scale=0.7)
    close(n_pair(f, fp, l2_reg=l2_reg), n_pair_ref(f, fp, l2_reg))
    grads_match(lambda x, y: n_pair(x, y, l2_reg=l2_reg), lambda x, y: n_pair_ref(x, y, l2_reg), f, fp)


def test_n_pair_analytic():
    e = onehots(4, 4)  # f_i . f+_j = delta_ij, no normalisation: scaling changes the value
    close(n_pair(e, e), math.log(1 + 3 * math.exp(-1)))
    close(n_pair(2 * e, e, l2_reg=0.1), math.log(1 + 3 * math.exp(-2)) + 0.1 * (4 + 1))


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("margin", [0.5, 1.0, 3.0])
def test_margin_contrastive_matches_reference(seed, margin):
    a, b = rand(seed, 10, 3), rand(seed + 1, 10, 3)
    is_pos = torch.tensor([1, 0, 0, 1, 0, 1, 0, 0, 1, 0], dtype=torch.bool)
    close(margin_contrastive(a, b, is_pos, margin=margin), margin_ref(a, b, is_pos, margin))
    grads_match(lambda x, y: margin_contrastive(x, y, is_pos, margin=margin),
                lambda x, y: margin_ref(x, y, is_pos, margin), a, b)


def test_margin_contrastive_analytic():
    a = torch.zeros(3, 2, dtype=F64)
    b = torch.tensor([[3.0, 4.0], [0.6, 0.8], [3.0, 4.0]], dtype=F64)  # distances 5, 1, 5
    got = margin_contrastive(a, b, torch.tensor([True, False, False]), margin=2.0)
    close(got, (0.5 * 25 + 0.5 * 1.0 + 0.0) / 3)


# ----------------------------------------------------------------------------- SigLIP / CLIP / temperature
@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("t,bias", [(0.1, -10.0), (1.0, 0.0), (0.5, 2.0)])
@pytest.mark.parametrize("as_tensor", [False, True])
def test_logistic_matches_reference(seed, t, bias, as_tensor, tiles):
    a, b = rand(seed, 6, 4), rand(seed + 1, 6, 4)
    close(logistic(a, b, temperature=t, bias=bias), logistic_ref(a, b, t, bias))
    if as_tensor:
        tt, bb = torch.tensor(t, dtype=F64), torch.tensor(bias, dtype=F64)
        grads_match(lambda x, y, s, c: logistic(x, y, temperature=s, bias=c), logistic_ref, a, b, tt, bb)
    else:
        grads_match(lambda x, y: logistic(x, y, temperature=t, bias=bias),
                    lambda x, y: logistic_ref(x, y, t, bias), a, b)


def test_logistic_analytic():
    e, t, bias = onehots(4, 4), 0.1, -10.0  # diagonal logit 1/t + bias, off-diagonal bias
    sp = torch.nn.functional.softplus
    want = sp(torch.tensor(-(1 / t + bias), dtype=F64)) + 3 * sp(torch.tensor(bias, dtype=F64))
    close(logistic(e, e, temperature=t, bias=bias), want)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("scale", [1.0, 10.0, 1 / 0.07, 100.0])
def test_clip_matches_reference(seed, scale, tiles):
    a, b = rand(seed, 7, 5), rand(seed + 1, 7, 5)
    close(clip_loss(a, b, logit_scale=scale), clip_ref(a, b, scale))
    close(clip_loss(a, b, logit_scale=torch.tensor(scale, dtype=F64)), clip_ref(a, b, scale))
    grads_match(lambda x, y, s: clip_loss(x, y, logit_scale=s), clip_ref, a, b, torch.tensor(scale, dtype=F64))
    # the row half is InfoNCE with in-batch negatives and t = 1/scale
    close(clip_loss(a, b, logit_scale=scale),
          (info_nce(a, b, temperature=1 / scale) + info_nce(b, a, temperature=1 / scale)) / 2)


def test_clip_analytic():
    e, s, b = onehots(5, 5), 3.0, 5  # logits: s on the diagonal, 0 elsewhere
    close(clip_loss(e, e, logit_scale=s), math.log(math.exp(s) + b - 1) - s)


def test_learnable_temperature():
    lt = LearnableTemperature()
    scale = lt()
    assert abs(scale.item() - 1 / 0.07) < 1e-4
    assert lt.no_weight_decay() == {"log_scale"}
    (g,) = torch.autograd.grad(scale, lt.log_scale)  # d exp(x) / dx = exp(x)
    assert abs(g.item() - scale.item()) < 1e-4
    with torch.no_grad():
        lt.log_scale.fill_(math.log(1e4))
    assert abs(lt().item() - 100.0) < 1e-3
    lt2 = LearnableTemperature(initial_temperature=0.5, max_scale=10.0)
    assert abs(lt2().item() - 2.0) < 1e-6


# ----------------------------------------------------------------------------- alignment / uniformity
@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("alpha", [1, 2, 3])
def test_alignment_matches_reference(seed, alpha):
    a, b = rand(seed, 8, 4), rand(seed + 1, 8, 4)
    ref = lambda x, y: torch.stack([(u - v).norm() ** alpha for u, v in zip(unit(x), unit(y))]).mean()
    close(alignment(a, b, alpha=alpha), ref(a, b))
    grads_match(lambda x, y: alignment(x, y, alpha=alpha), ref, a, b)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("t", [0.5, 2.0, 5.0])
def test_uniformity_matches_reference(seed, t):
    z = rand(seed, 9, 3)

    def ref(x):
        u = unit(x)
        terms = [torch.exp(-t * ((u[i] - u[j]) ** 2).sum()) for i in range(len(u)) for j in range(len(u)) if i != j]
        return torch.log(sum(terms) / len(terms))
    close(uniformity(z, t=t), ref(z))
    grads_match(lambda x: uniformity(x, t=t), ref, z)


def test_alignment_uniformity_analytic():
    e = onehots(4, 4)
    close(alignment(e, 5 * e), 0.0)
    close(alignment(e, e.roll(1, 0), alpha=2), 2.0)  # ||e_i - e_j||^2 = 2
    close(alignment(e, e.roll(1, 0), alpha=1), math.sqrt(2))
    close(uniformity(3 * e, t=2), -2 * 2.0)  # all pairwise squared distances are 2
    close(uniformity(torch.tensor([[1.0, 0.0], [-2.0, 0.0]], dtype=F64), t=1.5), -4 * 1.5)  # antipodal


# ----------------------------------------------------------------------------- tiled log-sum-exp
def lse_ref(x, y, scale, exclude_diag, ids):
    s = scale * x @ (x if y is None else y).T
    if ids is not None:
        r, c = (ids, ids) if torch.is_tensor(ids) else ids
        s = s.masked_fill(r[:, None] == c[None, :], float("-inf"))
    elif exclude_diag:
        s = s.masked_fill(torch.eye(len(x), dtype=torch.bool), float("-inf"))
    return s.logsumexp(1), s.logsumexp(0)


LSE_MODES = ["sym", "sym_diag", "sym_ids", "cross", "cross_diag", "cross_ids", "cross_rect", "cross_rect_ids"]


@pytest.mark.parametrize("mode", LSE_MODES)
@pytest.mark.parametrize("scale", [1.0, 7.5, 300.0])
@pytest.mark.parametrize("tile,cache", [(None, None), (3, None), (3, 0), (None, 0), (4, 0)])
@pytest.mark.parametrize("seed", [0, 1])
def test_tiled_lse_matches_logsumexp(mode, scale, tile, cache, seed, monkeypatch):
    if tile is not None:
        monkeypatch.setattr(lse_mod, "TILE", tile)
    if cache is not None:
        monkeypatch.setattr(lse_mod, "CACHE_BYTES", cache)
    n, m = 8, (11 if "rect" in mode else 8)
    x, y = rand(seed, n, 5, scale=0.5), (None if mode.startswith("sym") else rand(seed + 1, m, 5, scale=0.5))
    diag = mode.endswith("diag")
    ids = None
    if mode == "sym_ids":
        ids = torch.arange(n) % 3
    elif mode.endswith("ids"):
        ids = (torch.arange(n) % 3, torch.arange(m) % 4)
    cols = y is not None
    ref_r, ref_c = lse_ref(x, y, scale, diag, ids)
    out = tiled_lse(x, y, scale=scale, exclude_diag=diag, ids=ids, columns=cols)
    got_r, got_c = out if cols else (out, None)
    close(got_r, ref_r)
    if cols:
        close(got_c, ref_c)
    wr, wc = rand(seed + 7, n), rand(seed + 8, m)

    def loss(fn, *xs):
        r, c = fn(*xs)
        return (wr * r).sum() + ((wc * c).sum() if cols else 0.0)
    lib = lambda *xs: tiled_lse(xs[0], xs[1] if cols else None, scale=scale, exclude_diag=diag, ids=ids,
                                columns=cols)
    lib2 = (lambda *xs: lib(*xs)) if cols else (lambda *xs: (lib(*xs), None))
    grads_match(lambda *xs: loss(lib2, *xs), lambda *xs: loss(
        lambda *z: lse_ref(z[0], z[1] if cols else None, scale, diag, ids), *xs), *((x, y) if cols else (x,)))


def test_tiled_lse_underflow_rows_are_exact():
    # normalised rows, scale 300: rows whose best neighbour has cos << 1 underflow the constant shift
    x = unit(rand(4, 6, 3))
    for y in (None, unit(rand(5, 7, 3))):
        got = tiled_lse(x, y, scale=300.0, exclude_diag=y is None)
        close(got, lse_ref(x, y, 300.0, y is None, None)[0], tol=1e-9)


def test_tiled_lse_analytic():
    z = torch.zeros(5, 3, dtype=F64)  # all logits 0: log(count)
    close(tiled_lse(z), torch.full((5,), math.log(5), dtype=F64))
    close(tiled_lse(z, exclude_diag=True), torch.full((5,), math.log(4), dtype=F64))
    e, s = onehots(4, 4), 2.5  # orthonormal: e^s once, e^0 three times
    close(tiled_lse(e, e, scale=s), torch.full((4,), math.log(math.exp(s) + 3), dtype=F64))
    r = tiled_lse(e, ids=torch.zeros(4, dtype=torch.long))  # nothing allowed: -inf
    assert torch.isneginf(r).all()
