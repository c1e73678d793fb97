"""What the trainer needs to know about one kind of data, behind one small interface (a registry by modality).

A task builds the encoder for its data, says which views to make, and runs the online monitor (a progress signal
on a fixed probe subset, plus the embedding snapshot the dashboard shows). The trainer itself never branches on the
kind of data or on the method.

* :class:`ImageTask`: images (`ImageData`): a CNN, augmented views, kNN of probe test images against a bank of
  training images, alignment and uniformity of two views.
* :class:`TextTask`: text pairs (`TextData`): a tokenizer fitted on the training text (saved as
  `RUN/tokenizer.json`), a text encoder, and recall@1 / MRR@10 of probe test queries against their documents and
  distractors.
* :class:`ImageTextTask`: images with names (`ImageTextData`): an image tower and a text tower (tokenizer fitted on
  the training names of all languages), and image -> English-name recall on the held-out images.
"""
from __future__ import annotations

import torch
from torch import nn

from ..devices import to_host
from ..methods import create_method
from ..rundir import TOKENIZER, RunDir
from .seeding import generator as _generator
from .task_base import TASKS, _Features, _fits_in_memory, _start_encoder, _Task, register_task  # noqa: F401

__all__ = ["ImageTask", "TextTask", "ImageTextTask", "TASKS", "data_modality", "load_data"]

_AUGMENT_FOR = {"fashion-mnist": "fashion-mnist", "digits": "digits"}   # other images: by channel count
DEFAULT_MAX_LENGTH = 64       # tokens per text of a tokenizer fitted here, when `max_length` is None
MIN_TRAIN_SIZE = 4             # pixels: crops, flips and blur of smaller images are meaningless (image_size >= 4 too)


def data_modality(spec: str) -> str:
    """The modality ("image", "text", "image_text", ...) of the dataset `spec` names, from its entry in the one
    dataset registry; a spec no dataset claims is a ValueError listing them all by modality."""
    from ..data.registry import dataset_modality
    return dataset_modality(spec)


def _unknown_data(spec: str, method: str) -> None:
    """When no dataset claims `spec`, raise the registry's error with the datasets of the kind `method` trains on
    listed first, so `train pairs --data garbage` names the text datasets."""
    from ..data.registry import resolve_dataset
    from ..methods import METHODS
    resolve_dataset(spec, modality=getattr(METHODS.get(method), "modalities", ("image",))[0])


def load_data(config):
    """The data a configuration names, of any kind (image-text data: `image_size` is the loader's `size`)."""
    _unknown_data(config.data, config.method)
    kind = data_modality(config.data)
    own = getattr(TASKS.get(kind), "load", None)           # a task that loads its own data (sequences)
    if own is not None:
        return own(config)
    if kind == "image_text":
        from ..data.image_text import load_image_text
        options = dict(config.data_options)
        if config.image_size is not None:
            options.setdefault("size", config.image_size)
        return load_image_text(config.data, **options)
    if kind == "text":
        from ..data import load_text
        return load_text(config.data, **config.data_options)
    from ..data import load_images
    if config.data_options:
        raise ValueError(f"`data_options` are for text data; {config.data!r} is image data, got {config.data_options}")
    return load_images(config.data, image_size=config.image_size, stream=config.stream)


# ------------------------------------------------------------------------------------------------------ images
def view_geometry(features: nn.Module, augment, x: torch.Tensor, *, generator: torch.Generator) -> dict:
    """Alignment and uniformity (Wang & Isola 2020) of two augmented views of the uint8 images `x`, augmented
    batch by batch inside `embed` (no extra copy of the views, no uint8 round trip)."""
    from ..eval import embed, geometry
    za, zb = (embed(features, x, normalize=True, transform=lambda xb: augment(xb, generator=generator))
              for _ in range(2))
    return geometry(za, zb)


