"""Text methods: query -> document pairs with in-batch (and hard) negatives, and SimCSE for unlabelled sentences.

Both embed with one shared text encoder (a user and an item share their item embeddings in the recommendation case)
and rank with :func:`~contrastlab.losses.multiple_negatives_ranking` (under several processes: each rank's queries
against every rank's documents, :func:`~contrastlab.losses.distributed.global_multiple_negatives_ranking`). A batch never holds the same anchor or the same
document twice as different pairs: the duplicate pair is dropped for that step (its text is a positive, not a
negative, of the other row), and a hard negative equal to any positive of the batch is not used.

>>> import torch
>>> from contrastlab.data.text import PairData, TextData
>>> from contrastlab.models.text import TextTokenizer, create_text_encoder
>>> data = TextData("toy", PairData(["a cat", "a dog", "a cow"], ["un gato", "un perro", "una vaca"]))
>>> enc = create_text_encoder("bag", tokenizer=TextTokenizer.train(data.train.texts(), kind="words"), dim=8)
>>> m = InBatchPairs(enc, feature_dim=8)
>>> batch = m.make_batch(data, torch.arange(3), None, torch.Generator().manual_seed(0))
>>> m(batch).loss.ndim
0
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .. import distributed as dist
from ..losses.distributed import global_multiple_negatives_ranking
from ..losses.geometry import alignment
from .base import Method, StepOutput, positive_number, register_method

__all__ = ["InBatchPairs", "SimCSE"]


def _temperature(t):
    return positive_number("temperature", t)


def _zero_loss(q: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
    """A differentiable 0 for a batch left with one pair and no negatives (nothing to rank it against)."""
    return (q.sum() + d.sum()) * 0.0


class _TextMethod(Method):
    modalities = ("text",)
    n_views = 2

    def tokens(self, texts: list[str]) -> dict[str, torch.Tensor]:
        return self.encoder.tokenize(texts)

    def encode(self, tokens: dict[str, torch.Tensor]) -> torch.Tensor:
        device = next(self.parameters()).device
        return self.encoder({k: v.to(device) for k, v in tokens.items()})

    def embed(self, tokens):
        """Evaluation features: the encoder's output for tokenised texts (B, D)."""
        return self.encode(tokens)

    def forward(self, batch) -> StepOutput:
        return self.loss_from(self.embeddings(batch), batch)


def _rows(tokens: dict) -> int:
    return next(iter(tokens.values())).shape[0]


def _cut(tokens: dict, lo: int, hi: int) -> dict:
    return {k: v[lo:hi] for k, v in tokens.items()}


def _unique_pairs(pairs, idx):
    """Keep the first pair of each anchor and of each positive document in `idx` (order kept)."""
    ids = pairs.positive_ids
    seen_a, seen_d, keep, doc = set(), {}, [], []
    for i in idx.tolist():
        a, key = pairs.anchors[i], ids[i] if ids is not None else pairs.positives[i]
        if a in seen_a or key in seen_d:
            continue
        seen_a.add(a)
        seen_d[key] = len(seen_d)
        keep.append(i)
        doc.append(seen_d[key])
    return keep, torch.tensor(doc)


