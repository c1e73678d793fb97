"""contrastlab's ``transformer`` text encoder as a plain Hugging Face model: XLM-RoBERTa-XL's architecture
(`XLMRobertaXLModel`, Goyal et al. 2021), the one standard encoder in `transformers` that is pre-norm like ours.

The mapping is exact, weight for weight (no retraining, no approximation):

* ours: learned positions 0..L-1 added to the subword embeddings, no embedding LayerNorm; XLM-R-XL: the same, its
  positions counted from ``pad_token_id + 1`` (RoBERTa's convention), so our position i is its row i + 1 and
  ``max_position_embeddings`` is our ``max_length + 1``; its one token-type row is zero.
* each layer, ours (`nn.TransformerEncoderLayer(norm_first=True, activation="gelu")`):
  ``x + attn(norm1(x))`` then ``x + linear2(gelu(linear1(norm2(x))))``; XLM-R-XL: ``self_attn_layer_norm``,
  the attention (``in_proj`` split into query / key / value, ``out_proj`` as ``attention.output.dense``), then
  ``LayerNorm``, ``intermediate.dense``, exact-erf GELU, ``output.dense``, residuals in the same places.
* our final LayerNorm after the stack is XLM-R-XL's ``encoder.LayerNorm``; the masked mean is
  sentence-transformers' mean Pooling. The pooler (unused by sentence-transformers) is written as zeros.

Padding is id 0 in both (our tokenizer's [PAD]); padded keys are masked out of attention in both.

>>> import torch
>>> from contrastlab.models.text import TextTokenizer, create_text_encoder
>>> tok = TextTokenizer.train(["a b c", "b c a"] * 3, kind="words", max_length=8)
>>> enc = create_text_encoder("transformer", tokenizer=tok, dim=8, layers=1, heads=2, ff=16)
>>> config, state = transformer_to_xlm_roberta_xl(enc)
>>> config["model_type"], config["max_position_embeddings"], state["embeddings.position_embeddings.weight"].shape
('xlm-roberta-xl', 9, torch.Size([9, 8]))
"""
from __future__ import annotations

import torch

__all__ = ["transformer_to_xlm_roberta_xl", "tokenizer_config", "fast_tokenizer_json", "BLANK"]

#: What the exported tokenizer turns a whitespace-only text into: one character outside the vocabulary, so the
#: text is one [UNK], as contrastlab's tokenizer gives it (the empty string itself never reaches a normaliser: it
#: stays empty, a zero vector in sentence-transformers).
BLANK = "\u2400"


def transformer_to_xlm_roberta_xl(encoder) -> tuple[dict, dict[str, torch.Tensor]]:
    """(config.json as a dict, state dict of `XLMRobertaXLModel`) of a `TinyTransformer` (weights copied)."""
    layers = list(encoder.encoder.layers)
    first = layers[0]
    dim = int(encoder.embed.weight.shape[1])
    max_length = int(encoder.position.shape[0])
    eps = float(first.norm1.eps)
    if not first.norm_first or first.activation_relu_or_gelu != 2:
        raise ValueError("the transformer encoder must be pre-norm with GELU (norm_first=True, activation='gelu') "
                         "to map onto XLM-RoBERTa-XL")
    dropout = float(first.dropout.p)
    config = {
        "architectures": ["XLMRobertaXLModel"], "model_type": "xlm-roberta-xl",
        "vocab_size": int(encoder.embed.weight.shape[0]), "hidden_size": dim, "num_hidden_layers": len(layers),
        "num_attention_heads": int(first.self_attn.num_heads), "intermediate_size": int(first.linear1.out_features),
        "hidden_act": "gelu", "hidden_dropout_prob": dropout, "attention_probs_dropout_prob": dropout,
        "max_position_embeddings": max_length + 1, "type_vocab_size": 1, "layer_norm_eps": eps,
        "initializer_range": 0.02, "pad_token_id": 0, "bos_token_id": None, "eos_token_id": None,
        "position_embedding_type": "absolute", "is_decoder": False, "add_cross_attention": False,
        "use_cache": False, "tie_word_embeddings": False, "dtype": "float32",
    }
    w = encoder.embed.weight.detach()
    positions = torch.zeros(max_length + 1, dim, dtype=w.dtype)
    positions[1:] = encoder.position.detach()                         # our position i -> RoBERTa's i + 1
    state = {"embeddings.word_embeddings.weight": w,
             "embeddings.position_embeddings.weight": positions,
             "embeddings.token_type_embeddings.weight": torch.zeros(1, dim, dtype=w.dtype)}
    for i, layer in enumerate(layers):
        p = f"encoder.layer.{i}."
        q, k, v = layer.self_attn.in_proj_weight.detach().chunk(3, 0)       # (D, D) each
        qb, kb, vb = layer.self_attn.in_proj_bias.detach().chunk(3, 0)
        state.update({
            p + "attention.self_attn_layer_norm.weight": layer.norm1.weight, p + "attention.self_attn_layer_norm.bias":
                layer.norm1.bias,
            p + "attention.self.query.weight": q, p + "attention.self.query.bias": qb,
            p + "attention.self.key.weight": k, p + "attention.self.key.bias": kb,
            p + "attention.self.value.weight": v, p + "attention.self.value.bias": vb,
            p + "attention.output.dense.weight": layer.self_attn.out_proj.weight,
            p + "attention.output.dense.bias": layer.self_attn.out_proj.bias,
            p + "LayerNorm.weight": layer.norm2.weight, p + "LayerNorm.bias": layer.norm2.bias,
            p + "intermediate.dense.weight": layer.linear1.weight, p + "intermediate.dense.bias": layer.linear1.bias,
            p + "output.dense.weight": layer.linear2.weight, p + "output.dense.bias": layer.linear2.bias,
        })
    state.update({"encoder.LayerNorm.weight": encoder.norm.weight, "encoder.LayerNorm.bias": encoder.norm.bias,
                  "pooler.dense.weight": torch.zeros(dim, dim, dtype=w.dtype),
                  "pooler.dense.bias": torch.zeros(dim, dtype=w.dtype)})
    return config, {k: t.detach() for k, t in state.items()}


def fast_tokenizer_json(tokenizer) -> str:
    """tokenizer.json of our fitted `tokenizers` pipeline, with a first normaliser that maps a whitespace-only
    text to `BLANK` (one [UNK], as `TextTokenizer.encode` gives it)."""
    from tokenizers import Regex, Tokenizer, normalizers
    tok = Tokenizer.from_str(tokenizer.tokenizer.to_str())
    blank = normalizers.Replace(Regex(r"\A\s*\z"), BLANK)
    tok.normalizer = normalizers.Sequence([blank] + ([tok.normalizer] if tok.normalizer is not None else []))
    return tok.to_str()


def tokenizer_config(max_length: int) -> dict:
    """tokenizer_config.json for our fitted `tokenizers` pipeline as a fast tokenizer: no special tokens added
    (contrastlab encodes without them), [PAD] id 0 and [UNK] id 1, only input_ids and attention_mask."""
    return {"tokenizer_class": "PreTrainedTokenizerFast", "pad_token": "[PAD]", "unk_token": "[UNK]",
            "model_max_length": int(max_length), "model_input_names": ["input_ids", "attention_mask"],
            "clean_up_tokenization_spaces": False, "padding_side": "right", "truncation_side": "right"}
