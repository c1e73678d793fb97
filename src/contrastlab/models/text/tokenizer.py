"""A tokenizer trained on the training corpus (Hugging Face `tokenizers`, Rust, batched), saved with the run.

Two kinds: ``"bpe"`` (byte-pair subwords after lower-casing and accent stripping: shared stems and names line up
across English and Spanish) and ``"words"`` (whitespace tokens, for item ids such as ``"i_42 i_7"``). Id 0 is padding,
id 1 the unknown token.

>>> tok = TextTokenizer.train(["a red fox", "a red hen", "the fox ran"] * 5, kind="words", max_length=8)
>>> ids, mask = tok.encode(["a red fox", "unseen words"])
>>> ids.shape, mask[1].tolist()[:3]
(torch.Size([2, 3]), [True, True, False])
>>> TextTokenizer.from_json(tok.to_json()).encode(["a red fox"])[0].tolist() == ids[:1].tolist()
True
"""
from __future__ import annotations

import torch

__all__ = ["TextTokenizer", "TOKENIZER_KINDS"]

TOKENIZER_KINDS = ("bpe", "words")
PAD, UNK = "[PAD]", "[UNK]"


class TextTokenizer:
    def __init__(self, tokenizer, *, max_length: int = 64):
        if not isinstance(max_length, int) or max_length < 1:
            raise ValueError(f"`max_length` must be a positive int, got {max_length!r}")
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.tokenizer.no_padding()
        self.tokenizer.enable_truncation(max_length)

    @classmethod
    def train(cls, texts: list[str], *, kind: str = "bpe", vocab_size: int = 16_000, min_frequency: int = 2,
              max_length: int = 64) -> "TextTokenizer":
        """Fit a tokenizer on `texts` (the training strings only: never the test queries)."""
        from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers
        if kind not in TOKENIZER_KINDS:
            raise ValueError(f"`kind` must be one of {TOKENIZER_KINDS}, got {kind!r}")
        if not isinstance(vocab_size, int) or vocab_size < 10:
            raise ValueError(f"`vocab_size` must be an int >= 10, got {vocab_size!r}")
        if not texts:
            raise ValueError("`texts` must hold at least one string to train the tokenizer on, got none")
        if kind == "bpe":
            tok = Tokenizer(models.BPE(unk_token=UNK))
            tok.normalizer = normalizers.Sequence([normalizers.NFD(), normalizers.StripAccents(),
                                                   normalizers.Lowercase()])
            tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Whitespace(), pre_tokenizers.Digits()])
            trainer = trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=min_frequency,
                                          special_tokens=[PAD, UNK], show_progress=False)
        else:
            tok = Tokenizer(models.WordLevel(unk_token=UNK))
            tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
            trainer = trainers.WordLevelTrainer(vocab_size=vocab_size, min_frequency=1,
                                                special_tokens=[PAD, UNK], show_progress=False)
        tok.train_from_iterator(texts, trainer=trainer, length=len(texts))
        return cls(tok, max_length=max_length)

    @property
    def vocab_size(self) -> int:
        return self.tokenizer.get_vocab_size()

    def encode(self, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Token ids padded with 0 to the longest text (at most `max_length`) and the mask of real tokens.

        Shape: (B,) -> ids (B, L) int64, mask (B, L) bool. A text with no known token gets one [UNK]."""
        enc = self.tokenizer.encode_batch(list(texts), add_special_tokens=False)
        longest = max((len(e.ids) for e in enc), default=1) or 1
        ids = torch.zeros(len(enc), longest, dtype=torch.long)
        for i, e in enumerate(enc):
            row = e.ids or [1]
            ids[i, :len(row)] = torch.tensor(row, dtype=torch.long)
        return ids, ids != 0

    def to_json(self) -> str:
        import json
        return json.dumps({"max_length": self.max_length, "tokenizer": self.tokenizer.to_str()})

    @classmethod
    def from_json(cls, text: str) -> "TextTokenizer":
        import json

        from tokenizers import Tokenizer
        d = json.loads(text)
        return cls(Tokenizer.from_str(d["tokenizer"]), max_length=int(d["max_length"]))
