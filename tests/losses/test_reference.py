"""Independent reference tests: each loss against a float64 re-implementation written from the published
formula (explicit loops, full similarity matrices), closed-form cases and cross-checks from the literature.
No library code computes an expected value."""

import math

import pytest
import torch

import contrastlab.losses.clip as clip_mod
import contrastlab.losses.lse as lse_mod
from contrastlab.losses import (LearnableTemperature, alignment, clip_loss, debiased_info_nce, info_nce, logistic,
                                margin_contrastive, n_pair, nt_xent, supcon, tiled_lse, triplet, uniformity)

F64 = torch.float64
SEEDS = [0, 1]
TEMPS = [0.05, 0.2, 1.0]


# ----------------------------------------------------------------------------- helpers
def rand(seed, *shape, scale=1.0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=g, dtype=F64) * scale


def onehots(n, d):
    return torch.eye(d, dtype=F64)[:n]


def unit(z):
    return z / z.norm(dim=-1, keepdim=True)


def close(got, expected, tol=1e-10):
    assert got.dtype == F64, got.dtype
    torch.testing.assert_close(got, torch.as_tensor(expected, dtype=F64), rtol=tol, atol=tol)


def with_tilings(fn):
    """fn() with the default tiles, then with 3x3 tiles and no tile cache (many tiles, recompute path)."""
    out = [fn()]
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(lse_mod, "TILE", 3)
        mp.setattr(clip_mod, "TILE", 3)
        mp.setattr(lse_mod, "CACHE_BYTES", 0)
        out.append(fn())
    return out


def check_value(lib, expected, tol=1e-10):
    for got in with_tilings(lib):
        close(got, expected, tol)


def grads_match(lib, ref, *xs, tol=1e-10):
    """d lib(xs) / d xs == d ref(xs) / d xs (both scalar), under both tilings."""
    def grads(fn):
        leaves = [x.detach().clone().requires_grad_() for x in xs]
        return torch.autograd.grad(fn(*leaves), leaves)
    want = grads(ref)
    for got in with_tilings(lambda: grads(lib)):
        for u, v in zip(got, want):
            torch.testing.assert_close(u, v, rtol=tol, atol=tol)


# ----------------------------------------------------------------------------- references
def neg_sims(qs, ps, negatives, i):
    """Cosine similarities of query i to its negatives (qs, ps already unit rows)."""
    if negatives is None:
        return torch.stack([qs[i] @ ps[j] for j in range(len(ps)) if j != i])
    return unit(negatives if negatives.dim() == 2 else negatives[i]) @ qs[i]


def neg_mass(s, t, beta):
    """sum_k exp(s_k/t); beta > 0 (Robinson et al.): K * sum_k exp((1+beta) s_k/t) / sum_k exp(beta s_k/t)."""
    if beta == 0:
        return torch.exp(s / t).sum()
    return len(s) * torch.exp((1 + beta) * s / t).sum() / torch.exp(beta * s / t).sum()


def info_nce_ref(q, p, negatives=None, t=0.1, beta=0.0, decoupled=False):
    qs, ps, out = unit(q), unit(p), []
    for i in range(len(q)):
        pos = torch.exp(qs[i] @ ps[i] / t)
        neg = neg_mass(neg_sims(qs, ps, negatives, i), t, beta)
        out.append(-torch.log(pos / (neg if decoupled else pos + neg)))
    return torch.stack(out)


def debiased_ref(q, p, negatives=None, t=0.1, tau_plus=0.1, beta=0.0):
    """Chuang et al. 2020; also returns, per query, whether the floor K e^{-1/t} is active."""
    qs, ps, out, clamped = unit(q), unit(p), [], []
    for i in range(len(q)):
        s = neg_sims(qs, ps, negatives, i)
        k, pos = len(s), torch.exp(qs[i] @ ps[i] / t)
        raw = (neg_mass(s, t, beta) - tau_plus * k * pos) / (1 - tau_plus)
        floor = torch.tensor(k * math.exp(-1 / t), dtype=F64)
        clamped.append(bool(raw < floor))
        out.append(-torch.log(pos / (pos + torch.maximum(raw, floor))))
    return torch.stack(out), clamped


