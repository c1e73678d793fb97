"""A sentence-transformers module for contrastlab's own "bag" and "cnn" text encoders and the wordllama token mean,
self-contained: `contrastlab export` copies this file into the exported folder as ``contrastlab_text.py``, and
``SentenceTransformer(DIR, trust_remote_code=True)`` imports it from there (torch, tokenizers and safetensors only:
contrastlab need not be installed). It reproduces the encoders' evaluation forward pass (no token dropout, no
dropout): ``bag`` is the mean of subword and hashed subword-bigram embeddings (fastText-style, Joulin et al. 2017)
plus an optional residual MLP; ``cnn`` is 1-D convolutions over subword embeddings, max- and mean-pooled (Kim 2014);
``mean`` is the mean of token vectors under the tokenizer's own padding (wordllama's, Miller 2024).

Its folder holds ``config.json`` (the kind and sizes), ``tokenizer.json`` (the run's fitted `tokenizers` pipeline)
and ``model.safetensors``.

>>> import torch
>>> from tokenizers import Tokenizer, models, pre_tokenizers
>>> tok = Tokenizer(models.WordLevel({"[PAD]": 0, "[UNK]": 1, "a": 2, "b": 3}, unk_token="[UNK]"))
>>> tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
>>> m = ContrastlabText({"kind": "bag", "dim": 2, "bigram_buckets": 0, "hidden": 0, "max_length": 8}, tok.to_str())
>>> _ = m.embed.weight.data.copy_(torch.tensor([[0., 0.], [1., 1.], [2., 0.], [0., 4.]]))
>>> m(m.preprocess(["a b", ""]))["sentence_embedding"].tolist()     # "": one [UNK], as in contrastlab
[[1.0, 2.0], [1.0, 1.0]]
"""
from __future__ import annotations

import json
import os

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["ContrastlabText", "KINDS", "BIGRAM_PRIME"]

KINDS = ("bag", "cnn", "mean")
#: The bigram hash of the "bag" encoder: bucket = (first id * BIGRAM_PRIME + second id) % bigram_buckets.
BIGRAM_PRIME = 1_000_003
CONFIG, TOKENIZER, WEIGHTS = "config.json", "tokenizer.json", "model.safetensors"


def _masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """(B, L, D), (B, L) -> (B, D)"""
    m = mask.unsqueeze(-1).to(x.dtype)
    return (x * m).sum(1) / m.sum(1).clamp(min=1)


