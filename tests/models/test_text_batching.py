"""`encode_texts` batches texts of similar length together (longest first) and returns the rows in the order
given: each row equals that text embedded alone, for every text encoder with padding (bag, cnn, transformer)."""
from __future__ import annotations

import pytest
import torch

from contrastlab.models.text import TextTokenizer, create_text_encoder
from contrastlab.models.text.base import encode_texts

TEXTS = ["a", "b c d e f g h", "c d", "a b c d e f g h a b c", "e", "f g h", "b", "d e f g"]


@pytest.mark.parametrize("name", ["bag", "cnn", "transformer"])
def test_rows_come_back_in_order_and_equal_each_text_alone(name):
    torch.manual_seed(0)
    tok = TextTokenizer.train(TEXTS * 4, kind="words")
    encoder = create_text_encoder(name, tokenizer=tok, dim=16)
    together = encode_texts(encoder, TEXTS, batch_size=3)                          # (N, D): mixed lengths
    alone = torch.cat([encode_texts(encoder, [t], batch_size=1) for t in TEXTS])   # (N, D): no padding at all
    assert together.shape == (len(TEXTS), encoder.out_dim)
    torch.testing.assert_close(together, alone, atol=1e-5, rtol=0)
    assert encode_texts(encoder, [], batch_size=3).shape == (0, encoder.out_dim)