@register_method("pairs")
class InBatchPairs(_TextMethod):
    """Query -> document training with in-batch negatives (Henderson et al. 2017; "multiple negatives ranking"),
    plus up to `hard_negatives` of each pair's own hard negatives (shown-but-not-clicked results, mined negatives)
    shared by the whole batch as extra candidates (Karpukhin et al. 2020, DPR). `symmetric` also ranks the queries
    for each document."""

    def __init__(self, encoder, *, feature_dim, num_classes=None, temperature: float = 0.05,
                 symmetric: bool = True, hard_negatives: int = 1):
        super().__init__(encoder, feature_dim=feature_dim, num_classes=num_classes)
        self.temperature = _temperature(temperature)
        if not isinstance(symmetric, bool):
            raise ValueError(f"`symmetric` must be true or false, got {symmetric!r}")
        if not isinstance(hard_negatives, int) or isinstance(hard_negatives, bool) or hard_negatives < 0:
            raise ValueError(f"`hard_negatives` must be an int >= 0, got {hard_negatives!r}")
        self.symmetric, self.hard_negatives = symmetric, hard_negatives

    def check_data(self, data) -> None:
        """A batch keeps one pair per query and per document, so data with a single query (or document) leaves
        every batch one pair with nothing to rank against, unless there are hard negatives."""
        super().check_data(data)
        pairs = data.train
        queries = len(set(pairs.anchors))
        docs = len(set(pairs.positive_ids if pairs.positive_ids is not None else pairs.positives))
        if (queries < 2 or docs < 2) and not (self.hard_negatives and pairs.has_negatives):
            raise ValueError(f"method {self.name!r} needs at least 2 distinct queries and 2 distinct documents (a "
                             f"batch keeps one pair per query and per document, and the other pairs are its "
                             f"negatives), or hard negatives; got {queries} distinct queries and {docs} distinct "
                             f"documents in {len(pairs)} pairs of {data.name}")

    def make_batch(self, data, idx, augment, generator) -> dict:
        pairs = data.train
        keep, doc_ids = _unique_pairs(pairs, idx)
        anchors = [pairs.anchors[i] for i in keep]
        positives = [pairs.positives[i] for i in keep]
        batch = {"anchors": self.tokens(anchors), "positives": self.tokens(positives), "document_ids": doc_ids,
                 "index": torch.tensor(keep)}
        if self.hard_negatives and pairs.negatives is not None:
            taken, negatives = set(positives), []
            for i in keep:
                options = [t for t in pairs.negatives[i] if t not in taken]
                if options:
                    pick = torch.randperm(len(options), generator=generator)[: self.hard_negatives].tolist()
                    negatives += [options[j] for j in pick]
            negatives = list(dict.fromkeys(negatives))                     # one column per distinct text
            if negatives:
                batch["negatives"] = self.tokens(negatives)
            batch["negative_pool"] = True             # every rank then joins the negatives' gather
        return batch

    def split(self, batch: dict, size: int) -> list[dict]:
        """Chunks of at most `size` pairs for GradCache; the shared negatives are spread over the chunks."""
        n = batch["document_ids"].shape[0]
        starts = list(range(0, n, size))
        neg = batch.get("negatives")
        cuts = torch.arange(_rows(neg)).tensor_split(len(starts)) if neg is not None else None
        chunks = []
        for i, lo in enumerate(starts):
            c = {"anchors": _cut(batch["anchors"], lo, lo + size), "positives": _cut(batch["positives"], lo, lo + size),
                 "document_ids": batch["document_ids"][lo:lo + size]}
            if neg is not None:
                c["negatives"] = _cut(neg, int(cuts[i][0]) if len(cuts[i]) else 0,
                                      int(cuts[i][-1]) + 1 if len(cuts[i]) else 0)
            chunks.append(c)
        return chunks

    def embeddings(self, batch):
        q = self.encode(batch["anchors"])                                  # (B, D)
        d = self.encode(batch["positives"])                                # (B, D)
        if "negatives" not in batch:
            return q, d
        neg = batch["negatives"]
        return q, d, (self.encode(neg) if _rows(neg) else q[:0])          # (M, D); q[:0] keeps the graph

    def loss_from(self, embeddings, batch) -> StepOutput:
        q, d, *rest = embeddings
        n = rest[0] if rest else None
        if n is None and batch.get("negative_pool") and dist.world_size() > 1:
            n = q[:0]                                                      # (0, D): this rank has none
        if q.shape[0] < 2 and (n is None or not n.shape[0]) and dist.world_size() == 1:
            return StepOutput(_zero_loss(q, d), {"pairs": int(q.shape[0])})   # duplicates left one pair: skip
        loss = global_multiple_negatives_ranking(q, d, n, temperature=self.temperature, symmetric=self.symmetric,
                                                 document_ids=batch["document_ids"].to(q.device))
        metrics = {"alignment": float(alignment(F.normalize(q.detach(), dim=1), F.normalize(d.detach(), dim=1)))}
        if n is not None and n.shape[0]:
            metrics["hard_negatives"] = n.shape[0]
        return StepOutput(loss, metrics)


@register_method("simcse")
class SimCSE(_TextMethod):
    """Unsupervised SimCSE (Gao et al. 2021): each sentence twice through the encoder with different dropout (for
    the bag encoder, token dropout) is a positive pair; the batch's other sentences are negatives. Trains on the
    anchors (and the documents, with `documents=True`) of a pair dataset without using the pairing."""

    def __init__(self, encoder, *, feature_dim, num_classes=None, temperature: float = 0.05, documents: bool = True):
        super().__init__(encoder, feature_dim=feature_dim, num_classes=num_classes)
        self.temperature = _temperature(temperature)
        if not isinstance(documents, bool):
            raise ValueError(f"`documents` must be true or false, got {documents!r}")
        self.documents = documents

    def check_data(self, data) -> None:
        super().check_data(data)
        texts = set(data.train.anchors) | (set(data.train.positives) if self.documents else set())
        if len(texts) < 2:
            raise ValueError(f"method {self.name!r} needs at least 2 distinct sentences (the other sentences of a "
                             f"batch are the negatives), got {len(texts)} in {data.name}")

    def make_batch(self, data, idx, augment, generator) -> dict:
        pairs = data.train
        texts = [pairs.anchors[i] for i in idx.tolist()]
        if self.documents:                      # half the batch from each side, so both kinds of text are seen
            half = len(texts) // 2
            texts = texts[:half] + [pairs.positives[i] for i in idx[half:].tolist()]
        texts = list(dict.fromkeys(texts))
        return {"sentences": self.tokens(texts), "index": idx}

    def split(self, batch: dict, size: int) -> list[dict]:
        """Chunks of at most `size` sentences for GradCache."""
        return [{"sentences": _cut(batch["sentences"], lo, lo + size)}
                for lo in range(0, _rows(batch["sentences"]), size)]

    def embeddings(self, batch):
        z1 = self.encode(batch["sentences"])                               # (B, D), one dropout mask
        z2 = self.encode(batch["sentences"])                               # (B, D), another
        return z1, z2

    def loss_from(self, embeddings, batch) -> StepOutput:
        z1, z2 = embeddings
        if z1.shape[0] < 2 and dist.world_size() == 1:
            return StepOutput(_zero_loss(z1, z2), {"sentences": int(z1.shape[0])})   # one distinct sentence: skip
        loss = global_multiple_negatives_ranking(z1, z2, temperature=self.temperature, symmetric=False)
        return StepOutput(loss, {"alignment": float(alignment(F.normalize(z1.detach(), dim=1),
                                                              F.normalize(z2.detach(), dim=1)))})