def nt_xent_ref(a, b, t, decoupled=False):
    n = 2 * len(a)
    s = unit(torch.cat([a, b])) @ unit(torch.cat([a, b])).T
    total = 0.0
    for k in range(n):
        pos = (k + len(a)) % n
        den = sum(torch.exp(s[k, j] / t) for j in range(n) if j != k and not (decoupled and j == pos))
        total = total - torch.log(torch.exp(s[k, pos] / t) / den)
    return total / n


def supcon_ref(views, labels, t):
    b, v, d = views.shape
    n, z = b * v, unit(views.reshape(b * v, d))
    s, lab = z @ z.T, (torch.arange(b) if labels is None else labels).repeat_interleave(v)
    terms = []
    for i in range(n):
        pos = [j for j in range(n) if j != i and lab[j] == lab[i]]
        if pos:
            den = sum(torch.exp(s[i, a] / t) for a in range(n) if a != i)
            terms.append(-sum(torch.log(torch.exp(s[i, j] / t) / den) for j in pos) / len(pos))
    return torch.stack(terms).mean() if terms else torch.zeros((), dtype=F64)


def dist_ref(a, b, kind):
    if kind == "cosine":
        return float(1 - a @ b / (a.norm() * b.norm()))
    return float((a - b).norm()) if kind == "euclidean" else float(((a - b) ** 2).sum())


def triplet_ref(x, labels, margin, mining, distance):
    n = len(x)
    d = [[dist_ref(x[i], x[j], distance) for j in range(n)] for i in range(n)]
    pos = {a: [p for p in range(n) if p != a and labels[p] == labels[a]] for a in range(n)}
    neg = {a: [m for m in range(n) if labels[m] != labels[a]] for a in range(n)}
    terms = []
    if mining == "batch_hard":  # Hermans et al. 2017
        for a in range(n):
            if pos[a] and neg[a]:
                terms.append(max(max(d[a][p] for p in pos[a]) - min(d[a][m] for m in neg[a]) + margin, 0.0))
        return sum(terms) / len(terms) if terms else 0.0
    if mining == "batch_all":
        hinge = [max(d[a][p] - d[a][m] + margin, 0.0) for a in range(n) for p in pos[a] for m in neg[a]]
        active = [h for h in hinge if h > 0]
        return sum(active) / len(active) if active else 0.0
    for a in range(n):  # semi_hard (FaceNet): nearest negative farther than the positive, else the farthest
        for p in pos[a] if neg[a] else []:
            farther = [d[a][m] for m in neg[a] if d[a][m] > d[a][p]]
            dn = min(farther) if farther else max(d[a][m] for m in neg[a])
            terms.append(max(d[a][p] - dn + margin, 0.0))
    return sum(terms) / len(terms) if terms else 0.0


def n_pair_ref(f, fp, l2_reg):
    b = len(f)
    total = sum(torch.log(1 + sum(torch.exp(f[i] @ fp[j] - f[i] @ fp[i]) for j in range(b) if j != i))
                for i in range(b))
    return total / b + l2_reg * sum(f[i] @ f[i] + fp[i] @ fp[i] for i in range(b)) / b


def margin_ref(a, b, is_pos, margin):
    terms = []
    for i in range(len(a)):
        d = (a[i] - b[i]).norm()
        terms.append(0.5 * d ** 2 if is_pos[i] else 0.5 * torch.clamp(margin - d, min=0) ** 2)
    return torch.stack(terms).mean()


def logistic_ref(a, b, t, bias):
    s, n, total = unit(a) @ unit(b).T, len(a), 0.0
    for i in range(n):
        for j in range(n):
            y = 1.0 if i == j else -1.0
            total = total - torch.log(torch.sigmoid(y * (s[i, j] / t + bias)))
    return total / n


