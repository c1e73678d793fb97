"""An embedder: strings in, L2-normalised float32 vectors out. What the index and the search API call.

`contrastlab.search.load_embedder(source)` gives one for a text run directory or a model spec (``"wordllama"``,
``"hf:PATH"``, ``"st:PATH"``); `contrastlab.runs.load_run(run).embedder()` for any run.

>>> import torch
>>> from contrastlab.models.text import TextTokenizer, create_text_encoder
>>> enc = create_text_encoder("bag", tokenizer=TextTokenizer.train(["a b", "b c"] * 3, kind="words"), dim=8)
>>> e = Embedder(enc, source="toy")
>>> v = e.encode(["a b", "c"])
>>> v.shape, v.dtype.name, round(float((v ** 2).sum(1)[0]), 4)
((2, 8), 'float32', 1.0)
"""
from __future__ import annotations

import threading

import numpy as np
import torch

from ..models.text import TextEncoder, encode_texts

__all__ = ["Embedder", "text_encoder_from_config"]


class Embedder:
    """A text encoder: strings in, (N, dim) float32 unit rows out (`encode_texts`, also `encode`)."""

    modality = "text"

    def __init__(self, encoder: TextEncoder, *, source: str):
        if not isinstance(encoder, TextEncoder):
            raise TypeError(f"`encoder` must be a TextEncoder, got {type(encoder).__name__}")
        self.encoder = encoder.eval()
        self.source = source
        self.dim = int(encoder.out_dim)
        self._lock = threading.Lock()

    def encode_texts(self, texts: list[str], *, batch_size: int = 256) -> np.ndarray:
        """(N,) strings -> (N, dim) float32, unit rows. Thread-safe (one call at a time)."""
        with self._lock, torch.inference_mode():
            return encode_texts(self.encoder, list(texts), batch_size=batch_size).numpy().astype(np.float32)

    encode = encode_texts

    def __repr__(self) -> str:
        return f"Embedder(source={self.source!r}, dim={self.dim})"


def text_encoder_from_config(config, *, tokenizer=None) -> TextEncoder:
    """The text encoder a `TrainConfig` names: a bring-your-own spec ("wordllama", "hf:PATH", "st:PATH") or one of
    ours ("bag", "cnn", "transformer"; "auto" is "bag") built on `tokenizer`."""
    from ..models.text import create_text_encoder
    from ..models.text.external import TEXT_ENCODER_LOADERS, load_text_encoder_from
    if config.encoder.partition(":")[0] in TEXT_ENCODER_LOADERS:
        return load_text_encoder_from(config.encoder)
    name = "bag" if config.encoder == "auto" else config.encoder
    return create_text_encoder(name, tokenizer=tokenizer, **config.encoder_options)