def channel_stats(x, *, sample: int = 10_000, chunk: int = 256) -> tuple[list[float], list[float]]:
    """Per-channel mean and std (unbiased, at least 1e-3) of uint8 images (N, C, H, W), in [0, 1] units, from the
    first `sample` images. Exact: a histogram of the 256 values per channel is counted `chunk` images at a time, so
    the numbers are the same for images in memory and streamed from disk, in a few chunks' memory.

    >>> x = torch.tensor([0, 255], dtype=torch.uint8).view(2, 1, 1, 1)
    >>> channel_stats(x)                     # mean 0.5, std of {0, 1} with n - 1 = 1: sqrt(0.5)
    ([0.5], [0.7071067811865476])
    """
    from ..data.stream import batches, take
    n, c = min(len(x), sample), x.shape[1]
    counts = torch.zeros(c, 256, dtype=torch.int64)                  # (C, 256) pixels of each value
    for xb in batches(take(x, slice(0, n)), chunk):                  # (b, C, H, W) uint8
        for k in range(c):
            counts[k] += torch.bincount(xb[:, k].reshape(-1), minlength=256)
    values = torch.arange(256, dtype=torch.float64) / 255
    total = counts[0].sum().item()
    mean = (counts * values).sum(1) / total                         # (C,)
    var = (counts * (values - mean[:, None]).square()).sum(1) / max(total - 1, 1)
    return mean.tolist(), var.sqrt().clamp(min=1e-3).tolist()


@register_task("image")
class ImageTask(_Task):
    @staticmethod
    @_fits_in_memory
    def build(config, data, run_dir):
        """(method, model_info, make_encoder) for image data."""
        from ..data.limits import check_image_bytes
        from ..methods import METHODS
        from ..models import create_encoder, feature_dim
        h, w = data.image_size
        if min(h, w) < MIN_TRAIN_SIZE:
            raise ValueError(f"images must be at least {MIN_TRAIN_SIZE}x{MIN_TRAIN_SIZE} pixels to train on, got "
                             f"{h}x{w} in {data.name} (random crops, flips and blur of smaller images are "
                             f"meaningless); use larger images, or resize them with `--set image_size=N` (N >= "
                             f"{MIN_TRAIN_SIZE}) where upsampling makes sense")
        views = config.batch_size * getattr(METHODS.get(config.method), "n_views", 2)
        check_image_bytes("`image_size`" if config.image_size is not None else f"{data.name}: the images",
                          n=views, channels=data.channels, size=(h, w), bytes_per_value=4, what="views in a batch",
                          setting="`image_size`")
        mean, std = channel_stats(data.x)
        name = "small_cnn" if config.encoder == "auto" else config.encoder

        def make_encoder():
            return create_encoder(name, in_channels=data.channels, mean=mean, std=std, **config.encoder_options)
        encoder = _start_encoder(make_encoder(), config)
        fdim = feature_dim(encoder, in_channels=data.channels, image_size=tuple(data.x.shape[2:]))
        method = create_method(config.method, encoder, feature_dim=fdim, num_classes=data.num_classes,
                               **config.hyperparameters)
        info = {"encoder": name, "options": dict(config.encoder_options), "in_channels": data.channels,
                "image_size": list(data.x.shape[2:]), "feature_dim": fdim, "mean": mean, "std": std,
                "parameters": sum(p.numel() for p in method.parameters())}
        return method, info, make_encoder

    def default_augment(self):
        from ..views import preset
        cfg, data = self.trainer.config, self.trainer.data
        name = cfg.augment
        if name == "auto":
            name = _AUGMENT_FOR.get(data.name, "gray" if data.channels == 1 else "simclr")
        return preset(name, strength=cfg.strength)

    def _setup_probe(self) -> None:
        from ..data import probe_subset, thumbnails
        from ..data.stream import take
        t = self.trainer
        d, cfg = t.data, t.config
        on_test = d.x_test is not None
        probe = probe_subset(d, size=cfg.probe_size, seed=cfg.seed)
        xs, ys = (d.x_test, d.y_test) if on_test else (d.x, d.y)
        self._probe = (xs[probe], ys[probe] if ys is not None else None)
        bank = torch.randperm(d.x.shape[0], generator=_generator(cfg.seed, 3))
        if not on_test:
            bank = bank[~torch.isin(bank, probe)]
        bank = bank[: cfg.monitor_bank]
        # no test split and a probe of every image (labels all distinct, a small file): no bank, no online kNN
        self._bank = (take(d.x, bank) if len(bank) else d.x[bank], d.y[bank] if d.y is not None and len(bank) else None)
        if not t.run.probe_file.exists():
            labels = self._probe[1] if self._probe[1] is not None else torch.full((len(probe),), -1)
            t.run.write_probe(ids=probe.numpy(), labels=labels.numpy(),
                              thumbnails=thumbnails(self._probe[0], size=min(28, d.x.shape[-1])).numpy(),
                              classes=d.classes)

    def monitor_features(self, method):
        from ..eval import embed
        if self._probe is None:
            self._setup_probe()
        feats = _Features(method)
        probe = embed(feats, self._probe[0], normalize=True)
        bank = embed(feats, self._bank[0], normalize=True) if self._bank[1] is not None else None
        return probe, bank

    def monitor(self, method) -> tuple[dict, torch.Tensor]:
        """Online kNN of the probe against the bank, and view geometry; returns (record, probe embeddings)."""
        from ..eval import knn_top1
        probe, bank = self.monitor_features(method)
        record = {}
        if bank is not None and self._probe[1] is not None:
            record["knn_top1"] = knn_top1(bank, self._bank[1], probe, self._probe[1], k=20, temperature=0.1)
        record.update(view_geometry(_Features(method), self.trainer.augment, self._probe[0],
                                    generator=_generator(self.trainer.config.seed, 4)))
        return record, probe


