"""CLIP-style two-tower training on image–text data: an image tower and a text tower projected to one space.

Each step takes a batch of training images, draws one available language per image from ``languages`` (with the
step's generator), and pulls each image towards its name: the symmetric CLIP loss (Radford et al. 2021) with a
learnable, clamped temperature, or ``loss="sigmoid"`` (SigLIP, Zhai et al. 2023) with a learnable temperature and
bias. ``lock="image"`` / ``"text"`` freezes that tower (LiT, Zhai et al. 2022): its parameters get
``requires_grad=False`` and it stays in eval mode; its projection still trains.

>>> import torch
>>> from contrastlab.data.image_text import ImageTextData
>>> from contrastlab.models import create_encoder
>>> from contrastlab.models.text import TextTokenizer, create_text_encoder
>>> data = ImageTextData(name="toy", images=torch.randint(0, 256, (4, 3, 8, 8), dtype=torch.uint8),
...                      texts={"en": ["a cat", "a dog", "a cow", "a pig"]}, split=torch.tensor([0, 0, 0, 1]).bool(),
...                      ids=("c", "d", "w", "p"))
>>> tok = TextTokenizer.train(data.texts["en"], kind="words")
>>> towers = TwoTowers(create_encoder("small_cnn", in_channels=3), create_text_encoder("bag", tokenizer=tok, dim=8))
>>> m = CLIP(towers, feature_dim=towers.image.out_dim, embed_dim=16)
>>> batch = m.make_batch(data, torch.arange(3), None, torch.Generator().manual_seed(0))
>>> m(batch).loss.ndim, m.embed(data.images[:2].float() / 255).shape
(0, torch.Size([2, 16]))
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..losses.clip import LearnableTemperature, logistic
from ..losses.distributed import global_clip_loss
from .base import Method, StepOutput, register_method

__all__ = ["CLIP", "TwoTowers"]

LOSSES = ("clip", "sigmoid")
LOCKS = ("none", "image", "text")


class TwoTowers(nn.Module):
    """The two encoders of a two-tower model: ``image`` ((B, 3, H, W) float in [0, 1] -> (B, F)) and ``text``
    (a :class:`~contrastlab.models.text.TextEncoder`: token dict -> (B, D_text))."""

    def __init__(self, image: nn.Module, text: nn.Module):
        super().__init__()
        if not isinstance(image, nn.Module) or not isinstance(text, nn.Module):
            raise TypeError(f"`image` and `text` must be nn.Modules, got {type(image).__name__} and "
                            f"{type(text).__name__}")
        if not hasattr(text, "tokenize") or not isinstance(getattr(text, "out_dim", None), int):
            raise TypeError(f"`text` must be a TextEncoder (with tokenize() and an int out_dim), got "
                            f"{type(text).__name__}")
        self.image, self.text = image, text

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.image(x)


def _languages(value) -> tuple[str, ...]:
    if isinstance(value, str):
        value = value.split(",")
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"`languages` must be a comma list of language codes like 'en,es', got {value!r}")
    langs = tuple(dict.fromkeys(v.strip() for v in value if v.strip()))
    if not langs:
        raise ValueError(f"`languages` must name at least one language, got {value!r}")
    return langs


@register_method("clip")
class CLIP(Method):
    """Two-tower contrastive training (CLIP; SigLIP with ``loss="sigmoid"``; LiT with ``lock``).

    Hyperparameters: ``embed_dim`` (the shared space), ``loss`` ("clip" | "sigmoid"), ``temperature`` (initial;
    learnable), ``max_scale`` (clamp of the logit scale 1 / temperature), ``languages`` (comma list),
    ``lock`` ("none" | "image" | "text"), ``text_encoder`` (the text tower the task builds: "wordllama" (the
    default: wordllama's pretrained token table, fine-tuned unless ``lock="text"``), or one of ours trained from
    scratch on a tokenizer fitted to the training names: "bag", "cnn", "transformer"; or "hf:PATH" / "st:PATH").
    On the emoji data, 5 CPU-minutes at 16 px: wordllama 0.380 image -> name recall@10 on the held-out emoji
    (frozen: 0.354), bag 0.336.
    Shape: batch {"images": (B, 3, H, W) float, "tokens": {... (B, T)}}; embeddings (B, embed_dim) each.
    """

    modalities = ("image_text",)
    n_views = 1

    def __init__(self, encoder: TwoTowers, *, feature_dim: int, num_classes: int | None = None,
                 embed_dim: int = 128, loss: str = "clip", temperature: float = 0.07, max_scale: float = 100.0,
                 languages: str = "en", lock: str = "none", text_encoder: str = "wordllama"):
        super().__init__(encoder, feature_dim=feature_dim, num_classes=num_classes)
        if not isinstance(encoder, TwoTowers):
            raise TypeError(f"`encoder` must be a TwoTowers(image, text), got {type(encoder).__name__}")
        if isinstance(embed_dim, bool) or not isinstance(embed_dim, int) or embed_dim < 1:
            raise ValueError(f"`embed_dim` must be a positive int, got {embed_dim!r}")
        if loss not in LOSSES:
            raise ValueError(f"`loss` must be one of {list(LOSSES)}, got {loss!r}")
        if lock not in LOCKS:
            raise ValueError(f"`lock` must be one of {list(LOCKS)}, got {lock!r}")
        if not isinstance(text_encoder, str) or not text_encoder:
            raise ValueError(f"`text_encoder` must be a text encoder name, got {text_encoder!r}")
        self.languages = _languages(languages)
        self.loss_kind, self.lock, self.text_encoder_name = loss, lock, text_encoder
        self.image_proj = nn.Linear(feature_dim, embed_dim, bias=False)
        self.text_proj = nn.Linear(encoder.text.out_dim, embed_dim, bias=False)
        self.scale = LearnableTemperature(initial_temperature=temperature, max_scale=max_scale)
        if loss == "sigmoid":
            self.bias = nn.Parameter(torch.tensor(-10.0))              # SigLIP's initial bias
            self.bias._no_weight_decay = True
        self.tower_dim, self.feature_dim = feature_dim, embed_dim      # evaluation features: the shared space
        locked = self.locked_tower()
        if locked is not None:
            locked.requires_grad_(False)
            locked.eval()

    def locked_tower(self) -> nn.Module | None:
        return {"none": None, "image": self.encoder.image, "text": self.encoder.text}[self.lock]

    def train(self, mode: bool = True):
        super().train(mode)
        locked = self.locked_tower()
        if locked is not None:
            locked.eval()                                              # LiT: no dropout, frozen norm statistics
        return self

    def check_data(self, data) -> None:
        super().check_data(data)
        missing = [lang for lang in self.languages if lang not in data.texts]
        if missing:
            raise ValueError(f"`languages` must be languages of {data.name} ({', '.join(data.texts)}), "
                             f"got {missing[0]!r}")

    # -- batches ------------------------------------------------------------------------------------------
    def make_batch(self, data, idx, augment, generator) -> dict:
        """`idx` counts training examples (0 .. len(data) - 1); they are mapped to `data.train_indices()`, so a
        test image never enters a batch. Pairs whose name repeats an earlier pair's in the batch are dropped (the
        same text twice would be a false negative)."""
        rows = data.train_indices()[idx]                                       # (B,) into data.images
        pick = torch.randint(0, 1 << 30, (rows.shape[0],), generator=generator)
        keep, texts, seen = [], [], set()
        for i, r in zip(pick.tolist(), rows.tolist()):
            options = [lang for lang in self.languages if (data.texts[lang][r] or "").strip()]
            if not options:
                continue
            text = data.texts[options[i % len(options)]][r]
            if text in seen:
                continue
            seen.add(text)
            keep.append(r)
            texts.append(text)
        index = torch.tensor(keep, dtype=torch.int64)
        x = data.images[index]                                                 # (B, 3, H, W) uint8
        images = augment(x, generator=generator) if augment is not None else x.float().div(255)
        return {"images": images, "tokens": self.encoder.text.tokenize(texts), "index": index}

    # -- the two towers -----------------------------------------------------------------------------------
    def _device(self) -> torch.device:
        return self.image_proj.weight.device

    def image_features(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) float in [0, 1] -> (B, embed_dim), not normalised."""
        return self.image_proj(self.encoder.image(images.to(self._device())))

    def text_features(self, tokens: dict) -> torch.Tensor:
        """Tokenised texts -> (B, embed_dim), not normalised."""
        return self.text_proj(self.encoder.text({k: v.to(self._device()) for k, v in tokens.items()}))

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Image features in the shared space (what the monitor and `contrastlab.eval.embed` use)."""
        return self.image_features(x)

    @torch.no_grad()
    def embed_texts(self, texts: list[str], *, batch_size: int = 512) -> torch.Tensor:
        """Texts in the shared space, L2-normalised, in eval mode (the mode is restored). (N,) -> (N, embed_dim)."""
        was = self.training
        self.eval()
        try:
            out = [F.normalize(self.text_features(self.encoder.text.tokenize(list(texts[i:i + batch_size]))), dim=1)
                   for i in range(0, len(texts), batch_size)]
        finally:
            self.train(was)
        return torch.cat(out).cpu() if out else torch.zeros(0, self.feature_dim)

    # -- the loss -----------------------------------------------------------------------------------------
    def embeddings(self, batch):
        return self.image_features(batch["images"]), self.text_features(batch["tokens"])   # (B, E), (B, E)

    def split(self, batch: dict, size: int) -> list[dict]:
        n = batch["images"].shape[0]
        return [{"images": batch["images"][lo:lo + size],
                 "tokens": {k: v[lo:lo + size] for k, v in batch["tokens"].items()}} for lo in range(0, n, size)]

    def loss_from(self, embeddings, batch) -> StepOutput:
        zi, zt = embeddings
        scale = self.scale()                                                   # clamped to max_scale
        if self.loss_kind == "clip":
            loss = global_clip_loss(zi, zt, logit_scale=scale)
            metrics = {"temperature": float(1.0 / scale.detach())}
        else:
            loss = logistic(zi, zt, temperature=1.0 / scale, bias=self.bias)
            metrics = {"temperature": float(1.0 / scale.detach()), "bias": float(self.bias.detach())}
        return StepOutput(loss, metrics)

    def forward(self, batch) -> StepOutput:
        return self.loss_from(self.embeddings(batch), batch)
