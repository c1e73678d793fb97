"""Zero-shot and cross-modal evaluation of a two-tower (image-text) run, on the held-out images only.

`evaluate_multimodal(trainer)` returns `{"cross_modal": {...}}` for `RUN/eval.json`:

* ``image_to_text`` / ``text_to_image``: recall@1/5/10 between the held-out images and their English names (an
  image whose name another held-out image shares has every copy as relevant);
* ``zero_shot``: accuracy over the categories (Unicode groups) with one prompt per group, "an emoji of {group}", plus
  one per subgroup ("an emoji of face smiling"), the group's prompt embeddings averaged (``model``); and the same
  with the bare names as prompts (``model_bare_names``: a text tower that only ever saw names has no use for the
  template's words);
* ``cross_lingual``: name -> name recall@10 between two languages (e.g. es -> ja), both embedded by the text tower.

Each row holds the model and its baselines in the same units: ``chance`` (a random ranking: k / N recall@k, or
1 / classes accuracy, computed exactly), ``majority`` (zero-shot: always the most frequent test group),
``pixels`` (a random linear projection of the pixels against a random projection of frozen wordllama name vectors:
no training, no alignment), ``untrained`` (cross-lingual: the run's towers and tokenizer with fresh weights, i.e.
what shared subwords alone give) and ``wordllama`` (frozen wordllama, only where both sides are text: name -> name, and the
English *name* -> group prompt).

>>> format_cross_modal({"cross_modal": {"image_to_text": {"n": 2, "model": {"recall@1": 0.5},
...                                                       "chance": {"recall@1": 0.5}}}}).splitlines()[0]
'cross-modal evaluation (held-out examples only)'
"""
from __future__ import annotations

import time
from datetime import datetime, timezone

import torch
import torch.nn.functional as F

from ..devices import to_host

__all__ = ["evaluate_multimodal", "format_cross_modal", "zero_shot_prompts", "chance_recall"]

KS = (1, 5, 10)
_WORDLLAMA: dict = {}


def chance_recall(n: int, ks=KS) -> dict[str, float]:
    """Expected recall@k of a random ranking of `n` candidates: each relevant one is in the top k with probability
    min(k, n) / n, whatever the number of relevant candidates.

    >>> chance_recall(20, ks=(1, 10))
    {'recall@1': 0.05, 'recall@10': 0.5}
    """
    return {f"recall@{k}": min(k, n) / n for k in ks}


def _same(texts: list[str]) -> list[list[int]]:
    where: dict[str, list[int]] = {}
    for j, t in enumerate(texts):
        where.setdefault(t, []).append(j)
    return [where[t] for t in texts]


def _recall(queries: torch.Tensor, docs: torch.Tensor, relevant, ks=KS) -> dict[str, float]:
    from ..eval.retrieval import rank, retrieval_metrics
    m = retrieval_metrics(rank(queries, docs, k=max(ks)), relevant, ks=ks)
    return {f"recall@{k}": m[f"recall@{k}"] for k in ks}


def zero_shot_prompts(classes, subclasses=None, labels=None, sublabels=None, *,
                      template: str = "an emoji of {}") -> list[list[str]]:
    """Prompts per class: the class name, and each of its subclasses (those that occur with it in the data).

    >>> zero_shot_prompts(("Flags", "Animals & Nature"), ("flag", "animal-mammal"), torch.tensor([0, 1]),
    ...                   torch.tensor([0, 1]))
    [['an emoji of Flags', 'an emoji of flag'], ['an emoji of Animals & Nature', 'an emoji of animal mammal']]
    """
    prompts = [[template.format(c)] for c in classes]
    if subclasses is not None and labels is not None and sublabels is not None:
        for g, s in sorted(set(zip(labels.tolist(), sublabels.tolist()))):
            prompts[g].append(template.format(subclasses[s].replace("-", " ")))
    return prompts


def _class_vectors(encode, prompts: list[list[str]]) -> torch.Tensor:
    flat = [p for group in prompts for p in group]
    z = F.normalize(encode(flat), dim=1)                                         # (P, D)
    sizes = [len(group) for group in prompts]
    return F.normalize(torch.stack([c.mean(0) for c in z.split(sizes)]), dim=1)  # (C, D)


def _wordllama():
    """The frozen wordllama encoder (the wheel's own weights), or None when it cannot be loaded."""
    if "enc" not in _WORDLLAMA:
        try:
            from ..models.text.external import WordLlamaEncoder
            _WORDLLAMA["enc"] = WordLlamaEncoder()
        except (ImportError, FileNotFoundError, ValueError) as e:   # pragma: no cover - depends on the install
            _WORDLLAMA["enc"] = None
            _WORDLLAMA["why"] = str(e)
    return _WORDLLAMA["enc"]


def _wordllama_encode(texts: list[str]) -> torch.Tensor:
    from ..models.text import encode_texts
    return encode_texts(_wordllama(), texts)


def _untrained(trainer, seed: int):
    """The run's architecture and tokenizer with freshly initialised weights (what shared subwords alone give), or
    None for a method built outside the task registry."""
    from .trainer import Trainer
    if not isinstance(trainer, Trainer) or not hasattr(trainer.task, "build"):
        return None
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        method = trainer.task.build(trainer.config, trainer.data, trainer.run.path)[0]
    return method.eval()