def clip_ref(a, b, scale):
    logit, n = scale * unit(a) @ unit(b).T, len(a)
    rows = sum(-torch.log(torch.exp(logit[i, i]) / sum(torch.exp(logit[i, j]) for j in range(n))) for i in range(n))
    cols = sum(-torch.log(torch.exp(logit[j, j]) / sum(torch.exp(logit[i, j]) for i in range(n))) for j in range(n))
    return (rows / n + cols / n) / 2


def alignment_ref(x, y, alpha):
    return torch.stack([(u - v).norm() ** alpha for u, v in zip(unit(x), unit(y))]).mean()


def uniformity_ref(x, t):
    u, n = unit(x), len(x)
    return torch.log(sum(torch.exp(-t * ((u[i] - u[j]) ** 2).sum()) for i in range(n) for j in range(n) if i != j)
                     / (n * (n - 1)))


def lse_ref(x, y, scale, exclude_diag, ids):
    s = scale * x @ (x if y is None else y).T
    if ids is not None:
        r, c = (ids, ids) if torch.is_tensor(ids) else ids
        s = s.masked_fill(r[:, None] == c[None, :], float("-inf"))
    elif exclude_diag:
        s = s.masked_fill(torch.eye(len(x), dtype=torch.bool), float("-inf"))
    return s.logsumexp(1), s.logsumexp(0)


NEG_MODES = ["in_batch", "shared", "per_query"]


def make_negs(mode, seed, b, m, d):
    return {"in_batch": None, "shared": rand(seed + 200, m, d), "per_query": rand(seed + 300, b, m, d)}[mode]


# ----------------------------------------------------------------------------- InfoNCE
@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("t", TEMPS)
@pytest.mark.parametrize("neg_mode", NEG_MODES)
@pytest.mark.parametrize("beta,decoupled", [(0.0, False), (0.0, True), (0.5, False), (2.0, False), (1.0, True)])
def test_info_nce_matches_reference(seed, t, neg_mode, beta, decoupled):
    b, d, m = 7, 5, 4
    q, p, negs = rand(seed, b, d), rand(seed + 100, b, d), make_negs(neg_mode, seed, b, m, d)
    kw = dict(temperature=t, hard_negative_beta=beta, decoupled=decoupled)
    ref = info_nce_ref(q, p, negs, t, beta, decoupled)
    check_value(lambda: info_nce(q, p, negs, reduction="none", **kw), ref)
    check_value(lambda: info_nce(q, p, negs, reduction="sum", **kw), ref.sum())
    check_value(lambda: info_nce(q, p, negs, **kw), ref.mean())
    w, args = rand(seed + 400, b), (q, p) + (() if negs is None else (negs,))
    grads_match(lambda q, p, *n: (w * info_nce(q, p, (n[0] if n else None), reduction="none", **kw)).sum(),
                lambda q, p, *n: (w * info_nce_ref(q, p, (n[0] if n else None), t, beta, decoupled)).sum(), *args)


@pytest.mark.parametrize("t", TEMPS)
def test_info_nce_analytic_orthonormal(t):
    b, e = 5, onehots(5, 6)  # q_i = p_i = e_i: s+ = 1 and every negative s = 0
    close(info_nce(e, 3 * e, temperature=t), math.log(1 + (b - 1) * math.exp(-1 / t)))
    close(info_nce(e, e, temperature=t, decoupled=True), -1 / t + math.log(b - 1))
    # equal negative similarities: uniform importance weights, beta changes nothing
    close(info_nce(e, e, temperature=t, hard_negative_beta=3.0), math.log(1 + (b - 1) * math.exp(-1 / t)))


def test_info_nce_analytic_explicit_negatives():
    t, e = 0.2, onehots(5, 6)  # shared negatives -e_1, -e_2: s = -1 for q_1 / q_2, 0 otherwise
    want = [math.log(1 + math.exp(-2 / t) + math.exp(-1 / t))] * 2 + [math.log(1 + 2 * math.exp(-1 / t))] * 3
    close(info_nce(e, e, -onehots(2, 6), temperature=t, reduction="none"), want)
    per_query = torch.stack([-e, e.roll(1, 0)], 1)  # (B, 2, D): s = -1 and s = 0
    close(info_nce(e, e, per_query, temperature=t), math.log(1 + math.exp(-2 / t) + math.exp(-1 / t)))


