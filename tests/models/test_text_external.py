"""Bring-your-own text encoders, offline: a tiny BERT and WordPiece tokenizer built here and saved to disk, loaded
through HFTextEncoder and SentenceTransformerEncoder; the wordllama weights that ship inside its wheel."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from contrastlab.models.text.base import encode_texts
from contrastlab.models.text.external import (HFTextEncoder, SentenceTransformerEncoder, WordLlamaEncoder,
                                              load_text_encoder_from, mean_pool)

SENTENCES = ["the cat sat on the mat", "a dog chased the cat", "stocks fell as markets closed",
             "the orchestra played a slow melody", "rain is expected tomorrow in the hills",
             "fresh bread from the bakery", "a kitten sleeps on a warm sofa"]
TEXTS = ["cat", "the dog chased a kitten across the warm sofa and the mat", "markets"]


@pytest.fixture(scope="module")
def hf_dir(tmp_path_factory):
    """A 2-layer BERT (hidden 32) with a WordPiece tokenizer trained on SENTENCES, saved with save_pretrained."""
    transformers = pytest.importorskip("transformers")
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    tok.train_from_iterator(SENTENCES, trainers.WordPieceTrainer(vocab_size=120, special_tokens=specials))
    cls_id, sep_id = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
                                                       special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)])
    tok.decoder = decoders.WordPiece()
    path = tmp_path_factory.mktemp("tiny-bert")
    fast = transformers.PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]",
                                                cls_token="[CLS]", sep_token="[SEP]", mask_token="[MASK]")
    fast.save_pretrained(path)
    torch.manual_seed(0)
    config = transformers.BertConfig(vocab_size=tok.get_vocab_size(), hidden_size=32, num_hidden_layers=2,
                                     num_attention_heads=2, intermediate_size=64, max_position_embeddings=64)
    transformers.BertModel(config).save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def st_dir(hf_dir, tmp_path_factory):
    """The same BERT as a sentence-transformers model: Transformer module + mean pooling, saved."""
    st = pytest.importorskip("sentence_transformers")
    try:
        from sentence_transformers.base.modules import Transformer
        from sentence_transformers.sentence_transformer.modules import Pooling
    except ImportError:                                   # sentence-transformers < 6
        from sentence_transformers.models import Pooling, Transformer
    path = tmp_path_factory.mktemp("tiny-st")
    transformer = Transformer(str(hf_dir), max_seq_length=64)
    model = st.SentenceTransformer(modules=[transformer, Pooling(32, pooling_mode="mean")], device="cpu")
    model.save(str(path))
    return path


# ------------------------------------------------------------------------------------------------ HFTextEncoder

def test_hf_encoder_shapes_and_masked_mean_pooling(hf_dir):
    enc = HFTextEncoder(hf_dir, max_length=32).eval()
    assert enc.out_dim == 32
    tokens = enc.tokenize(TEXTS)
    mask = tokens["attention_mask"]
    assert tokens["input_ids"].shape == mask.shape and mask.shape[0] == 3
    assert (mask.sum(1) < mask.shape[1]).any()                                # the batch really is padded
    with torch.no_grad():
        z = enc(tokens)                                                       # (3, 32)
        hidden = enc.model(**tokens).last_hidden_state.double()               # (3, T, 32)
    assert z.shape == (3, 32)
    for i in range(3):                                                        # masked mean from its definition
        rows = [hidden[i, t] for t in range(mask.shape[1]) if mask[i, t] == 1]
        torch.testing.assert_close(z[i].double(), sum(rows) / len(rows), atol=1e-5, rtol=0)
    with torch.no_grad():                                                     # padding changes nothing
        alone = enc(enc.tokenize([TEXTS[0]]))
    torch.testing.assert_close(alone[0], z[0], atol=1e-5, rtol=0)


def test_hf_encoder_cls_pooling_takes_the_first_token(hf_dir):
    enc = HFTextEncoder(hf_dir, pooling="cls").eval()
    tokens = enc.tokenize(TEXTS)
    with torch.no_grad():
        torch.testing.assert_close(enc(tokens), enc.model(**tokens).last_hidden_state[:, 0])


def test_hf_encoder_trains_and_encodes(hf_dir):
    enc = HFTextEncoder(hf_dir).train()
    enc(enc.tokenize(TEXTS)).pow(2).sum().backward()
    word = enc.model.embeddings.word_embeddings.weight
    assert word.grad is not None and word.grad.abs().sum() > 0
    last = [p for n, p in enc.model.named_parameters() if "encoder.layer.1" in n]
    assert last and all(p.grad is not None and p.grad.abs().sum() > 0 for p in last if p.dim() == 2)
    z = encode_texts(enc, SENTENCES, batch_size=2)
    assert z.shape == (len(SENTENCES), 32) and enc.training                   # mode restored
    torch.testing.assert_close(z.norm(dim=1), torch.ones(len(SENTENCES)))
    torch.testing.assert_close(z, encode_texts(enc, SENTENCES, batch_size=100), atol=1e-5, rtol=0)
    assert torch.equal(encode_texts(load_text_encoder_from(f"hf:{hf_dir}"), SENTENCES), encode_texts(enc, SENTENCES))


# ------------------------------------------------------------------------------------ SentenceTransformerEncoder

def test_sentence_transformer_encoder_matches_its_model_and_the_hf_route(hf_dir, st_dir):
    enc = SentenceTransformerEncoder(st_dir)
    assert enc.out_dim == 32
    z = encode_texts(enc, TEXTS, normalize=False)                             # (3, 32)
    own = torch.as_tensor(enc.model.encode(TEXTS, convert_to_numpy=True))     # sentence-transformers' inference
    torch.testing.assert_close(z, own, atol=1e-5, rtol=0)
    hf = encode_texts(HFTextEncoder(hf_dir, max_length=64), TEXTS, normalize=False)  # same weights, our pooling
    torch.testing.assert_close(z, hf, atol=1e-5, rtol=0)
    assert torch.equal(encode_texts(load_text_encoder_from(f"st:{st_dir}"), TEXTS), encode_texts(enc, TEXTS))


def test_sentence_transformer_encoder_is_trainable(st_dir):
    enc = SentenceTransformerEncoder(st_dir, max_length=16).train()
    tokens = enc.tokenize(TEXTS)
    assert tokens["input_ids"].shape[1] <= 16
    enc(tokens).pow(2).sum().backward()
    grads = [p.grad for p in enc.parameters() if p.requires_grad]
    assert grads and sum(g is not None and bool(g.abs().sum() > 0) for g in grads) >= len(grads) // 2


# ------------------------------------------------------------------------------------------------- WordLlama

@pytest.fixture(scope="module")
def wordllama():
    return WordLlamaEncoder()


def test_wordllama_loads_offline_frozen_and_equals_its_own_embed(wordllama):
    assert wordllama.out_dim == 256 and sum(p.numel() for p in wordllama.parameters()) == 0
    assert wordllama.state_dict() == {}                                       # frozen weights stay out of checkpoints
    z = encode_texts(wordllama, TEXTS, normalize=False)
    from wordllama import WordLlama                                           # the package's own numpy pooling
    import wordllama as package
    from pathlib import Path
    ref = WordLlama.load(cache_dir=Path(package.__file__).parent, disable_download=True).embed(TEXTS)
    np.testing.assert_allclose(z.numpy(), ref, atol=1e-5)


def test_wordllama_puts_similar_words_closer(wordllama):
    z = encode_texts(wordllama, ["cat", "kitten", "economics"])               # unit rows
    assert float(z[0] @ z[1]) > float(z[0] @ z[2]) + 0.2


def test_wordllama_gives_empty_texts_zero_vectors(wordllama):
    assert encode_texts(wordllama, ["", ""]).abs().sum() == 0
    z = encode_texts(wordllama, ["", "cat"])
    assert z[0].abs().sum() == 0 and float(z[1].norm()) == pytest.approx(1.0)


def test_wordllama_truncated_dim_and_trainable():
    small = load_text_encoder_from("wordllama:64")
    assert small.out_dim == 64 and encode_texts(small, TEXTS).shape == (3, 64)
    full = WordLlamaEncoder(trainable=True)
    tokens = full.tokenize(TEXTS)
    torch.testing.assert_close(small(tokens), full(tokens)[:, :64].detach())  # Matryoshka: the leading columns
    full(tokens).sum().backward()
    assert full.weight.grad is not None and full.weight.grad.abs().sum() > 0


def test_trainable_option_of_the_loaders(hf_dir):
    frozen, tuned = load_text_encoder_from("wordllama"), load_text_encoder_from("wordllama", trainable=True)
    assert not list(frozen.parameters()) and "weight" not in frozen.state_dict()      # not saved in checkpoints
    assert [n for n, _ in tuned.named_parameters()] == ["weight"]
    torch.testing.assert_close(tuned.weight.detach(), frozen.weight)                  # the same pretrained table
    assert all(p.requires_grad for p in load_text_encoder_from(f"hf:{hf_dir}").parameters())   # HF: trainable
    assert not any(p.requires_grad for p in load_text_encoder_from(f"hf:{hf_dir}", trainable=False).parameters())
    with pytest.raises(TypeError, match=r"`trainable` must be None or a bool, got str"):
        load_text_encoder_from("wordllama", trainable="yes")


def test_mean_pool_ignores_padding():
    hidden = torch.arange(12.0).view(2, 3, 2)
    mask = torch.tensor([[1, 1, 0], [0, 0, 0]])
    torch.testing.assert_close(mean_pool(hidden, mask), torch.tensor([[1.0, 2.0], [0.0, 0.0]]))


# --------------------------------------------------------------------------------------------------- errors

@pytest.mark.parametrize("make, error, match", [
    (lambda: WordLlamaEncoder(dim=512), FileNotFoundError, r"wordllama 'l2_supercat' at dim 512 is not installed"),
    (lambda: WordLlamaEncoder(dim=100), ValueError, r"`dim` = 100 is not available"),
    (lambda: WordLlamaEncoder(config="gpt"), ValueError, r"`config` must be one of"),
    (lambda: HFTextEncoder("/no/such/dir"), FileNotFoundError, r"`path` must be a local model directory"),
    (lambda: SentenceTransformerEncoder("/no/such/dir"), FileNotFoundError, r"containing modules.json"),
    (lambda: load_text_encoder_from("bert:/x"), ValueError, r"must start with one of \['hf', 'st', 'wordllama'\]"),
    (lambda: load_text_encoder_from("hf:"), ValueError, r"must be 'PREFIX:PATH'"),
    (lambda: load_text_encoder_from("wordllama:big"), ValueError, r"needs an int dimension, got 'big'"),
])
def test_clear_errors(make, error, match):
    with pytest.raises(error, match=match):
        make()


def test_hf_encoder_rejects_unknown_pooling(hf_dir):
    with pytest.raises(ValueError, match=r"`pooling` must be one of \['cls', 'mean'\], got 'max'"):
        HFTextEncoder(hf_dir, pooling="max")
