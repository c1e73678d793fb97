"""The playground's text panel: what is on screen, said with the current values.

Example::

    >>> from contrastlab.dashboard.controls import defaults
    >>> from contrastlab.dashboard.explain import explain
    >>> anchor = {"point": 3, "label": "A", "positive": {"point": 9, "label": "A", "p": 0.5, "cos": 0.9},
    ...           "negatives": [{"point": 7, "label": "B", "p": 0.2, "cos": 0.8}], "n_negatives": 63,
    ...           "entropy": 1.2}
    >>> text = explain(defaults(), anchor, {"alignment": 0.3, "uniformity": -1.4})
    >>> "temperature 0.1" in text
    True
"""

from __future__ import annotations

import math

__all__ = ["explain"]

_LOSS_TITLES = {
    "info_nce": "InfoNCE", "nt_xent": "NT-Xent", "supcon": "SupCon", "triplet": "triplet",
    "margin_contrastive": "margin contrastive", "logistic": "logistic (SigLIP)",
    "debiased_info_nce": "debiased InfoNCE",
}


def _pct(p: float) -> str:
    return f"{100 * p:.0f}%" if p >= 0.01 else f"{100 * p:.1g}%"


def _who(item: dict) -> str:
    return f"#{item['point']} (cluster {item['label']})"


def _positives_sentence(s: dict, anchor: dict) -> str:
    loss, b = s["loss"], s["batch_size"]
    pos = anchor["positive"]
    view = (f"Its positive {_who(pos)} is a view of it: its position plus noise of strength {s['noise']:g}, "
            f"snapped to the nearest other point.")
    if s["no_negatives"]:
        return f"{view} Only this pair counts: there are no negatives."
    if loss == "nt_xent":
        return f"{view} Every other point of the batch ({2 * b - 2}) is a negative, in both directions."
    if loss == "supcon":
        return ("SupCon uses the cluster labels: every point of the same cluster in the batch is a positive, "
                f"every other point a negative ({2 * b - 1} candidates in all).")
    if loss == "triplet":
        mining = {"batch_hard": "only each anchor's farthest positive and nearest negative count",
                  "batch_all": "every (anchor, positive, negative) triplet that violates the margin counts",
                  "semi_hard": "per positive, the nearest negative farther than the positive counts"}[s["mining"]]
        return (f"The triplet loss uses the cluster labels (same cluster = positive) with {s['mining']} mining: "
                f"{mining}; margin {s['margin']:g}.")
    if loss == "margin_contrastive":
        return (f"{view} Margin contrastive sees pairs one at a time: positives are pulled together, each "
                f"anchor's one negative pair is pushed apart until it is {s['margin']:g} away.")
    if loss == "logistic":
        return (f"{view} The logistic loss makes every (anchor, candidate) pair a yes/no question: "
                f"logit = cos / {s['temperature']:g} - {1 / s['temperature']:g}; no softmax across negatives.")
    if loss == "debiased_info_nce":
        return (f"{view} The other {b - 1} anchors' positives are its negatives, but debiased InfoNCE assumes a "
                f"fraction tau+ = {s['tau_plus']:g} of them share its class and subtracts their expected share "
                f"from the denominator (Chuang et al. 2020): false negatives are pushed less.")
    return f"{view} The other {b - 1} anchors' positives are its negatives."


def _temperature_sentence(s: dict, anchor: dict) -> str:
    t = s["temperature"]
    negs = anchor["negatives"]
    n = max(anchor["n_negatives"], 1)
    pos = anchor["positive"]
    out = f"At temperature {t:g} the softmax gives the positive {_pct(pos['p'])} of the mass"
    if negs:
        top = negs[0]
        share = sum(x["p"] for x in negs[:3])
        out += (f"; the hardest negative, {_who(top)} at cosine {top['cos']:.2f}, takes {_pct(top['p'])}"
                f" and the three hardest {_pct(share)}")
        if top["label"] == anchor["label"] and s["loss"] in ("info_nce", "nt_xent") and not s["no_negatives"]:
            out += (f" (it is from the anchor's own cluster {anchor['label']}: a false negative, pushed away "
                    f"all the same, since this loss never sees labels)")
    out += (f". Entropy {anchor['entropy']:.2f} nats of at most {math.log(n + 1):.2f}: a lower temperature "
            f"puts the push on the hard negatives, a higher one spreads it over all {n}.")
    if s["loss"] not in ("info_nce", "nt_xent", "supcon") or s["no_negatives"]:
        title = "alignment alone" if s["no_negatives"] else _LOSS_TITLES[s["loss"]]
        out += f" (The bars show the softmax InfoNCE would use; {title} does not weigh negatives this way.)"
    elif s["loss"] == "info_nce" and s["hard_negative_beta"] > 0:
        out += (f" Hard-negative beta {s['hard_negative_beta']:g} re-weights each negative by exp(beta s / t): "
                f"the hard ones get more of the push (Robinson et al. 2021).")
    return out


def explain(settings: dict, anchor: dict | None, metrics: dict) -> str:
    """A few sentences about the current frame: anchor, positive, negatives, temperature, metrics."""
    s = settings
    title = "alignment only (no negatives)" if s["no_negatives"] else _LOSS_TITLES[s["loss"]]
    parts = [f"Loss: {title}."]
    if anchor is not None:
        parts.append(f"The anchor is {_who(anchor)} (click a point to choose another).")
        parts.append(_positives_sentence(s, anchor))
        parts.append("Green arrows: the pull toward positives; red arrows: the push from negatives, each "
                     "negative weighted by how much the loss cares about it.")
        parts.append(_temperature_sentence(s, anchor))
    if s.get("mode") == "encoder":
        parts.append("Encoder mode: the embeddings are not free vectors but f(x), one small network of the 2-D "
                     "inputs, so each step moves the whole function. The input plane (left) is coloured by where f "
                     "sends each location; positives are augmented inputs (zoomed, scaled, jittered) snapped to the "
                     "nearest training input, so a strong augmentation links neighbouring clusters and f merges "
                     "them. Hollow points are held out: f never trained on them, and where they land shows how "
                     "it generalises.")
    if s["no_negatives"]:
        parts.append("Without negatives nothing pushes points apart, so the cheapest solution is to put every "
                     "point in one spot: collapse. Alignment goes to 0 and uniformity rises toward 0.")
    parts.append(f"Alignment {metrics['alignment']:.3f} (mean squared distance between positives; 0 = every pair "
                 f"coincides). Uniformity {metrics['uniformity']:.2f} (log mean exp(-2 |z_i - z_j|^2); lower = "
                 f"more spread out, 0 = collapsed; Wang & Isola 2020).")
    return " ".join(parts)