@pytest.mark.parametrize("neg_mode", NEG_MODES)
def test_info_nce_options_off_reduce_to_plain(neg_mode):
    q, p, negs = rand(0, 6, 4), rand(1, 6, 4), make_negs(neg_mode, 2, 6, 3, 4)
    plain = info_nce(q, p, negs, temperature=0.2, reduction="none")
    close(plain, info_nce_ref(q, p, negs, 0.2))
    close(info_nce(q, p, negs, temperature=0.2, reduction="none", hard_negative_beta=0.0, decoupled=False), plain)
    close(info_nce(q, p, negs, temperature=0.2, reduction="none", hard_negative_beta=1e-9), plain, tol=1e-7)


# ----------------------------------------------------------------------------- Debiased InfoNCE
@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("t,tau_plus", [(0.5, 0.1), (0.1, 0.1), (1.0, 0.3), (0.2, 0.9), (0.5, 0.99)])
@pytest.mark.parametrize("neg_mode", NEG_MODES)
@pytest.mark.parametrize("beta", [0.0, 1.0])
def test_debiased_matches_reference(seed, t, tau_plus, neg_mode, beta):
    b, d, m = 6, 4, 5
    q, p, negs = rand(seed, b, d), rand(seed + 100, b, d), make_negs(neg_mode, seed, b, m, d)
    kw = dict(temperature=t, tau_plus=tau_plus, hard_negative_beta=beta)
    ref, _ = debiased_ref(q, p, negs, t, tau_plus, beta)
    check_value(lambda: debiased_info_nce(q, p, negs, reduction="none", **kw), ref)
    check_value(lambda: debiased_info_nce(q, p, negs, **kw), ref.mean())
    grads_match(lambda q, p, *n: debiased_info_nce(q, p, (n[0] if n else None), reduction="sum", **kw),
                lambda q, p, *n: debiased_ref(q, p, (n[0] if n else None), t, tau_plus, beta)[0].sum(),
                *((q, p) + (() if negs is None else (negs,))))


@pytest.mark.parametrize("neg_mode", NEG_MODES)
def test_debiased_floor_active_inactive_and_tau_zero(neg_mode):
    q = rand(5, 6, 4)
    p = q + 0.01 * rand(6, 6, 4)  # positives nearly identical to their queries
    negs = make_negs(neg_mode, 7, 6, 5, 4)
    for tau_plus, want_clamped in [(0.9, True), (0.01, False)]:
        ref, clamped = debiased_ref(q, p, negs, 0.5, tau_plus)
        assert all(c == want_clamped for c in clamped)  # the case really exercises (or avoids) the floor
        close(debiased_info_nce(q, p, negs, temperature=0.5, tau_plus=tau_plus, reduction="none"), ref)
    # tau_plus = 0: s >= -1 gives NegSum >= K e^{-1/t}, the floor never binds and this is InfoNCE
    close(debiased_info_nce(q, p, negs, temperature=0.5, tau_plus=0.0, reduction="none"), info_nce_ref(q, p, negs, 0.5))


@pytest.mark.parametrize("t", [0.1, 1.0])
def test_debiased_analytic_orthonormal(t):
    b, k, tau, e = 4, 3, 0.1, onehots(4, 5)  # s+ = 1, s- = 0: NegSum = K
    ng = max((k - tau * k * math.exp(1 / t)) / (1 - tau), k * math.exp(-1 / t))
    close(debiased_info_nce(e, e, temperature=t, tau_plus=tau), math.log(1 + ng * math.exp(-1 / t)))
    if t == 0.1:  # floor active: Ng = K e^{-1/t}
        close(debiased_info_nce(e, e, temperature=t, tau_plus=tau), math.log(1 + k * math.exp(-2 / t)))
    else:  # floor inactive: Ng = (3 - 0.3 e) / 0.9
        close(debiased_info_nce(e, e, temperature=t, tau_plus=tau), math.log(1 + (3 - 0.3 * math.e) / 0.9 / math.e))


