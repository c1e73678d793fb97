"""A text tower as a sentence-transformers folder: ``SentenceTransformer(DIR)`` gives the vectors `contrastlab search`
embeds with (the tower's output, through an image-text run's projection when there is one, L2-normalised).

`TEXT_TOWERS` maps each kind of text encoder to what writes its first modules:

* ``TinyTransformer`` ("transformer"): converted weight for weight to XLM-RoBERTa-XL (`hf_transformer`), a plain
  `transformers` model with our fitted tokenizer as a fast tokenizer; mean Pooling. Loads with no custom code.
* ``BagOfEmbeddings`` ("bag"), ``TextCNN`` ("cnn") and ``WordLlamaEncoder`` ("wordllama", an image-text run's
  default text tower): no `transformers` architecture computes a hashed-bigram bag, a max+mean-pooled CNN or a
  clamped token-table mean, so they are a small custom module (`st_module`, copied into the folder as
  ``contrastlab_text.py``): load with ``trust_remote_code=True``; contrastlab need not be installed.
* ``HFTextEncoder`` ("hf:PATH"): the fine-tuned model and its own tokenizer, saved by `transformers`; Pooling in
  the run's mode (mean or cls).
* ``SentenceTransformerEncoder`` ("st:PATH"): the fine-tuned model's own modules, saved by sentence-transformers.

Then a Dense module (no bias, no activation) when the tower has a projection, and a Normalize module unless the
model already ends with one.

>>> sorted(t.__name__ for t in TEXT_TOWERS)
['BagOfEmbeddings', 'HFTextEncoder', 'SentenceTransformerEncoder', 'TextCNN', 'TinyTransformer', 'WordLlamaEncoder']
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Callable

import torch

from .. import __version__
from ..models.text import BagOfEmbeddings, TextCNN, TinyTransformer
from ..models.text.external import HFTextEncoder, SentenceTransformerEncoder, WordLlamaEncoder
from . import st_module
from .folders import write_json_file, write_safetensors
from .hf_transformer import fast_tokenizer_json, tokenizer_config, transformer_to_xlm_roberta_xl

__all__ = ["TEXT_TOWERS", "write_text_tower", "CUSTOM_MODULE_FILE", "ST_MODULES"]

#: sentence-transformers' module classes, as its version 6 saves them in modules.json.
ST_MODULES = {"transformer": "sentence_transformers.base.modules.transformer.Transformer",
              "pooling": "sentence_transformers.sentence_transformer.modules.pooling.Pooling",
              "dense": "sentence_transformers.base.modules.dense.Dense",
              "normalize": "sentence_transformers.base.modules.normalize.Normalize"}
#: The custom module's file name in an exported folder (its class: contrastlab_text.ContrastlabText).
CUSTOM_MODULE_FILE = "contrastlab_text.py"

#: encoder type -> writer(encoder, folder) -> (modules [(path, type)], output dimension, needs remote code)
TEXT_TOWERS: dict[type, Callable] = {}


def _tower(*types):
    def deco(fn):
        for t in types:
            TEXT_TOWERS[t] = fn
        return fn
    return deco


def _transformer_folder_files(folder: Path, *, max_length: int) -> None:
    write_json_file(folder / "sentence_bert_config.json",
                    {"transformer_task": "feature-extraction",
                     "modality_config": {"text": {"method": "forward", "method_output_name": "last_hidden_state"}},
                     "module_output_name": "token_embeddings", "max_seq_length": int(max_length),
                     "do_lower_case": False})


def _pooling(folder: Path, name: str, dim: int, mode: str) -> tuple[str, str]:
    (folder / name).mkdir()
    write_json_file(folder / name / "config.json",
                    {"embedding_dimension": int(dim), "pooling_mode": mode, "include_prompt": True})
    return name, ST_MODULES["pooling"]


@_tower(TinyTransformer)
def _our_transformer(encoder, folder: Path):
    config, state = transformer_to_xlm_roberta_xl(encoder)
    write_json_file(folder / "config.json", {**config, "contrastlab_version": __version__})
    write_safetensors(folder / "model.safetensors", state, metadata={"format": "pt"})
    (folder / "tokenizer.json").write_text(fast_tokenizer_json(encoder.tokenizer), encoding="utf-8")
    write_json_file(folder / "tokenizer_config.json", tokenizer_config(encoder.tokenizer.max_length))
    _transformer_folder_files(folder, max_length=encoder.tokenizer.max_length)
    return [("", ST_MODULES["transformer"]), _pooling(folder, "1_Pooling", encoder.out_dim, "mean")], \
        encoder.out_dim, False


def _bag_parts(encoder) -> tuple[dict, str, dict]:
    hidden = encoder.mlp[1].out_features if encoder.mlp is not None else 0
    return ({"kind": "bag", "dim": encoder.out_dim, "bigram_buckets": encoder.bigram_buckets, "hidden": hidden,
             "max_length": encoder.tokenizer.max_length}, encoder.tokenizer.tokenizer.to_str(), encoder.state_dict())


def _cnn_parts(encoder) -> tuple[dict, str, dict]:
    return ({"kind": "cnn", "dim": int(encoder.embed.weight.shape[1]), "channels": encoder.convs[0].out_channels,
             "kernels": [int(c.kernel_size[0]) for c in encoder.convs], "max_length": encoder.tokenizer.max_length},
            encoder.tokenizer.tokenizer.to_str(), encoder.state_dict())


def _wordllama_parts(encoder) -> tuple[dict, str, dict]:
    weight = encoder.weight.detach()                    # a buffer outside the state dict when frozen: named here
    return ({"kind": "mean", "dim": encoder.out_dim, "vocab_size": int(weight.shape[0]),
             "max_length": encoder.max_length, "source": f"wordllama {encoder.config}"},
            encoder.tokenizer.to_str(), {"embed.weight": weight})


#: encoder type -> (the custom module's config, its tokenizer JSON, its state dict)
CUSTOM_PARTS: dict[type, Callable] = {BagOfEmbeddings: _bag_parts, TextCNN: _cnn_parts,
                                      WordLlamaEncoder: _wordllama_parts}


@_tower(*CUSTOM_PARTS)
def _custom(encoder, folder: Path):
    name = "0_ContrastlabText"
    config, tokenizer, state = CUSTOM_PARTS[type(encoder)](encoder)
    sub = folder / name
    sub.mkdir()
    write_json_file(sub / st_module.CONFIG, {**config, "contrastlab_version": __version__})
    (sub / st_module.TOKENIZER).write_text(tokenizer, encoding="utf-8")
    write_safetensors(sub / st_module.WEIGHTS, dict(state))
    shutil.copyfile(st_module.__file__, folder / CUSTOM_MODULE_FILE)
    return [(name, f"{Path(CUSTOM_MODULE_FILE).stem}.{st_module.ContrastlabText.__name__}")], encoder.out_dim, True


@_tower(HFTextEncoder)
def _hf(encoder, folder: Path):
    encoder.tokenizer.model_max_length = encoder.max_length
    encoder.model.save_pretrained(str(folder), safe_serialization=True)
    encoder.tokenizer.save_pretrained(str(folder))
    _transformer_folder_files(folder, max_length=encoder.max_length)
    return [("", ST_MODULES["transformer"]), _pooling(folder, "1_Pooling", encoder.out_dim, encoder.pooling)], \
        encoder.out_dim, False


@_tower(SentenceTransformerEncoder)
def _st(encoder, folder: Path):
    encoder.model.save(str(folder), safe_serialization=True)
    modules = json.loads((folder / "modules.json").read_text(encoding="utf-8"))
    return [(m["path"], m["type"]) for m in modules], encoder.out_dim, False


def write_text_tower(encoder, folder: Path, *, projection: torch.Tensor | None = None) -> dict:
    """Write `encoder` (a text encoder of `TEXT_TOWERS`) into empty `folder` as a sentence-transformers model,
    with `projection` (E, D) as a Dense module when given, then Normalize; returns what it wrote (a small dict)."""
    writer = TEXT_TOWERS.get(type(encoder))
    if writer is None:
        raise ValueError(f"a {type(encoder).__name__} text encoder cannot be exported to sentence-transformers; "
                         f"those that can: {sorted(t.__name__ for t in TEXT_TOWERS)}")
    encoder = encoder.eval()
    modules, dim, remote = writer(encoder, folder)
    if projection is not None:
        name = f"{len(modules)}_Dense"
        (folder / name).mkdir()
        write_json_file(folder / name / "config.json",
                        {"in_features": int(projection.shape[1]), "out_features": int(projection.shape[0]),
                         "bias": False, "activation_function": "torch.nn.modules.linear.Identity"})
        write_safetensors(folder / name / "model.safetensors", {"linear.weight": projection})
        modules.append((name, ST_MODULES["dense"]))
        dim = int(projection.shape[0])
    if not modules[-1][1].endswith(".Normalize"):
        name = f"{len(modules)}_Normalize"
        (folder / name).mkdir()
        write_json_file(folder / name / "config.json",
                        {"module_input_name": "sentence_embedding", "module_output_name": "sentence_embedding"})
        modules.append((name, ST_MODULES["normalize"]))
    write_json_file(folder / "modules.json", [{"idx": i, "name": str(i), "path": path, "type": kind}
                                              for i, (path, kind) in enumerate(modules)])
    if not (folder / "config_sentence_transformers.json").exists():       # an st: model keeps its own
        write_json_file(folder / "config_sentence_transformers.json",
                        {"__version__": {"pytorch": torch.__version__, "contrastlab": __version__},
                         "model_type": "SentenceTransformer", "prompts": {"query": "", "document": ""},
                         "default_prompt_name": None, "similarity_fn_name": "cosine"})
    return {"format": "sentence-transformers", "embedding_dim": dim, "encoder": type(encoder).__name__,
            "trust_remote_code": remote}
