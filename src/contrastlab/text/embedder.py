"""An embedder: strings in, L2-normalised float32 vectors out. What the index and the search API call.

`load_embedder(source)` accepts a text run directory (its tokenizer, encoder and last checkpoint; the training data
is not needed), or a frozen / bring-your-own model spec: ``"wordllama"``, ``"hf:PATH"``, ``"st:PATH"``. An
image-text run directory gives its two towers (`contrastlab.search.multimodal.ImageTextEmbedder`: `encode` for
texts, `encode_images` for images).

>>> import torch
>>> from contrastlab.models.text import TextTokenizer, create_text_encoder
>>> enc = create_text_encoder("bag", tokenizer=TextTokenizer.train(["a b", "b c"] * 3, kind="words"), dim=8)
>>> e = Embedder(enc, source="toy")
>>> v = e.encode(["a b", "c"])
>>> v.shape, v.dtype.name, round(float((v ** 2).sum(1)[0]), 4)
((2, 8), 'float32', 1.0)
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..models.text import TextEncoder, encode_texts

__all__ = ["Embedder", "load_embedder", "text_encoder_from_config"]


class Embedder:
    def __init__(self, encoder: TextEncoder, *, source: str):
        if not isinstance(encoder, TextEncoder):
            raise TypeError(f"`encoder` must be a TextEncoder, got {type(encoder).__name__}")
        self.encoder = encoder.eval()
        self.source = source
        self.dim = int(encoder.out_dim)
        self._lock = __import__("threading").Lock()

    def encode(self, texts: list[str], *, batch_size: int = 256) -> np.ndarray:
        """(N,) strings -> (N, dim) float32, unit rows. Thread-safe (one call at a time)."""
        with self._lock, torch.inference_mode():
            return encode_texts(self.encoder, list(texts), batch_size=batch_size).numpy().astype(np.float32)

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


def _from_run(path: Path):
    from ..io import load_checkpoint, read_json
    from ..models.text import TextTokenizer
    from ..train.config import TrainConfig
    cfg = read_json(path / "config.json")
    if cfg.get("model", {}).get("modality") == "image_text":
        from ..search.multimodal import load_image_text_embedder
        return load_image_text_embedder(path)
    if cfg.get("model", {}).get("modality") != "text":
        raise ValueError(f"{path} is not a text run (its config.json has no text model); train one with a text "
                         f"dataset, e.g. `contrastlab train pairs --data verses-en-es`")
    config = TrainConfig.from_dict(cfg["train"])
    tok_file = path / "tokenizer.json"
    tok = TextTokenizer.from_json(tok_file.read_text()) if tok_file.exists() else None
    encoder = text_encoder_from_config(config, tokenizer=tok)
    ckpt = path / "checkpoints" / "last.pt"
    state = load_checkpoint(ckpt, required=("method",))["method"]
    weights = {k[len("encoder."):]: v for k, v in state.items() if k.startswith("encoder.")}
    try:
        encoder.load_state_dict(weights)
    except RuntimeError as e:
        raise ValueError(f"{ckpt} does not match the run's encoder ({str(e).splitlines()[0]})") from None
    return Embedder(encoder, source=str(path.resolve()))


def load_embedder(source: str | Path):
    """An :class:`Embedder` from a text run directory or a model spec ("wordllama", "hf:PATH", "st:PATH"); an
    `ImageTextEmbedder` (texts and images) from an image-text run directory."""
    from ..models.text.external import TEXT_ENCODER_LOADERS, load_text_encoder_from
    text = str(source)
    path = Path(text)
    if (path / "config.json").exists():
        return _from_run(path)
    if text.partition(":")[0] in TEXT_ENCODER_LOADERS:
        return Embedder(load_text_encoder_from(text), source=text)
    if path.exists():
        raise ValueError(f"`source` {text!r} is a path but not a run directory (no config.json)")
    raise ValueError(f"`source` must be a text run directory or one of 'wordllama', 'hf:PATH', 'st:PATH', got {text!r}")