def test_debiased_just_above_the_bound():
    # in-batch, B = 2: q = p, cos(q_i, p_j) = s for j != i, chosen so NegSum = tau+ K e^{1/t} (1 + delta):
    # Ng = tau+ K e^{1/t} delta / (1 - tau+) = K e^{1/t} delta (tau+ = 1/2) > K e^{-1/t}: L_i = log1p(K delta)
    t, tau, delta = 0.1, 0.5, 1e-8
    s = 1 + t * math.log(tau * (1 + delta))
    z = torch.tensor([[1.0, 0.0], [s, math.sqrt(1 - s * s)]], dtype=F64)
    ref, clamped = debiased_ref(z, z, None, t, tau)
    assert not any(clamped)
    close(ref, [math.log1p(delta)] * 2, tol=1e-12)
    close(debiased_info_nce(z, z, temperature=t, tau_plus=tau, reduction="none"), ref)


# ----------------------------------------------------------------------------- NT-Xent / SupCon
@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("t", TEMPS)
@pytest.mark.parametrize("decoupled", [False, True])
def test_nt_xent_matches_reference(seed, t, decoupled):
    a, b = rand(seed, 5, 4), rand(seed + 50, 5, 4)
    check_value(lambda: nt_xent(a, b, temperature=t, decoupled=decoupled), nt_xent_ref(a, b, t, decoupled))
    grads_match(lambda x, y: nt_xent(x, y, temperature=t, decoupled=decoupled),
                lambda x, y: nt_xent_ref(x, y, t, decoupled), a, b)
    if not decoupled:  # SupCon without labels on two views is NT-Xent (Khosla et al. 2020)
        close(supcon(torch.stack([a, b], 1), temperature=t), nt_xent(a, b, temperature=t))


@pytest.mark.parametrize("t", TEMPS)
def test_nt_xent_supcon_analytic(t):
    b, e = 4, onehots(4, 4)  # z_a = z_b = e_i: positive s = 1, the 2B-2 negatives s = 0
    close(nt_xent(e, 2 * e, temperature=t), math.log(1 + (2 * b - 2) * math.exp(-1 / t)))
    close(nt_xent(e, e, temperature=t, decoupled=True), -1 / t + math.log(2 * b - 2))
    z = torch.ones(3, 2, 4, dtype=F64)  # SupCon: 6 identical views, one class: every ratio is 1/(N-1)
    close(supcon(z, torch.zeros(3, dtype=torch.long), temperature=t), math.log(5))


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("t", [0.1, 1.0])
@pytest.mark.parametrize("labels,v", [(None, 2), (None, 3), ([0, 1, 0, 2, 1, 3], 1), ([0, 1, 0, 2, 1, 3], 2),
                                      ([0, 1, 0, 2, 1, 3], 3), ([4] * 6, 2), ([0, 1, 2, 3, 4, 5], 1)])
def test_supcon_matches_reference(seed, t, labels, v):
    views, lab = rand(seed, 6, v, 4), None if labels is None else torch.tensor(labels)
    ref = supcon_ref(views, lab, t)
    check_value(lambda: supcon(views, lab, temperature=t), ref)
    if labels == list(range(6)):
        assert supcon(views, lab, temperature=t).item() == 0.0  # no anchor has a positive: exactly 0
    else:
        grads_match(lambda x: supcon(x, lab, temperature=t), lambda x: supcon_ref(x, lab, t), views)


