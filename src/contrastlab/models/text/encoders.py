"""Small text encoders that train on a CPU in minutes, and their registry.

* ``bag``: mean of subword embeddings plus hashed subword bigrams (fastText-style, Joulin et al. 2017) with token
  dropout as the noise SimCSE needs. The fastest by far; strong for retrieval by topic and for word translation.
* ``cnn``: 1-D convolutions over subword embeddings (Kim 2014), max- and mean-pooled.
* ``transformer``: a tiny Transformer encoder (Vaswani et al. 2017) with mean pooling.

All take a fitted :class:`~contrastlab.models.text.tokenizer.TextTokenizer` and follow the
:class:`~contrastlab.models.text.base.TextEncoder` interface.

>>> from contrastlab.models.text import TextTokenizer, create_text_encoder, encode_texts
>>> tok = TextTokenizer.train(["a red fox", "a blue hen"] * 5, kind="words")
>>> enc = create_text_encoder("bag", tokenizer=tok, dim=16)
>>> encode_texts(enc, ["a red fox", "a hen"]).shape
torch.Size([2, 16])
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .base import TextEncoder
from .tokenizer import TextTokenizer

__all__ = ["BagOfEmbeddings", "TextCNN", "TinyTransformer", "TEXT_ENCODERS", "create_text_encoder",
           "list_text_encoders"]

TEXT_ENCODERS: dict[str, type] = {}


def register_text_encoder(name: str):
    def deco(cls):
        if name in TEXT_ENCODERS:
            raise ValueError(f"text encoder {name!r} is already registered")
        TEXT_ENCODERS[name] = cls
        return cls
    return deco


def list_text_encoders() -> list[str]:
    return sorted(TEXT_ENCODERS)


def create_text_encoder(name: str, *, tokenizer: TextTokenizer, **options) -> TextEncoder:
    if name not in TEXT_ENCODERS:
        raise ValueError(f"`encoder` must be one of {list_text_encoders()} for text data, got {name!r}")
    return TEXT_ENCODERS[name](tokenizer, **options)


def _check(name: str, value, *, low: float, high: float | None = None, integer: bool = True):
    ok = isinstance(value, int) and not isinstance(value, bool) if integer else isinstance(value, (int, float))
    if not ok or value < low or (high is not None and value > high):
        rule = f">= {low}" if high is None else f"in [{low}, {high}]"
        raise ValueError(f"`{name}` must be {'an int' if integer else 'a number'} {rule}, got {value!r}")


class _Subwords(TextEncoder):
    """Shared parts: the tokenizer, a subword embedding table and token dropout."""

    def __init__(self, tokenizer: TextTokenizer, *, dim: int, token_dropout: float):
        super().__init__()
        if not isinstance(tokenizer, TextTokenizer):
            raise TypeError(f"`tokenizer` must be a TextTokenizer, got {type(tokenizer).__name__}")
        _check("dim", dim, low=2)
        _check("token_dropout", token_dropout, low=0.0, high=0.9, integer=False)
        self.tokenizer = tokenizer
        self.token_dropout = float(token_dropout)
        self.embed = nn.Embedding(tokenizer.vocab_size, dim, padding_idx=0)
        nn.init.normal_(self.embed.weight, std=dim ** -0.5)
        with torch.no_grad():
            self.embed.weight[0].zero_()

    def tokenize(self, texts: list[str]) -> dict[str, torch.Tensor]:
        ids, mask = self.tokenizer.encode(texts)
        return {"ids": ids, "mask": mask}

    def _drop(self, mask: torch.Tensor) -> torch.Tensor:
        """In training, hide each token with probability `token_dropout` (never all tokens of a text)."""
        if not self.training or self.token_dropout == 0:
            return mask
        keep = mask & (torch.rand(mask.shape, device=mask.device) >= self.token_dropout)
        empty = ~keep.any(1)
        return torch.where(empty[:, None], mask, keep)


def _masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """(B, L, D), (B, L) -> (B, D)"""
    m = mask.unsqueeze(-1).to(x.dtype)
    return (x * m).sum(1) / m.sum(1).clamp(min=1)


@register_text_encoder("bag")
class BagOfEmbeddings(_Subwords):
    """Mean of subword embeddings and hashed subword-bigram embeddings, then a residual MLP (optional)."""

    def __init__(self, tokenizer: TextTokenizer, *, dim: int = 256, bigram_buckets: int = 2 ** 16,
                 token_dropout: float = 0.1, hidden: int = 0):
        super().__init__(tokenizer, dim=dim, token_dropout=token_dropout)
        _check("bigram_buckets", bigram_buckets, low=0)
        _check("hidden", hidden, low=0)
        self.out_dim = dim
        self.bigram_buckets = bigram_buckets
        self.bigrams = nn.Embedding(bigram_buckets, dim) if bigram_buckets else None
        if self.bigrams is not None:
            nn.init.normal_(self.bigrams.weight, std=dim ** -0.5)
        self.mlp = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim)) \
            if hidden else None

    def forward(self, tokens: dict[str, torch.Tensor]) -> torch.Tensor:
        ids, mask = tokens["ids"], self._drop(tokens["mask"])               # (B, L)
        x = self.embed(ids)                                                  # (B, L, D)
        total, count = (x * mask.unsqueeze(-1)).sum(1), mask.sum(1, keepdim=True)
        if self.bigrams is not None and ids.shape[1] > 1:
            pair = mask[:, 1:] & mask[:, :-1]                                # (B, L-1)
            h = (ids[:, :-1] * 1_000_003 + ids[:, 1:]) % self.bigram_buckets
            total = total + (self.bigrams(h) * pair.unsqueeze(-1)).sum(1)
            count = count + pair.sum(1, keepdim=True)
        z = total / count.clamp(min=1)                                       # (B, D)
        return z + self.mlp(z) if self.mlp is not None else z


@register_text_encoder("cnn")
class TextCNN(_Subwords):
    """Subword embeddings, convolutions of widths `kernels`, GELU, then max- and mean-pooling over positions."""

    def __init__(self, tokenizer: TextTokenizer, *, dim: int = 128, channels: int = 256,
                 kernels: tuple[int, ...] = (1, 3, 5), dropout: float = 0.1, token_dropout: float = 0.0):
        super().__init__(tokenizer, dim=dim, token_dropout=token_dropout)
        _check("channels", channels, low=1)
        if not kernels or any(not isinstance(k, int) or k < 1 for k in kernels):
            raise ValueError(f"`kernels` must be positive ints, got {kernels!r}")
        self.convs = nn.ModuleList(nn.Conv1d(dim, channels, k, padding=k // 2) for k in kernels)
        self.dropout = nn.Dropout(dropout)
        self.out_dim = 2 * channels * len(kernels)

    def forward(self, tokens: dict[str, torch.Tensor]) -> torch.Tensor:
        mask = self._drop(tokens["mask"])                                    # (B, L)
        x = self.dropout(self.embed(tokens["ids"])).transpose(1, 2)          # (B, D, L)
        outs = []
        for conv in self.convs:
            h = F.gelu(conv(x))[..., :mask.shape[1]].transpose(1, 2)        # (B, L, C)
            outs.append(h.masked_fill(~mask.unsqueeze(-1), -1e4).amax(1))
            outs.append(_masked_mean(h, mask))
        return torch.cat(outs, 1)                                            # (B, 2 C K)


@register_text_encoder("transformer")
class TinyTransformer(_Subwords):
    """A small pre-norm Transformer encoder over subwords with learned positions and mean pooling."""

    def __init__(self, tokenizer: TextTokenizer, *, dim: int = 128, layers: int = 2, heads: int = 4,
                 ff: int = 256, dropout: float = 0.1, token_dropout: float = 0.0):
        super().__init__(tokenizer, dim=dim, token_dropout=token_dropout)
        _check("layers", layers, low=1)
        _check("heads", heads, low=1)
        if dim % heads:
            raise ValueError(f"`dim` must be divisible by `heads` ({heads}), got {dim}")
        self.position = nn.Parameter(torch.randn(tokenizer.max_length, dim) * 0.02)
        layer = nn.TransformerEncoderLayer(dim, heads, ff, dropout, activation="gelu", batch_first=True,
                                           norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(dim)
        self.out_dim = dim

    def forward(self, tokens: dict[str, torch.Tensor]) -> torch.Tensor:
        ids, mask = tokens["ids"], self._drop(tokens["mask"])
        x = self.embed(ids) + self.position[: ids.shape[1]]               # (B, L, D)
        h = self.encoder(x, src_key_padding_mask=~mask)                      # (B, L, D)
        return _masked_mean(self.norm(h), mask)