# -------------------------------------------------------------------------------------------------------- text
def tokenizer_for(config, texts_of, run_dir, *, kind: str = "bpe"):
    """The run's tokenizer: `RUN/tokenizer.json` when the run has one (resume), else fitted on the training texts
    `texts_of()` returns (called only then). `kind` is used when `config.tokenizer` is "auto"."""
    from ..io import atomic_write_bytes
    from ..models.text import TextTokenizer
    path = RunDir(run_dir).tokenizer_file
    if path.exists():
        return TextTokenizer.from_json(path.read_text())
    tok = TextTokenizer.train(texts_of(), kind=kind if config.tokenizer == "auto" else config.tokenizer,
                              vocab_size=config.vocab_size,
                              max_length=DEFAULT_MAX_LENGTH if config.max_length is None else config.max_length)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, tok.to_json().encode())
    return tok


@register_task("text")
class TextTask(_Task):
    @staticmethod
    def prepare(config, data, *, first_stage=None):
        if config.mine == "none":
            return data
        import dataclasses

        from ..text.mining import mine_hard_negatives
        if config.mine != "bm25" and first_stage is None:
            raise ValueError(f"`mine` names a run directory ({config.mine!r}): the trainer needs its embedder, "
                             f"built by the caller: `Trainer.from_config(config, run, first_stage="
                             f"contrastlab.runs.load_run({config.mine!r}).embedder())` (`contrastlab train` does this)")
        by = "bm25" if config.mine == "bm25" else first_stage
        train, stats = mine_hard_negatives(data.train, by=by, count=config.mine_count, show_progress=True)
        note = (f"mined up to {config.mine_count} hard negatives per pair with {stats['by']}: {stats['mined']} "
                f"kept, {stats['false_negatives_left_out']} likely false negatives left out (score >= 0.95 x the "
                f"positive's)")
        return dataclasses.replace(data, train=train, notes=list(data.notes) + [note])

    @staticmethod
    @_fits_in_memory
    def build(config, data, run_dir):
        from ..models.text.external import TEXT_ENCODER_LOADERS, load_text_encoder_from
        from ..text.embedder import text_encoder_from_config
        from .model_folder import build_external_encoder, run_model_spec
        own = config.encoder.partition(":")[0] not in TEXT_ENCODER_LOADERS     # not wordllama / hf: / st:
        tok = tokenizer_for(config, data.train.texts, run_dir, kind=getattr(data, "tokenizer", "bpe")) if own else None
        name = ("bag" if config.encoder == "auto" else config.encoder)
        kept = {}
        if own:
            def make_encoder():
                return text_encoder_from_config(config, tokenizer=tok)
            encoder = make_encoder()
        else:                                  # st:/hf: models: their folder kept in RUN/model, rebuilt from there
            def make_encoder():
                return load_text_encoder_from(run_model_spec(config, run_dir), max_length=config.max_length)
            encoder, kept = build_external_encoder(config, run_dir)
        num_classes = len(data.classes) if data.classes else None
        method = create_method(config.method, encoder, feature_dim=encoder.out_dim, num_classes=num_classes,
                               **config.hyperparameters)
        info = {"encoder": name, "options": dict(config.encoder_options), "modality": "text",
                "tokenizer": {"kind": type(tok.tokenizer.model).__name__, "vocab_size": tok.vocab_size,
                              "max_length": tok.max_length, "file": TOKENIZER} if tok else "the model's own",
                "feature_dim": encoder.out_dim, "parameters": sum(p.numel() for p in method.parameters()), **kept}
        return method, info, make_encoder

    def _setup_probe(self) -> None:
        """Probe: up to `probe_size` test queries (a fixed sample); their relevant documents plus up to
        `monitor_bank` other test documents are the candidates."""
        t = self.trainer
        test, cfg = t.data.test, t.config
        if test is None:
            self._probe = ()
            return
        g = _generator(cfg.seed, 3)
        q = torch.randperm(len(test.queries), generator=g)[: cfg.probe_size].tolist()
        docs = sorted({d for i in q for d in test.relevant[i]})
        others = [d for d in torch.randperm(len(test.corpus), generator=g)[: cfg.monitor_bank + len(docs)].tolist()
                  if d not in set(docs)][: cfg.monitor_bank]
        candidates = docs + others
        where = {d: j for j, d in enumerate(candidates)}
        self._probe = ([test.queries[i] for i in q], [test.corpus[d] for d in candidates],
                       [[where[d] for d in test.relevant[i]] for i in q])
        if not t.run.probe_file.exists():
            labels = test.query_labels[q] if test.query_labels is not None else [-1] * len(q)
            t.run.write_probe(ids=q, labels=labels, thumbnails=None, classes=t.data.classes,
                              texts=self._probe[0])

    def monitor_features(self, method):
        from ..models.text import encode_texts
        if self._probe is None:
            self._setup_probe()
        if not self._probe:
            return None, None
        return (encode_texts(method.encoder, self._probe[0]), encode_texts(method.encoder, self._probe[1]))

    def monitor(self, method) -> tuple[dict, torch.Tensor | None]:
        from ..eval.retrieval import rank, retrieval_metrics
        from ..losses.geometry import alignment, uniformity
        queries, docs = self.monitor_features(method)
        if queries is None:
            return {}, None
        relevant = self._probe[2]
        m = retrieval_metrics(rank(queries, docs, k=10), relevant, ks=(1, 10))
        first = torch.tensor([r[0] for r in relevant])
        record = {"recall@1": m["recall@1"], "mrr@10": m["mrr@10"],
                  "alignment": float(alignment(queries, docs[first])), "uniformity": float(uniformity(queries))}
        return record, queries