# ----------------------------------------------------------------------------- Triplet
TRIPLET_LABELS = [[0, 0, 1, 1, 2, 2, 0, 1, 3], [0, 1, 0, 1, 0, 1, 2, 2, 2], [5, 5, 5, 5, 7, 7, 7, 8, 9]]


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("labels", TRIPLET_LABELS)
@pytest.mark.parametrize("mining", ["batch_hard", "batch_all", "semi_hard"])
@pytest.mark.parametrize("distance", ["cosine", "euclidean", "squared_euclidean"])
@pytest.mark.parametrize("margin", [0.1, 1.0])
def test_triplet_matches_reference(seed, labels, mining, distance, margin):
    x, lab = rand(seed, len(labels), 3), torch.tensor(labels)
    got = triplet(x, lab, margin=margin, mining=mining, distance=distance)
    close(got, triplet_ref(x, labels, margin, mining, distance))


def test_triplet_analytic_three_points():
    # a=(0,0), b=(1,0) same class; c=(0,3) other class; euclidean, margin 2.5
    x, lab = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 3.0]], dtype=F64), torch.tensor([0, 0, 1])
    h0, h1 = 1 - 3 + 2.5, 1 - math.sqrt(10) + 2.5  # anchors 0 and 1 (anchor 2 has no positive)
    for mining in ["batch_hard", "batch_all", "semi_hard"]:  # a single negative: all three agree
        close(triplet(x, lab, margin=2.5, mining=mining, distance="euclidean"), (h0 + h1) / 2)
        close(triplet(x, torch.zeros(3, dtype=torch.long), mining=mining), 0.0)  # no negatives: no triplet
        close(triplet(x, torch.arange(3), mining=mining), 0.0)  # no positives: no triplet
    close(triplet(x, lab, margin=0.5, mining="batch_all", distance="squared_euclidean"), 0.0)  # 1 - 9 + .5 < 0
    # semi-hard on 1-D points; class 0 = {0, 3}, every other point its own class (no positives)
    x = torch.tensor([[0.0], [3.0], [1.0], [1.4], [2.5], [4.5]], dtype=F64)
    lab = torch.tensor([0, 0, 1, 2, 3, 4])
    # (0,3): d_ap=3, d_an in {1, 1.4, 2.5, 4.5}: nearest farther one is 4.5 -> relu(3 - 4.5 + 2) = 0.5
    # (3,0): d_ap=3, d_an in {2, 1.6, 0.5, 1.5}: none farther, take the largest 2 -> relu(3 - 2 + 2) = 3
    close(triplet(x, lab, margin=2.0, mining="semi_hard", distance="euclidean"), 1.75)
    close(triplet(x, lab, margin=2.0, mining="batch_hard", distance="euclidean"), (3 - 1 + 2 + 3 - 0.5 + 2) / 2)


# ----------------------------------------------------------------------------- N-pair / margin contrastive
@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("l2_reg", [0.0, 0.02])
def test_n_pair_matches_reference(seed, l2_reg):
    f, fp = rand(seed, 7, 4, scale=0.7), rand(seed + 1, 7, 4, scale=0.7)
    close(n_pair(f, fp, l2_reg=l2_reg), n_pair_ref(f, fp, l2_reg))
    grads_match(lambda x, y: n_pair(x, y, l2_reg=l2_reg), lambda x, y: n_pair_ref(x, y, l2_reg), f, fp)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("margin", [0.5, 1.0, 3.0])
def test_margin_contrastive_matches_reference(seed, margin):
    a, b = rand(seed, 10, 3), rand(seed + 1, 10, 3)
    is_pos = torch.tensor([1, 0, 0, 1, 0, 1, 0, 0, 1, 0], dtype=torch.bool)
    close(margin_contrastive(a, b, is_pos, margin=margin), margin_ref(a, b, is_pos, margin))
    grads_match(lambda x, y: margin_contrastive(x, y, is_pos, margin=margin),
                lambda x, y: margin_ref(x, y, is_pos, margin), a, b)