class ContrastlabText(nn.Module):
    """A contrastlab "bag" or "cnn" text encoder as the first module of a SentenceTransformer: `preprocess` (texts ->
    input_ids, attention_mask) and `forward` (-> sentence_embedding). Shape: (B,) texts -> (B, dim)."""

    modalities = ["text"]

    def __init__(self, config: dict, tokenizer_json: str):
        super().__init__()
        from tokenizers import Tokenizer
        kind = config.get("kind")
        if kind not in KINDS:
            raise ValueError(f"`kind` in {CONFIG} must be one of {list(KINDS)}, got {kind!r}")
        self.config = dict(config)
        self.kind = kind
        self.max_seq_length = None if config.get("max_length") is None else int(config["max_length"])
        self.tokenizer = Tokenizer.from_str(tokenizer_json)
        dim = int(config["dim"])
        if kind == "mean":                       # the tokenizer's own padding and truncation, as saved
            self.embed = nn.Embedding(int(config["vocab_size"]), dim)
            self.out_dim = dim
            return
        self.tokenizer.no_padding()
        self.tokenizer.enable_truncation(self.max_seq_length)
        self.embed = nn.Embedding(self.tokenizer.get_vocab_size(), dim, padding_idx=0)
        if kind == "bag":
            self.bigram_buckets = int(config.get("bigram_buckets", 0))
            self.bigrams = nn.Embedding(self.bigram_buckets, dim) if self.bigram_buckets else None
            hidden = int(config.get("hidden", 0))
            self.mlp = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim)) \
                if hidden else None
            self.out_dim = dim
        else:
            kernels = [int(k) for k in config["kernels"]]
            channels = int(config["channels"])
            self.convs = nn.ModuleList(nn.Conv1d(dim, channels, k, padding=k // 2) for k in kernels)
            self.out_dim = 2 * channels * len(kernels)

    # -- sentence-transformers' module interface --------------------------------------------------------------
    def preprocess(self, inputs, prompt: str | None = None, **kwargs) -> dict[str, torch.Tensor]:
        """Texts -> input_ids (B, L) int64 padded with 0 to the longest text (at most max_length) and
        attention_mask (B, L); a text with no token gets one [UNK] (id 1)."""
        texts = [(prompt or "") + str(t) for t in inputs]
        enc = self.tokenizer.encode_batch(texts, add_special_tokens=False)
        if self.kind == "mean":                  # padded by the tokenizer; its attention mask
            ids = torch.tensor([e.ids for e in enc], dtype=torch.long).reshape(len(enc), -1)             # (B, T)
            mask = torch.tensor([e.attention_mask for e in enc], dtype=torch.long).reshape(ids.shape)  # (B, T)
            return {"input_ids": ids, "attention_mask": mask}
        longest = max((len(e.ids) for e in enc), default=1) or 1
        ids = torch.zeros(len(enc), longest, dtype=torch.long)
        for i, e in enumerate(enc):
            row = e.ids or [1]
            ids[i, :len(row)] = torch.tensor(row, dtype=torch.long)
        return {"input_ids": ids, "attention_mask": (ids != 0).long()}

    tokenize = preprocess                                                  # sentence-transformers before v6

    def forward(self, features: dict, **kwargs) -> dict:
        ids, mask = features["input_ids"], features["attention_mask"]                 # (B, L)
        forward = {"bag": self._bag, "cnn": self._cnn, "mean": self._mean}[self.kind]
        features["sentence_embedding"] = forward(ids, mask)
        return features

    def _mean(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """The mean of the token vectors under the tokenizer's attention mask (ids past the table: its last row;
        no token at all: zeros)."""
        weight = self.embed.weight
        if ids.shape[1] == 0:
            return weight.new_zeros(ids.shape[0], self.out_dim)
        m = mask.to(weight.dtype)                                            # (B, T)
        total = F.embedding_bag(ids.clamp(0, weight.shape[0] - 1), weight, per_sample_weights=m, mode="sum")
        return total / m.sum(1, keepdim=True).clamp(min=1.0)                 # (B, D)

    def _bag(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        mask = mask.bool()
        x = self.embed(ids)                                                  # (B, L, D)
        total, count = (x * mask.unsqueeze(-1)).sum(1), mask.sum(1, keepdim=True)
        if self.bigrams is not None and ids.shape[1] > 1:
            pair = mask[:, 1:] & mask[:, :-1]                                # (B, L-1)
            h = (ids[:, :-1] * BIGRAM_PRIME + ids[:, 1:]) % self.bigram_buckets
            total = total + (self.bigrams(h) * pair.unsqueeze(-1)).sum(1)
            count = count + pair.sum(1, keepdim=True)
        z = total / count.clamp(min=1)                                       # (B, D)
        return z + self.mlp(z) if self.mlp is not None else z

    def _cnn(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        mask = mask.bool()
        x = self.embed(ids).transpose(1, 2)                                  # (B, D, L)
        outs = []
        for conv in self.convs:
            h = F.gelu(conv(x))[..., :mask.shape[1]].transpose(1, 2)        # (B, L, C)
            outs.append(h.masked_fill(~mask.unsqueeze(-1), -1e4).amax(1))
            outs.append(_masked_mean(h, mask))
        return torch.cat(outs, 1)                                            # (B, 2 C K)

    def get_embedding_dimension(self) -> int:
        return self.out_dim

    get_sentence_embedding_dimension = get_embedding_dimension             # sentence-transformers before v6

    def save(self, output_path: str, *args, **kwargs) -> None:
        from safetensors.torch import save_file
        os.makedirs(output_path, exist_ok=True)
        with open(os.path.join(output_path, CONFIG), "w", encoding="utf-8") as f:
            json.dump(self.config, f, indent=2)
        with open(os.path.join(output_path, TOKENIZER), "w", encoding="utf-8") as f:
            f.write(self.tokenizer.to_str())
        save_file({k: v.detach().contiguous() for k, v in self.state_dict().items()},
                  os.path.join(output_path, WEIGHTS))

    @classmethod
    def load(cls, model_name_or_path: str, subfolder: str = "", **kwargs) -> "ContrastlabText":
        """The module saved in local folder ``model_name_or_path/subfolder``; a clear error names a missing or
        corrupt file."""
        from safetensors.torch import load_file
        folder = os.path.join(model_name_or_path, subfolder)
        for name in (CONFIG, TOKENIZER, WEIGHTS):
            if not os.path.isfile(os.path.join(folder, name)):
                raise FileNotFoundError(f"{os.path.join(folder, name)} is missing (a contrastlab text encoder's "
                                        f"folder holds {CONFIG}, {TOKENIZER} and {WEIGHTS})")
        with open(os.path.join(folder, CONFIG), encoding="utf-8") as f:
            config = json.load(f)
        with open(os.path.join(folder, TOKENIZER), encoding="utf-8") as f:
            module = cls(config, f.read())
        weights = os.path.join(folder, WEIGHTS)
        try:
            state = load_file(weights)
        except Exception as e:  # noqa: BLE001 - safetensors raises its own error types
            first = str(e).splitlines()[0] if str(e) else type(e).__name__
            raise ValueError(f"{weights} ({os.path.getsize(weights)} bytes) is not a readable safetensors file "
                             f"(corrupt or truncated): {first}") from None
        module.load_state_dict(state)
        return module.eval()
