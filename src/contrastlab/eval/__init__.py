"""Evaluation of frozen embeddings: kNN, linear probe, fine-tuning and label efficiency,
verification, robustness to corruptions, raw-pixel baselines, geometry, and a terminal report.

Every function is pure (inputs are never modified, nothing is written to disk) and returns plain
floats and dicts that the trainer can dump to ``RUN/eval.json``.

Example::

    >>> import torch
    >>> from contrastlab.eval import embed, knn_top1, linear_probe
    >>> enc = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 8))
    >>> x = torch.randint(0, 256, (40, 1, 4, 4), dtype=torch.uint8)
    >>> y = torch.arange(40) % 4
    >>> z = embed(enc, x)
    >>> 0.0 <= knn_top1(z[:30], y[:30], z[30:], y[30:], k=5) <= 1.0
    True
"""

from .baselines import pixel_baselines
from .corruptions import CORRUPTIONS, DEFAULT_SEVERITIES, contrast, gaussian_blur, gaussian_kernel, gaussian_noise
from .embed import embed, evaluating
from .finetune import finetune
from .geometry import geometry
from .knn import knn_predict, knn_top1
from .label_efficiency import label_efficiency, stratified_subset
from .linear import LinearProbe, feature_moments, fit_linear_probe, linear_probe
from .report import format_metric_retrieval, format_report
from .robustness import robustness
from .verification import equal_error_rate, roc_auc, sample_pairs, verification

__all__ = [
    "embed", "evaluating", "knn_predict", "knn_top1", "LinearProbe", "fit_linear_probe", "linear_probe",
    "feature_moments", "finetune", "label_efficiency", "stratified_subset", "roc_auc", "equal_error_rate",
    "sample_pairs", "verification", "gaussian_noise", "gaussian_blur", "gaussian_kernel", "contrast",
    "CORRUPTIONS", "DEFAULT_SEVERITIES", "robustness", "pixel_baselines", "geometry", "format_report",
]

from .retrieval import evaluate_retrieval, rank, retrieval_metrics, top_k
from .text_baselines import (TEXT_BASELINES, bm25_rank, bm25_scores, frozen_embedding_rank, popularity_rank,
                             text_baselines, tfidf_rank, word_tokens)

__all__ += ["top_k", "rank", "retrieval_metrics", "evaluate_retrieval", "word_tokens", "bm25_scores", "bm25_rank",
            "tfidf_rank", "frozen_embedding_rank", "popularity_rank", "TEXT_BASELINES", "text_baselines"]

from .metric_retrieval import METRIC_RETRIEVAL_KEYS, metric_retrieval

__all__ += ["metric_retrieval", "METRIC_RETRIEVAL_KEYS", "format_metric_retrieval"]

from .sequences import embed_series, one_nn_euclidean, svm_accuracy

__all__ += ["embed_series", "svm_accuracy", "one_nn_euclidean"]