def test_n_pair_margin_contrastive_analytic():
    e = onehots(4, 4)  # f_i . f+_j = delta_ij; raw inner products, so scaling changes the value
    close(n_pair(e, e), math.log(1 + 3 * math.exp(-1)))
    close(n_pair(2 * e, e, l2_reg=0.1), math.log(1 + 3 * math.exp(-2)) + 0.1 * (4 + 1))
    a = torch.zeros(3, 2, dtype=F64)
    b = torch.tensor([[3.0, 4.0], [0.6, 0.8], [3.0, 4.0]], dtype=F64)  # distances 5, 1, 5
    close(margin_contrastive(a, b, torch.tensor([True, False, False]), margin=2.0), (0.5 * 25 + 0.5 * 1.0) / 3)


# ----------------------------------------------------------------------------- SigLIP / CLIP / temperature
@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("t,bias", [(0.1, -10.0), (1.0, 0.0), (0.5, 2.0)])
def test_logistic_matches_reference(seed, t, bias):
    a, b = rand(seed, 6, 4), rand(seed + 1, 6, 4)
    check_value(lambda: logistic(a, b, temperature=t, bias=bias), logistic_ref(a, b, t, bias))
    grads_match(lambda x, y: logistic(x, y, temperature=t, bias=bias), lambda x, y: logistic_ref(x, y, t, bias), a, b)
    tt, bb = torch.tensor(t, dtype=F64), torch.tensor(bias, dtype=F64)  # learnable temperature and bias
    grads_match(lambda x, y, s, c: logistic(x, y, temperature=s, bias=c), logistic_ref, a, b, tt, bb)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("scale", [1.0, 10.0, 1 / 0.07, 100.0])
def test_clip_matches_reference(seed, scale):
    a, b = rand(seed, 7, 5), rand(seed + 1, 7, 5)
    check_value(lambda: clip_loss(a, b, logit_scale=scale), clip_ref(a, b, scale))
    check_value(lambda: clip_loss(a, b, logit_scale=torch.tensor(scale, dtype=F64)), clip_ref(a, b, scale))
    grads_match(lambda x, y, s: clip_loss(x, y, logit_scale=s), clip_ref, a, b, torch.tensor(scale, dtype=F64))
    # the row half is InfoNCE with in-batch negatives and t = 1/scale
    close(clip_loss(a, b, logit_scale=scale),
          (info_nce(a, b, temperature=1 / scale) + info_nce(b, a, temperature=1 / scale)) / 2)


def test_clip_logistic_analytic():
    e, s, b = onehots(5, 5), 3.0, 5  # CLIP logits: s on the diagonal, 0 elsewhere
    close(clip_loss(e, e, logit_scale=s), math.log(math.exp(s) + b - 1) - s)
    # SigLIP, t = 0.1, bias = -10: diagonal logit 1/t + bias = 0, off-diagonal logit = bias
    close(logistic(e, e, temperature=0.1, bias=-10.0), math.log(2) + (b - 1) * math.log1p(math.exp(-10.0)))


def test_learnable_temperature():
    lt = LearnableTemperature()
    scale = lt()
    assert abs(scale.item() - 1 / 0.07) < 1e-4
    assert lt.no_weight_decay() == {"log_scale"}
    (g,) = torch.autograd.grad(scale, lt.log_scale)  # d exp(x)/dx = exp(x)
    assert abs(g.item() - scale.item()) < 1e-4
    with torch.no_grad():
        lt.log_scale.fill_(math.log(1e4))
    assert abs(lt().item() - 100.0) < 1e-3  # clamped to max_scale
    assert abs(LearnableTemperature(initial_temperature=0.5, max_scale=10.0)().item() - 2.0) < 1e-6


# ----------------------------------------------------------------------------- alignment / uniformity
@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("alpha", [1, 2, 3])
def test_alignment_matches_reference(seed, alpha):
    a, b = rand(seed, 8, 4), rand(seed + 1, 8, 4)
    close(alignment(a, b, alpha=alpha), alignment_ref(a, b, alpha))
    grads_match(lambda x, y: alignment(x, y, alpha=alpha), lambda x, y: alignment_ref(x, y, alpha), a, b)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("t", [0.5, 2.0, 5.0])
