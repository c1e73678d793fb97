"""A plain-text table of evaluation results for the terminal."""

from __future__ import annotations

import math
import numbers
from typing import Mapping

__all__ = ["format_report", "format_metric_retrieval"]


def _pct(v) -> str:
    return f"{100 * float(v):.1f}%" if _is_number(v) else str(v)


def _num(v) -> str:
    return f"{float(v):.4f}" if _is_number(v) else str(v)


def _is_number(v) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isfinite(float(v))


def _key_pct(k) -> str:
    """A fraction key (0.01 or "0.01" after a JSON round trip) as "1%"."""
    try:
        return f"{100 * float(k):g}%"
    except (TypeError, ValueError):
        return str(k)


def _sorted_keys(d: Mapping):
    def key(k):
        try:
            return (0, float(k), "")
        except (TypeError, ValueError):
            return (1, 0.0, str(k))
    return sorted(d, key=key)


def format_report(results: Mapping) -> str:
    """Render evaluation results as an aligned two-column table; absent (or None) entries are skipped.

    Recognised keys: ``knn_top1``, ``linear_top1``, ``pixels_knn_top1``, ``pixels_linear_top1``
    (accuracies in [0, 1], shown as percentages), ``label_fraction`` ({fraction: {"pretrained",
    "scratch"}}), ``alignment``, ``uniformity``, ``verification`` ({"roc_auc", "eer"}) and
    ``robustness`` ({corruption: {severity: accuracy}}). Keys may be numbers or, after a JSON round
    trip, strings. Other keys are ignored.

    Example::

        >>> print(format_report({"knn_top1": 0.873, "label_fraction": {"0.01": {"pretrained": 0.7, "scratch": 0.45}},
        ...                      "verification": {"roc_auc": 0.95, "eer": 0.1}}))
        metric                           value
        ------------------------------  ------
        kNN top-1                        87.3%
        1% labels, pretrained            70.0%
        1% labels, scratch               45.0%
        verification ROC AUC            0.9500
        verification EER                 10.0%
    """
    if not isinstance(results, Mapping):
        raise TypeError(f"`results` must be a mapping of metric names to values, got {type(results).__name__}")
    rows: list[tuple[str, str]] = []

    def add(name: str, value, fmt) -> None:
        if value is not None:
            rows.append((name, fmt(value)))

    add("kNN top-1", results.get("knn_top1"), _pct)
    add("linear probe top-1", results.get("linear_top1"), _pct)
    add("pixels kNN top-1", results.get("pixels_knn_top1"), _pct)
    add("pixels linear top-1", results.get("pixels_linear_top1"), _pct)
    fractions = results.get("label_fraction")
    if isinstance(fractions, Mapping):
        for f in _sorted_keys(fractions):
            arms = fractions[f]
            if isinstance(arms, Mapping):
                for arm in ("pretrained", "scratch"):
                    add(f"{_key_pct(f)} labels, {arm}", arms.get(arm), _pct)
    add("alignment", results.get("alignment"), _num)
    add("uniformity", results.get("uniformity"), _num)
    ver = results.get("verification")
    if isinstance(ver, Mapping):
        add("verification ROC AUC", ver.get("roc_auc"), _num)
        add("verification EER", ver.get("eer"), _pct)
    rob = results.get("robustness")
    if isinstance(rob, Mapping):
        for name in rob:
            sevs = rob[name]
            if isinstance(sevs, Mapping):
                for sev in _sorted_keys(sevs):
                    add(f"{name} @ {sev}", sevs[sev], _pct)
    if not rows:
        return "(no evaluation results)"
    left = max(30, *(len(n) for n, _ in rows))
    right = max(6, *(len(v) for _, v in rows))
    lines = [f"{'metric':<{left}}  {'value':>{right}}", f"{'-' * left}  {'-' * right}"]
    lines += [f"{n:<{left}}  {v:>{right}}" for n, v in rows]
    return "\n".join(lines)


def _retrieval_columns(table: Mapping) -> list[tuple[str, str]]:
    """(key, heading) of the metric-retrieval scores present in some row, P@k by k, then R-precision and MAP@R."""
    keys = {k for row in table.values() if isinstance(row, Mapping) for k in row}
    ks = sorted(int(k.split("@")[1]) for k in keys if k.startswith("precision@") and k.split("@")[1].isdigit())
    cols = [(f"precision@{k}", f"P@{k}") for k in ks]
    return cols + [(k, h) for k, h in (("r_precision", "R-precision"), ("map@r", "MAP@R")) if k in keys]


def format_metric_retrieval(retrieval: Mapping) -> str:
    """Render a metric-retrieval result (``RUN/eval.json["retrieval"]`` of an image run: ``table`` of rows
    {name: {"precision@k", "r_precision", "map@r"}}, ``items``, ``singletons``, ``skipped``) as an aligned table,
    scores as percentages; rows in ``skipped`` are listed with their reason.

    Example::

        >>> print(format_metric_retrieval({"items": 100, "singletons": 0, "skipped": {"supervised": "too costly"},
        ...     "table": {"pixels": {"precision@1": 0.8, "precision@10": 0.75, "r_precision": 0.5, "map@r": 0.3}}}))
        retrieval: 100 test images query each other (cosine, self excluded)
        encoder                            P@1    P@10  R-precision   MAP@R
        ------------------------------  ------  ------  -----------  ------
        pixels                           80.0%   75.0%        50.0%   30.0%
        skipped: supervised (too costly)
    """
    if not isinstance(retrieval, Mapping) or not isinstance(retrieval.get("table"), Mapping):
        raise TypeError(f"`retrieval` must be a mapping with a 'table' of rows, got {type(retrieval).__name__}")
    table = retrieval["table"]
    cols = _retrieval_columns(table)
    lone = retrieval.get("singletons") or 0
    head = f"retrieval: {retrieval.get('items', '?'):,} test images query each other (cosine, self excluded"
    lines = [head + (f"; {lone:,} alone in their class left out)" if lone else ")")]
    left = max(30, *(len(str(n)) for n in table)) if table else 30
    widths = [max(6, len(h)) for _, h in cols]
    lines.append(f"{'encoder':<{left}}" + "".join(f"  {h:>{w}}" for (_, h), w in zip(cols, widths)))
    lines.append("-" * left + "".join(f"  {'-' * w}" for w in widths))
    for name, row in table.items():
        cells = [_pct(row[k]) if k in row else "-" for k, _ in cols]
        lines.append(f"{str(name):<{left}}" + "".join(f"  {c:>{w}}" for c, w in zip(cells, widths)))
    for name, why in (retrieval.get("skipped") or {}).items():
        lines.append(f"skipped: {name} ({why})")
    return "\n".join(lines)
