"""What search indexes and queries with: a run's encoders as L2-normalised float32 vectors.

`Run.embedder()` (`contrastlab.runs.load_run`) gives one of these, by what the run embeds: `TextEmbedder` (texts),
`ImageEmbedder` (images: the method's evaluation feature h, not the projection head) or `TwoTowerEmbedder` (both,
in an image-text run's shared space). Texts: `encode_texts(list[str]) -> (N, D)` (also `encode`, as the index and
the search API call it; `TextEmbedder` is `contrastlab.text.embedder.Embedder`); images: `encode_images(uint8 (N, C, H, W)) -> (N, D)`. Each is thread-safe (one call at a
time) and runs in inference mode on the model's device.

>>> from contrastlab.models.text import TextTokenizer, create_text_encoder
>>> enc = create_text_encoder("bag", tokenizer=TextTokenizer.train(["a b", "b c"] * 3, kind="words"), dim=8)
>>> v = TextEmbedder(enc, source="toy").encode_texts(["a b", "c"])
>>> v.shape, v.dtype.name, round(float((v ** 2).sum(1)[0]), 4)
((2, 8), 'float32', 1.0)
"""
from __future__ import annotations

import threading

import numpy as np
import torch
import torch.nn.functional as F

from ..devices import module_device, to_host
from ..text.embedder import Embedder as TextEmbedder

__all__ = ["TextEmbedder", "ImageEmbedder", "TwoTowerEmbedder"]


def _check_images(images, shape: tuple[int, int, int]) -> torch.Tensor:
    x = torch.as_tensor(np.asarray(images))
    if x.dtype != torch.uint8 or x.ndim != 4 or tuple(x.shape[1:]) != tuple(shape):
        raise ValueError(f"`images` must be (N, {shape[0]}, {shape[1]}, {shape[2]}) uint8 (the run's image size), "
                         f"got {x.dtype} {tuple(x.shape)}")
    return x


def _embed_images(embed, x: torch.Tensor, *, device, dim: int, batch_size: int) -> np.ndarray:
    """`embed` ((B, C, H, W) float in [0, 1] -> (B, D)) over uint8 `x` (N, C, H, W) -> (N, D) float32 unit rows."""
    out = []
    with torch.inference_mode():
        for i in range(0, len(x), batch_size):
            xb = x[i:i + batch_size].to(device).float().div_(255)              # (b, C, H, W), as eval.embed
            out.append(to_host(F.normalize(embed(xb).float(), dim=1)))       # (b, D)
    return (torch.cat(out) if out else torch.zeros(0, dim)).numpy().astype(np.float32)


class ImageEmbedder:
    """An image method's evaluation features (`method.embed`: the encoder's h, not the projection), unit rows."""

    modality = "image"

    def __init__(self, method, *, image_shape: tuple[int, int, int], source: str):
        if not hasattr(method, "embed"):
            raise TypeError(f"`method` must have embed(), got {type(method).__name__}")
        self.method = method.eval()
        self.image_shape = tuple(int(s) for s in image_shape)                    # (C, H, W)
        self.image_size = self.image_shape[1:]
        self.source = source
        self.dim = int(method.feature_dim)
        self._lock = threading.Lock()

    def encode_images(self, images, *, batch_size: int = 256) -> np.ndarray:
        """(N, C, H, W) uint8 pixels at the run's size -> (N, dim) float32 unit rows."""
        x = _check_images(images, self.image_shape)
        with self._lock:
            self.method.eval()
            return _embed_images(self.method.embed, x, device=module_device(self.method), dim=self.dim,
                                 batch_size=batch_size)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(source={self.source!r}, dim={self.dim}, image_shape={self.image_shape})"


class TwoTowerEmbedder(ImageEmbedder):
    """Both towers of an image-text run, in their shared space: `encode_texts` (the text tower) and
    `encode_images` (the image tower)."""

    modality = "image_text"

    def __init__(self, method, *, image_size: tuple[int, int], source: str):
        if not (hasattr(method, "embed") and hasattr(method, "embed_texts")):
            raise TypeError(f"`method` must be a two-tower method with embed() and embed_texts(), got "
                            f"{type(method).__name__}")
        super().__init__(method, image_shape=(3, *image_size), source=source)

    def encode_texts(self, texts: list[str], *, batch_size: int = 256) -> np.ndarray:
        """(N,) strings -> (N, dim) float32 unit rows, by the text tower."""
        with self._lock:
            return to_host(self.method.embed_texts(list(texts), batch_size=batch_size)).numpy().astype(np.float32)

    encode = encode_texts
