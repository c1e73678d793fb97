"""The formula panel: the clicked anchor's InfoNCE written out with the numbers on screen.

For anchor ``i`` of the batch, with cosines ``s_j`` to every candidate (its positive and the other
anchors' positives, the negatives) and temperature ``t``::

    L_i = -log( exp(s_+ / t) / (exp(s_+ / t) + sum_j w_j exp(s_j / t)) )

with ``w_j = 1`` for plain InfoNCE (van den Oord et al. 2018) and ``w_j = K exp(beta s_j / t) / sum_k
exp(beta s_k / t)`` with the hard-negative beta (Robinson et al. 2021). The gradient of ``L_i`` with
respect to ``s_j / t`` is the softmax probability of negative ``j`` (beta = 0), so a negative's share
of the push is its share of the negatives' mass. The engine's own value of ``L_i`` (the library's
``info_nce`` with ``reduction="none"`` on the batch, float32 like the training step) is sent beside it.

Example::

    >>> from contrastlab.dashboard.playground import Playground
    >>> from contrastlab.dashboard.formula import anchor_formula
    >>> f = anchor_formula(Playground(points=64, batch_size=16, seed=0))
    >>> abs(f["loss"] - f["engine_loss"]) < 1e-4
    True
"""

from __future__ import annotations

import math

import torch

from ..losses import info_nce

__all__ = ["anchor_formula", "SHOWN_NEGATIVES", "REFERENCE_TEMPERATURES"]

#: Negatives written out term by term (the largest exp terms); the others are summed.
SHOWN_NEGATIVES = 5
#: The weight plot's reference temperatures: the first two that differ from the current one are drawn beside it.
REFERENCE_TEMPERATURES = (0.05, 1.0, 0.2)


def anchor_formula(pg) -> dict:
    """The clicked anchor's InfoNCE terms from playground ``pg``'s current batch and positions (float64)."""
    s = pg.settings
    t = s["temperature"]
    beta = s["hard_negative_beta"] if s["loss"] == "info_nce" else 0.0
    a, p = pg.batch
    z = pg.embeddings
    i = int((a == pg.anchor).nonzero()[0, 0])
    unit = torch.nn.functional.normalize(z.double(), dim=1)                  # (N, d), as the losses normalise
    cos = unit[p] @ unit[pg.anchor]                                          # (B,)
    logits = cos / t
    neg = torch.ones_like(logits, dtype=torch.bool)
    neg[i] = False
    ln = logits[neg]                                                         # (K,)
    k = int(neg.sum())
    if beta > 0:
        log_w = math.log(k) + beta * ln - torch.logsumexp(beta * ln, 0)      # (K,) mean-one weights
    else:
        log_w = torch.zeros_like(ln)
    log_terms = log_w + ln                                                   # log(w_j exp(l_j))
    log_den = torch.logsumexp(torch.cat([logits[i:i + 1], log_terms]), 0)
    loss = float(log_den - logits[i])
    share = torch.softmax(log_terms, 0)                                      # (K,) of the negatives' mass
    order = torch.argsort(log_terms, descending=True)
    ids = p[neg]
    names = pg.class_names
    labels = pg.labels

    def term(j):
        return {"point": int(ids[j]), "label": names[int(labels[ids[j]])], "cos": float(cos[neg][j]),
                "weight": float(log_w[j].exp()), "exp": float(log_terms[j].exp()), "share": float(share[j])}
    shown = order[:SHOWN_NEGATIVES].tolist()
    rest = order[SHOWN_NEGATIVES:]
    engine = info_nce(z[a], z[p], temperature=t, hard_negative_beta=beta, reduction="none")   # (B,) float32
    return {"anchor": pg.anchor, "anchor_label": names[int(labels[pg.anchor])], "temperature": t, "beta": beta,
            "trained": s["loss"] == "info_nce" and not s["no_negatives"], "loss_name": s["loss"],
            "positive": {"point": int(p[i]), "label": names[int(labels[p[i]])], "cos": float(cos[i]),
                         "exp": float(logits[i].exp())},
            "negatives": [term(j) for j in shown], "n_negatives": k,
            "rest_exp": float(log_terms[rest].exp().sum()) if len(rest) else 0.0, "rest_count": int(len(rest)),
            "denominator": float(log_den.exp()), "log_denominator": float(log_den), "loss": loss,
            "engine_loss": float(engine[i]), "engine_batch_loss": float(engine.mean()),
            "plot": {"cos": [round(c, 4) for c in cos[neg].tolist()], "references": list(REFERENCE_TEMPERATURES)}}