def test_uniformity_matches_reference(seed, t):
    z = rand(seed, 9, 3)
    close(uniformity(z, t=t), uniformity_ref(z, t))
    grads_match(lambda x: uniformity(x, t=t), lambda x: uniformity_ref(x, t), z)


def test_alignment_uniformity_analytic():
    e = onehots(4, 4)
    close(alignment(e, 5 * e), 0.0)
    close(alignment(e, e.roll(1, 0), alpha=2), 2.0)  # ||e_i - e_j||^2 = 2
    close(alignment(e, e.roll(1, 0), alpha=1), math.sqrt(2))
    close(uniformity(3 * e, t=2), -2 * 2.0)  # every pairwise squared distance is 2
    close(uniformity(torch.tensor([[1.0, 0.0], [-2.0, 0.0]], dtype=F64), t=1.5), -4 * 1.5)  # antipodal


# ----------------------------------------------------------------------------- tiled log-sum-exp
LSE_MODES = ["sym", "sym_diag", "sym_ids", "cross", "cross_diag", "cross_ids", "cross_rect", "cross_rect_ids"]


@pytest.mark.parametrize("mode", LSE_MODES)
@pytest.mark.parametrize("scale", [1.0, 7.5, 300.0])
@pytest.mark.parametrize("tile,cache", [(None, None), (3, None), (3, 0), (None, 0)])
def test_tiled_lse_matches_logsumexp(mode, scale, tile, cache, monkeypatch):
    if tile is not None:
        monkeypatch.setattr(lse_mod, "TILE", tile)
    if cache is not None:
        monkeypatch.setattr(lse_mod, "CACHE_BYTES", cache)
    n, m, cross = 8, (11 if "rect" in mode else 8), mode.startswith("cross")
    x, y = rand(0, n, 5, scale=0.5), (rand(1, m, 5, scale=0.5) if cross else None)
    diag = mode.endswith("diag")
    ids = torch.arange(n) % 3 if mode == "sym_ids" else None
    if cross and mode.endswith("ids"):
        ids = (torch.arange(n) % 3, torch.arange(m) % 4)
    ref_r, ref_c = lse_ref(x, y, scale, diag, ids)
    out = tiled_lse(x, y, scale=scale, exclude_diag=diag, ids=ids, columns=cross)
    close(out[0] if cross else out, ref_r)
    if cross:
        close(out[1], ref_c)
    wr, wc = rand(7, n), rand(8, m)

    def lib(*xs):
        o = tiled_lse(xs[0], xs[1] if cross else None, scale=scale, exclude_diag=diag, ids=ids, columns=cross)
        return (wr * o[0]).sum() + (wc * o[1]).sum() if cross else (wr * o).sum()

    def ref(*xs):
        r, c = lse_ref(xs[0], xs[1] if cross else None, scale, diag, ids)
        return (wr * r).sum() + ((wc * c).sum() if cross else 0.0)
    grads_match(lib, ref, *((x, y) if cross else (x,)))


def test_tiled_lse_analytic():
    z = torch.zeros(5, 3, dtype=F64)  # every logit 0: log(count)
    close(tiled_lse(z), torch.full((5,), math.log(5), dtype=F64))
    close(tiled_lse(z, exclude_diag=True), torch.full((5,), math.log(4), dtype=F64))
    e, s = onehots(4, 4), 2.5  # orthonormal: e^s once, e^0 three times
    close(tiled_lse(e, e, scale=s), torch.full((4,), math.log(math.exp(s) + 3), dtype=F64))
    assert torch.isneginf(tiled_lse(e, ids=torch.zeros(4, dtype=torch.long))).all()  # nothing allowed: -inf
    x = unit(rand(4, 6, 3))  # unit rows, scale 300: rows far below the Cauchy-Schwarz bound (running max)
    for y in (None, unit(rand(5, 7, 3))):
        close(tiled_lse(x, y, scale=300.0, exclude_diag=y is None), lse_ref(x, y, 300.0, y is None, None)[0])
