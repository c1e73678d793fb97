"""Bring-your-own text encoders: the frozen wordllama baseline, any local Hugging Face `transformers` model, and
any local `sentence-transformers` model, each behind the `TextEncoder` interface. Nothing here downloads: every
loader reads local files only and says which file is missing.

>>> enc = load_text_encoder_from("wordllama")
>>> encode_texts(enc, ["a cat", "economics"]).shape
torch.Size([2, 256])
>>> sum(p.numel() for p in enc.parameters())      # frozen: no parameters to train
0
"""
from __future__ import annotations

import logging
import numbers
import os
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ...devices import CPU
from .base import TextEncoder, encode_texts  # noqa: F401 (encode_texts: the examples use it)

__all__ = ["mean_pool", "cls_pool", "POOLINGS", "WordLlamaEncoder", "HFTextEncoder", "SentenceTransformerEncoder",
           "TEXT_ENCODER_LOADERS", "load_text_encoder_from"]


def mean_pool(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Average of the token vectors where `mask` is 1 (padding ignored; an all-padding row gives zeros).

    >>> mean_pool(torch.tensor([[[1.0], [3.0], [100.0]]]), torch.tensor([[1, 1, 0]]))
    tensor([[2.]])

    Shape: hidden (B, T, H), mask (B, T) -> (B, H).
    """
    m = mask.to(hidden.dtype).unsqueeze(-1)                                  # (B, T, 1)
    return (hidden * m).sum(1) / m.sum(1).clamp(min=1.0)


def cls_pool(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The first token's vector (BERT's [CLS]). Shape: hidden (B, T, H), mask (B, T) -> (B, H)."""
    return hidden[:, 0]


POOLINGS: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {"mean": mean_pool, "cls": cls_pool}


def _optional_length(value) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"`max_length` must be a positive int or None, got {value!r}")
    return int(value)


def _local_dir(path, marker: str) -> Path:
    p = Path(os.fspath(path)).expanduser()
    if not p.is_dir() or not (p / marker).is_file():
        raise FileNotFoundError(f"`path` must be a local model directory containing {marker}, got {str(p)!r} "
                                f"(contrastlab loads models from disk only; save one there with save_pretrained)")
    return p


#: Files of which a model folder needs one to hold its tokenizer (fast, WordPiece, BPE or SentencePiece).
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "vocab.json", "spiece.model",
                   "sentencepiece.bpe.model", "tokenizer.model")


def _need_tokenizer(folder: Path, path) -> None:
    """A clear error when model folder `folder` (of `path`) has no tokenizer file (transformers would otherwise
    build an empty tokenizer, or none, and fail later at the first text)."""
    if not any((folder / name).is_file() for name in TOKENIZER_FILES):
        raise FileNotFoundError(f"`path` {str(path)!r} has no tokenizer: none of {', '.join(TOKENIZER_FILES)} is in "
                                f"{str(folder)!r}; save the model's tokenizer there (tokenizer.save_pretrained)")