def evaluate_multimodal(trainer, *, language: str = "en", pairs=(("es", "ja"), ("fr", "de")),
                        template: str = "an emoji of {}", baselines: bool = True, seed: int = 0,
                        log=print) -> dict:
    """Cross-modal metrics of the trained towers on the held-out examples; see the module docstring.

    Shape: works on `trainer.data` (ImageTextData) and `trainer.method` (a two-tower method with `embed` for
    images and `embed_texts` for texts). Returns {"method", "data", "step", "evaluated", "cross_modal", "seconds"}.
    """
    from ..eval import embed
    from .tasks import _Features
    data, method = trainer.data, trainer.method
    if not isinstance(template, str) or "{}" not in template:
        raise ValueError(f"`template` must be a str with one '{{}}' for the category name, got {template!r}")
    if language not in data.texts:
        raise ValueError(f"`language` must be one of {', '.join(data.texts)}, got {language!r}")
    for pair in pairs:
        if len(pair) != 2 or any(lang not in data.texts for lang in pair):
            raise ValueError(f"`pairs` must hold (source, target) languages of {data.name} "
                             f"({', '.join(data.texts)}), got {pair!r}")
    t0 = time.perf_counter()
    use_wl = baselines and _wordllama() is not None
    method.eval()
    idx, names = data.pairs(language, test=True)                                 # (N,), N names
    n = len(names)
    log(f"cross-modal evaluation on {n} held-out images")
    images = to_host(embed(_Features(method), data.images[idx], normalize=True))  # (N, E), embedded on the device
    texts = method.embed_texts(names)                                           # (N, E)
    rel = _same(names)
    out: dict = {}
    i2t = {"n": n, "model": _recall(images, texts, rel), "chance": chance_recall(n)}
    t2i = {"n": n, "model": _recall(texts, images, rel), "chance": chance_recall(n)}
    if use_wl:
        g = torch.Generator().manual_seed(seed)
        dim = texts.shape[1]
        pix = data.images[idx].flatten(1).float().div(255)                      # (N, 3HW)
        pix_z = pix @ torch.randn(pix.shape[1], dim, generator=g)               # (N, E)
        wl = _wordllama_encode(names)
        wl_z = wl @ torch.randn(wl.shape[1], dim, generator=g)                  # (N, E)
        i2t["pixels"] = _recall(pix_z, wl_z, rel)
        t2i["pixels"] = _recall(wl_z, pix_z, rel)
    out["image_to_text"], out["text_to_image"] = i2t, t2i
    if data.labels is not None and data.classes is not None:
        labels = data.labels[idx]
        prompts = zero_shot_prompts(data.classes, data.subclasses, data.labels, data.sublabels, template=template)
        classes = _class_vectors(method.embed_texts, prompts)                   # (C, E)
        pred = (images @ classes.t()).argmax(1)
        bare = _class_vectors(method.embed_texts, zero_shot_prompts(data.classes, data.subclasses, data.labels,
                                                                     data.sublabels, template="{}"))
        bare_pred = (images @ bare.t()).argmax(1)
        zs = {"n": n, "classes": len(data.classes), "template": template,
              "model": {"accuracy": float((pred == labels).float().mean())},
              "model_bare_names": {"accuracy": float((bare_pred == labels).float().mean())},
              "chance": {"accuracy": 1.0 / len(data.classes)},
              "majority": {"accuracy": float(torch.bincount(labels).max()) / n}}
        if use_wl:
            wl_pred = (_wordllama_encode(names) @ _class_vectors(_wordllama_encode, prompts).t()).argmax(1)
            zs["wordllama_names"] = {"accuracy": float((wl_pred == labels).float().mean())}
        out["zero_shot"] = zs
    untrained = _untrained(trainer, seed) if baselines else None
    cross = {}
    for src, tgt in pairs:
        test = data.test_indices().tolist()
        both = [i for i in test if (data.texts[src][i] or "").strip() and (data.texts[tgt][i] or "").strip()]
        if len(both) < 2:
            continue
        a, b = [data.texts[src][i] for i in both], [data.texts[tgt][i] for i in both]
        rel_b = _same(b)
        row = {"n": len(both), "model": _recall(method.embed_texts(a), method.embed_texts(b), rel_b, ks=(1, 10)),
               "chance": chance_recall(len(both), ks=(1, 10))}
        if untrained is not None:
            row["untrained"] = _recall(untrained.embed_texts(a), untrained.embed_texts(b), rel_b, ks=(1, 10))
        if use_wl:
            row["wordllama"] = _recall(_wordllama_encode(a), _wordllama_encode(b), rel_b, ks=(1, 10))
        cross[f"{src}->{tgt}"] = row
    out["cross_lingual"] = cross
    out["trained_languages"] = list(getattr(method, "languages", ()))
    if baselines and not use_wl:
        out["skipped"] = {"wordllama": _WORDLLAMA.get("why", "not installed")}
    method.train()
    return {"method": trainer.config.method, "data": trainer.config.data, "step": trainer.step,
            "evaluated": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"), "cross_modal": out,
            "seconds": round(time.perf_counter() - t0, 1)}


def format_cross_modal(results: dict) -> str:
    """A plain-text table of `results["cross_modal"]`: one line per metric, the model and each baseline."""
    cm = results.get("cross_modal", {})
    rows = []

    def add(task: str, block: dict):
        systems = [s for s in block if isinstance(block[s], dict)]
        for metric in block.get("model", {}):
            cells = "  ".join(f"{s}={block[s][metric]:.3f}" for s in systems if metric in block[s])
            rows.append(f"  {task:<22} {metric:<11} {cells}  (n={block.get('n', '?')})")

    for key in ("image_to_text", "text_to_image", "zero_shot"):
        if key in cm:
            add(key.replace("_", " "), cm[key])
    for pair, block in cm.get("cross_lingual", {}).items():
        add(f"names {pair}", block)
    if cm.get("trained_languages"):
        rows.append(f"  trained languages: {', '.join(cm['trained_languages'])}")
    return "\n".join(["cross-modal evaluation (held-out examples only)", *rows])