# -------------------------------------------------------------------------------------------------- image-text
def training_names(data) -> list[str]:
    """Every non-blank training text of every language (the text tower's tokenizer is fitted on these only)."""
    train = data.train_indices().tolist()
    return [t for values in data.texts.values() for i in train if (t := values[i]) is not None and t.strip()]


@register_task("image_text")
class ImageTextTask(_Task):
    """Two towers (image: `config.encoder`, small_cnn by default; text: the method's `text_encoder`, bag by
    default, on a BPE tokenizer saved as `RUN/tokenizer.json`); the monitor ranks the English names of the
    held-out images for each held-out image (recall@1 / @10)."""

    @staticmethod
    @_fits_in_memory
    def build(config, data, run_dir):
        from ..methods import TwoTowers, method_hyperparameters
        from ..models import create_encoder, feature_dim
        from ..models.text import create_text_encoder
        from ..models.text.external import TEXT_ENCODER_LOADERS, load_text_encoder_from
        hp = {**method_hyperparameters(config.method), **config.hyperparameters}
        text_name = hp.get("text_encoder", "bag")
        mean, std = channel_stats(data.images[data.train_indices()])
        name = "small_cnn" if config.encoder == "auto" else config.encoder

        def make_encoder():
            return create_encoder(name, in_channels=3, mean=mean, std=std, **config.encoder_options)
        image = make_encoder()
        fdim = feature_dim(image, in_channels=3, image_size=tuple(data.images.shape[2:]))
        external = text_name.partition(":")[0] in TEXT_ENCODER_LOADERS
        tok = None if external else tokenizer_for(config, lambda: training_names(data), run_dir)
        text = (load_text_encoder_from(text_name, trainable=hp.get("lock") != "text") if external   # LiT: lock
                else create_text_encoder(text_name, tokenizer=tok))
        num_classes = len(data.classes) if data.classes else None
        method = create_method(config.method, TwoTowers(image, text), feature_dim=fdim, num_classes=num_classes,
                               **config.hyperparameters)
        info = {"encoder": name, "options": dict(config.encoder_options), "modality": "image_text",
                "in_channels": 3, "image_size": list(data.images.shape[2:]), "feature_dim": fdim, "mean": mean,
                "std": std, "text_encoder": text_name,
                "tokenizer": {"kind": type(tok.tokenizer.model).__name__, "vocab_size": tok.vocab_size,
                              "max_length": tok.max_length, "file": TOKENIZER} if tok else "the model's own",
                "parameters": sum(p.numel() for p in method.parameters())}
        return method, info, make_encoder

    def default_augment(self):
        """Random resized crop only, area 0.25-1: no colour jitter (an emoji's colour is part of its meaning) and
        no flip (a flipped arrow means the other direction). Measured on the held-out emoji (image -> name
        recall@10, 3 CPU-minutes at 16 px): no augmentation 0.263, area 0.8-1 0.361, 0.5-1 0.380, 0.25-1 0.405;
        adding brightness/contrast jitter and blur to 0.5-1 gave 0.358."""
        from ..views import Augment, preset
        cfg = self.trainer.config
        if cfg.augment != "auto":
            return preset(cfg.augment, strength=cfg.strength)
        return Augment(crop_scale=(0.25, 1.0), flip_p=0.0, jitter_p=0.0, brightness=0.0, contrast=0.0,
                       saturation=0.0, hue=0.0, grayscale_p=0.0, blur_p=0.0)

    def _setup_probe(self) -> None:
        from ..data import thumbnails
        t = self.trainer
        d, cfg = t.data, t.config
        test = d.test_indices()
        names = d.texts.get("en") or next(iter(d.texts.values()))
        keep = [i for i in test.tolist() if (names[i] or "").strip()][: cfg.probe_size]
        probe = torch.tensor(keep, dtype=torch.int64)
        texts = [names[i] for i in keep]
        first = {}
        for j, s in enumerate(texts):
            first.setdefault(s, []).append(j)
        self._probe = (d.images[probe], texts, [first[s] for s in texts])     # same name: every copy relevant
        if not t.run.probe_file.exists():                      # rows: P images, then their P names
            n = len(keep)
            labels = d.labels[probe] if d.labels is not None else torch.full((n,), -1)
            t.run.write_probe(ids=probe.repeat(2).numpy(), labels=labels.repeat(2).numpy(), classes=d.classes,
                              texts=texts + texts, modality=[0] * n + [1] * n,
                              pair=list(range(n, 2 * n)) + list(range(n)),
                              thumbnails=thumbnails(self._probe[0], size=min(28, d.images.shape[-1])).numpy())

    def monitor_features(self, method):
        from ..eval import embed
        if self._probe is None:
            self._setup_probe()
        if not self._probe[1]:
            return None, None
        return embed(_Features(method), self._probe[0], normalize=True), method.embed_texts(self._probe[1])

    def monitor(self, method) -> tuple[dict, torch.Tensor | None]:
        from ..eval.retrieval import rank, retrieval_metrics
        images, texts = self.monitor_features(method)
        if images is None:
            return {}, None
        m = retrieval_metrics(rank(images, texts, k=10), self._probe[2], ks=(1, 10))
        return {"recall@1": m["recall@1"], "recall@10": m["recall@10"],
                "temperature": method.scale.temperature}, torch.cat([to_host(images), to_host(texts)])  # (2P, E)


from . import sequence_task  # noqa: E402,F401  (registers the "sequence" task; it builds on the classes above)