def _import_wordllama():
    """Import wordllama without its import-time `logging.basicConfig` changing the caller's root logger."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        from wordllama import WordLlama
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
    return WordLlama


class WordLlamaEncoder(TextEncoder):
    """Frozen static word embeddings from PyPI `wordllama` (Miller 2024, token embeddings distilled from LLaMA-2's
    input layer), averaged over a text's tokens: the "no training at all" baseline.

    Default: configuration ``l2_supercat`` at ``dim=256``, the weights that ship inside the wheel; 64 and 128 are
    its Matryoshka truncations of the same file. Other dimensions or configurations need their files in
    ``cache_dir`` (wordllama's layout: ``weights/`` and ``tokenizers/``); nothing is downloaded. Frozen weights
    are a non-persistent buffer (no parameters, not written into checkpoints); ``trainable=True`` makes them a
    parameter.

    Shape: tokens {"input_ids": (B, T), "attention_mask": (B, T)} -> (B, dim).
    """

    def __init__(self, *, config: str = "l2_supercat", dim: int = 256, cache_dir: str | os.PathLike | None = None,
                 trainable: bool = False, max_length: int | None = None):
        super().__init__()
        if isinstance(dim, bool) or not isinstance(dim, numbers.Integral) or dim < 1:
            raise ValueError(f"`dim` must be a positive int, got {dim!r}")
        self.max_length = _optional_length(max_length)
        WordLlama = _import_wordllama()
        configs = WordLlama.list_configs()["wordllama"]
        if config not in configs:
            raise ValueError(f"`config` must be one of {configs}, got {config!r}")
        import wordllama
        folder = Path(cache_dir).expanduser() if cache_dir is not None else Path(wordllama.__file__).parent
        file_dim = max(int(dim), 256)
        try:
            model = WordLlama.load(config, cache_dir=folder, dim=file_dim, disable_download=True,
                                   trunc_dim=None if dim == file_dim else int(dim))
        except FileNotFoundError as e:
            raise FileNotFoundError(f"wordllama {config!r} at dim {dim} is not installed under {str(folder)!r} ({e}); "
                                    f"contrastlab never downloads it: the PyPI wheel ships l2_supercat at dim 256 "
                                    f"(and its truncations 64, 128)") from None
        except ValueError as e:
            raise ValueError(f"`dim` = {dim} is not available for wordllama {config!r}: {e}") from None
        self.tokenizer = model.tokenizer
        self.tokenizer.enable_padding()
        if self.max_length is None:
            self.tokenizer.no_truncation()
        else:
            self.tokenizer.enable_truncation(self.max_length)
        weight = torch.from_numpy(model.embedding.copy())                    # (V, dim) float32
        if trainable:
            self.weight = nn.Parameter(weight)
        else:
            self.register_buffer("weight", weight, persistent=False)
        self.config, self.out_dim = config, int(dim)

    def tokenize(self, texts: list[str]) -> dict[str, torch.Tensor]:
        encodings = self.tokenizer.encode_batch(list(texts), add_special_tokens=False)
        ids = torch.tensor([e.ids for e in encodings], dtype=torch.long).reshape(len(encodings), -1)        # (B, T)
        mask = torch.tensor([e.attention_mask for e in encodings], dtype=torch.long).reshape(ids.shape)  # (B, T)
        return {"input_ids": ids, "attention_mask": mask}

    def forward(self, tokens: dict[str, torch.Tensor]) -> torch.Tensor:
        ids = tokens["input_ids"].clamp(0, self.weight.shape[0] - 1)          # (B, T) ids past the table -> last row
        mask = tokens["attention_mask"].to(self.weight.dtype)                 # (B, T)
        if ids.shape[1] == 0:                                                 # every text empty: zero vectors
            return self.weight.new_zeros(ids.shape[0], self.out_dim)
        # the masked mean of `mean_pool` without materialising (B, T, dim): ~9x faster on long texts
        total = F.embedding_bag(ids, self.weight, per_sample_weights=mask, mode="sum")   # (B, dim)
        return total / mask.sum(1, keepdim=True).clamp(min=1.0)


class HFTextEncoder(TextEncoder):
    """Any Hugging Face `transformers` encoder + tokenizer from a local directory, pooled to one vector per text
    (``pooling="mean"`` over the attention mask, or ``"cls"``); trainable like any module.

    >>> HFTextEncoder("/no/such/model")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    FileNotFoundError: `path` must be a local model directory containing config.json, got '/no/such/model' ...

    Shape: tokens (the tokenizer's dict: input_ids, attention_mask, ...) (B, T) -> (B, hidden_size).
    """

    def __init__(self, path: str | os.PathLike, *, pooling: str = "mean", max_length: int = 256):
        super().__init__()
        if pooling not in POOLINGS:
            raise ValueError(f"`pooling` must be one of {sorted(POOLINGS)}, got {pooling!r}")
        self.max_length = _optional_length(max_length)
        if self.max_length is None:
            raise ValueError("`max_length` must be a positive int, got None")
        folder = _local_dir(path, "config.json")
        _need_tokenizer(folder, path)
        from transformers import AutoModel, AutoTokenizer

        self.tokenizer = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
        self.model = AutoModel.from_pretrained(str(folder), local_files_only=True)
        self.pooling, self.out_dim = pooling, int(self.model.config.hidden_size)

    def tokenize(self, texts: list[str]) -> dict[str, torch.Tensor]:
        batch = self.tokenizer(list(texts), padding=True, truncation=True, max_length=self.max_length,
                               return_tensors="pt")
        return dict(batch)

    def forward(self, tokens: dict[str, torch.Tensor]) -> torch.Tensor:
        hidden = self.model(**tokens).last_hidden_state                       # (B, T, H)
        return POOLINGS[self.pooling](hidden, tokens["attention_mask"])       # (B, H)

    def save_folder(self, folder: str | os.PathLike) -> None:
        """Write the model and its tokenizer into `folder` (a `transformers` folder this class loads again)."""
        self.model.save_pretrained(str(folder), safe_serialization=True)
        self.tokenizer.save_pretrained(str(folder))


def _first_module(folder: Path) -> dict:
    """The first entry of a sentence-transformers folder's modules.json, with a clear error when it is not one."""
    import json
    try:
        modules = json.loads((folder / "modules.json").read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"`path` {str(folder)!r} is not a sentence-transformers folder: its modules.json is not "
                         f"readable JSON ({e})") from None
    if not isinstance(modules, list) or not modules or not isinstance(modules[0], dict):
        raise ValueError(f"`path` {str(folder)!r} is not a sentence-transformers folder: its modules.json must list "
                         f"the model's modules, got {str(modules)[:80]!r}")
    return modules[0]


class SentenceTransformerEncoder(TextEncoder):
    """A `sentence_transformers.SentenceTransformer` from a local directory (its own tokenizer, pooling and
    normalisation modules), trainable; ``max_length`` overrides the model's ``max_seq_length``.

    Shape: tokens (the model's preprocess dict) (B, T) -> (B, embedding dimension).
    """

    def __init__(self, path: str | os.PathLike, *, max_length: int | None = None):
        super().__init__()
        max_length = _optional_length(max_length)
        folder = _local_dir(path, "modules.json")
        first = _first_module(folder)
        if str(first.get("type", "")).endswith(".Transformer"):         # a transformers model: its tokenizer beside it
            _need_tokenizer(folder / str(first.get("path", "")), path)
        from sentence_transformers import SentenceTransformer

        self.model = SentenceTransformer(str(folder), device=str(CPU), local_files_only=True)   # moved with the method
        if max_length is not None:
            self.model.max_seq_length = max_length
        dim_of = getattr(self.model, "get_embedding_dimension", None) or self.model.get_sentence_embedding_dimension
        self.out_dim = int(dim_of())                                         # renamed in sentence-transformers 6

    def tokenize(self, texts: list[str]) -> dict[str, torch.Tensor]:
        prepare = getattr(self.model, "preprocess", None) or self.model.tokenize  # tokenize before v6
        return {k: v for k, v in prepare(list(texts)).items() if torch.is_tensor(v)}

    def forward(self, tokens: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.model(dict(tokens))["sentence_embedding"]                 # (B, D)

    def save_folder(self, folder: str | os.PathLike) -> None:
        """Write the whole model (every module, its tokenizer) into `folder`, a sentence-transformers folder."""
        self.model.save(str(folder), safe_serialization=True)


def _wordllama_from(arg: str, trainable: bool | None = None, max_length: int | None = None) -> TextEncoder:
    if arg and not arg.isdigit():
        raise ValueError(f"`spec` 'wordllama:DIM' needs an int dimension, got {arg!r}")
    return WordLlamaEncoder(**({"dim": int(arg)} if arg else {}), trainable=bool(trainable), max_length=max_length)


def _needs_path(cls):
    def load(arg: str, trainable: bool | None = None, max_length: int | None = None) -> TextEncoder:
        if not arg:
            raise ValueError(f"`spec` for {cls.__name__} must be 'PREFIX:PATH' with a local directory, got no path")
        encoder = cls(arg, **({} if max_length is None else {"max_length": max_length}))   # None: the default
        if trainable is False:
            encoder.requires_grad_(False)
        return encoder
    return load


TEXT_ENCODER_LOADERS: dict[str, Callable[..., TextEncoder]] = {     # loader(argument, trainable, max_length)
    "wordllama": _wordllama_from,                      # "wordllama" or "wordllama:128"
    "hf": _needs_path(HFTextEncoder),                  # "hf:/path/to/transformers/model"
    "st": _needs_path(SentenceTransformerEncoder),     # "st:/path/to/sentence-transformers/model"
}


def load_text_encoder_from(spec: str, *, trainable: bool | None = None,
                           max_length: int | None = None) -> TextEncoder:
    """A text encoder from "PREFIX" or "PREFIX:ARGUMENT", the prefix naming an entry of `TEXT_ENCODER_LOADERS`
    ("wordllama", "hf:PATH", "st:PATH"); add an entry to register another kind.

    ``trainable``: None keeps the model's own default (wordllama frozen, Hugging Face models trainable); True makes
    wordllama's table a parameter; False freezes a Hugging Face model. ``max_length``: tokens kept per text (None:
    the model's own limit for st:, 256 for hf:, no limit for wordllama)."""
    if trainable is not None and not isinstance(trainable, bool):
        raise TypeError(f"`trainable` must be None or a bool, got {type(trainable).__name__}")
    if not isinstance(spec, str):
        raise TypeError(f"`spec` must be a string such as 'wordllama', 'hf:PATH' or 'st:PATH', "
                        f"got {type(spec).__name__}")
    prefix, _, arg = spec.partition(":")
    if prefix not in TEXT_ENCODER_LOADERS:
        raise ValueError(f"`spec` must start with one of {sorted(TEXT_ENCODER_LOADERS)} (as 'wordllama', 'hf:PATH', "
                         f"'st:PATH'), got {spec!r}")
    return TEXT_ENCODER_LOADERS[prefix](arg, trainable, _optional_length(max_length))
