"""`contrastlab export`: tiny runs of every kind exported and loaded back by the peer libraries.

Text towers are loaded by sentence-transformers in a separate interpreter where contrastlab cannot be imported
(HF_HUB_OFFLINE=1) and compared with the run's own embedder (what `contrastlab search` embeds with) to 1e-5; image
towers are rebuilt from their safetensors and config.json and compared with the run's embedder; ONNX is run by
onnxruntime and compared with torch to 1e-4. Every bad input's message is checked."""
from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from contrastlab import devices
from contrastlab.cli import main
from contrastlab.data import load_images
from contrastlab.data.text import PairData, TextData
from contrastlab.export import MANIFEST, export_run, load_image_encoder
from contrastlab.export.st_module import ContrastlabText
from contrastlab.runs import load_run
from contrastlab.train import TrainConfig, Trainer
from tests.methods.test_clip import toy_data

WORDS = ["river", "stone", "light", "market", "garden", "winter", "paper", "signal", "orange", "harbour", "violin",
         "engine", "forest", "silver", "window", "thunder"]

#: Texts to embed: seen and unseen words, accents and capitals (the BPE normaliser), digits, one text longer than
#: the tokenizer's max_length (truncation), one token, only whitespace (one [UNK] in contrastlab), line breaks.
PROBE_TEXTS = ["river stone light", "Márket GARDEN 42 winter", "unseen zyzzyva words", "violin " * 40, "engine",
               "forest, silver; window!", "  \t ", "thunder paper\n\nsignal orange harbour"]

#: text encoder -> encoder options (tiny sizes; the bag with bigrams and its residual MLP)
TEXT_CASES = {"bag": {"dim": 16, "bigram_buckets": 64, "hidden": 8},
              "cnn": {"dim": 8, "channels": 6, "kernels": (1, 3)},
              "transformer": {"dim": 16, "layers": 2, "heads": 2, "ff": 32}}


def _text_data(kind: str) -> TextData:
    rng = random.Random(0)
    anchors = [" ".join(rng.choice(WORDS) + (str(rng.randrange(10)) if rng.random() < 0.2 else "")
                        for _ in range(5)) for _ in range(64)]
    return TextData("toy-text", PairData(anchors=anchors, positives=[" ".join(a.split()[::-1]) for a in anchors]),
                    None, tokenizer=kind)


def _train(run_dir: Path, data, **config) -> Path:
    cfg = TrainConfig(**{"data": "toy", "steps": 3, "batch_size": 16, "final_eval": False, "threads": 1,
                         "probe_size": 16, "monitor_bank": 32, "checkpoint_minutes": 100.0, **config})
    Trainer.from_config(cfg, run_dir, show_progress=False, data=data).fit()
    return run_dir


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    """Tiny trained runs: one per text encoder (BPE for the transformer, words for the others), an image run and
    an image-text run."""
    root = tmp_path_factory.mktemp("runs")
    out = {name: _train(root / name, _text_data("bpe" if name == "transformer" else "words"), method="pairs",
                        encoder=name, encoder_options=opts, max_length=12) for name, opts in TEXT_CASES.items()}
    digits = load_images("digits")
    out["simclr"] = _train(root / "simclr", digits, method="simclr", encoder_options={"widths": [4, 8, 8, 8]},
                           hyperparameters={"proj_hidden_dim": 16, "proj_dim": 8})
    out["clip"] = _train(root / "clip", toy_data(), method="clip", batch_size=12,
                         encoder_options={"widths": [4, 4, 8, 8]},
                         hyperparameters={"text_encoder": "bag", "embed_dim": 8})
    out["clip-transformer"] = _train(root / "clip-transformer", toy_data(), method="clip", batch_size=12,
                                     encoder_options={"widths": [4, 4, 8, 8]},
                                     hyperparameters={"text_encoder": "transformer", "embed_dim": 8})
    return out


def _st_vectors(folders: list[Path], texts: list[str], tmp: Path) -> list[np.ndarray]:
    """SentenceTransformer(folder).encode(texts) for each folder, in an interpreter where `import contrastlab`
    fails, offline."""
    code = ("import sys, json, numpy as np\n"
            "sys.modules['contrastlab'] = None            # the export must load without contrastlab\n"
            "from sentence_transformers import SentenceTransformer\n"
            "folders, texts, out = json.loads(sys.argv[1]), json.loads(sys.argv[2]), sys.argv[3]\n"
            "for i, f in enumerate(folders):\n"
            "    m = SentenceTransformer(f, device=None, trust_remote_code=True, local_files_only=True)\n"
            "    np.save(f'{out}/{i}.npy', m.encode(texts, batch_size=3, convert_to_numpy=True))\n")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp / "hf"), "TOKENIZERS_PARALLELISM": "false"}
    p = subprocess.run([sys.executable, "-c", code, json.dumps([str(f) for f in folders]), json.dumps(texts),
                        str(tmp)], capture_output=True, text=True, timeout=600, env=env, cwd=tmp)
    assert p.returncode == 0, p.stderr[-3000:]
    return [np.load(tmp / f"{i}.npy") for i in range(len(folders))]


def test_text_runs_load_in_sentence_transformers_with_the_search_vectors(runs, tmp_path):
    folders = []
    for name in TEXT_CASES:
        manifest = export_run(runs[name], format="sentence-transformers", out=tmp_path / name)
        assert manifest["towers"]["."]["trust_remote_code"] == (name != "transformer")
        folders.append(tmp_path / name)
    modules = json.loads((tmp_path / "transformer" / "modules.json").read_text())
    assert [m["type"].rsplit(".", 1)[1] for m in modules] == ["Transformer", "Pooling", "Normalize"]
    assert json.loads((tmp_path / "transformer" / "config.json").read_text())["architectures"] == [
        "XLMRobertaXLModel"]
    assert not (tmp_path / "transformer" / "contrastlab_text.py").exists()      # plain transformers: no custom code
    got = _st_vectors(folders, PROBE_TEXTS, tmp_path)
    for name, vectors in zip(TEXT_CASES, got):
        want = load_run(runs[name], device=devices.CPU).embedder().encode_texts(PROBE_TEXTS)
        assert vectors.shape == want.shape
        np.testing.assert_allclose(vectors, want, atol=1e-5, err_msg=name)


def test_the_transformer_maps_onto_xlm_roberta_xl_token_for_token(runs, tmp_path):
    """The converted tokenizer gives our ids (the BPE normaliser, truncation at max_length included)."""
    from transformers import AutoTokenizer
    export_run(runs["transformer"], format="sentence-transformers", out=tmp_path / "t")
    tok = AutoTokenizer.from_pretrained(str(tmp_path / "t"), local_files_only=True)
    ours = load_run(runs["transformer"], device=devices.CPU).method.encoder.tokenizer
    ids, mask = ours.encode(PROBE_TEXTS)
    theirs = tok(PROBE_TEXTS, padding=True, truncation=True, max_length=ours.max_length, return_tensors="pt")
    assert torch.equal(theirs["input_ids"], ids) and torch.equal(theirs["attention_mask"].bool(), mask)


def test_image_run_safetensors_round_trip_gives_the_search_features(runs, tmp_path):
    manifest = export_run(runs["simclr"], format="safetensors", out=tmp_path / "img")
    assert sorted(p.name for p in (tmp_path / "img").iterdir()) == ["config.json", MANIFEST, "model.safetensors"]
    config = json.loads((tmp_path / "img" / "config.json").read_text())
    assert (config["architecture"], config["in_channels"], config["image_size"]) == ("small_cnn", 1, [8, 8])
    assert config["embedding_dim"] == manifest["towers"]["."]["embedding_dim"] == 40 and len(config["std"]) == 1
    x = load_images("digits").x[:20]                                               # (20, 1, 8, 8) uint8
    want = load_run(runs["simclr"], device=devices.CPU).embedder().encode_images(x)
    with torch.inference_mode():
        got = load_image_encoder(tmp_path / "img")(x.float() / 255).numpy()
    np.testing.assert_allclose(got, want, atol=1e-5)


def test_image_run_onnx_matches_torch_in_onnxruntime(runs, tmp_path):
    import onnxruntime
    export_run(runs["simclr"], format="onnx", out=tmp_path / "img")
    session = onnxruntime.InferenceSession(str(tmp_path / "img" / "model.onnx"), providers=["CPUExecutionProvider"])
    tower = load_image_encoder(tmp_path / "img")
    x = load_images("digits").x[:7].float() / 255                                   # (7, 1, 8, 8)
    for batch in (x, x[:1]):                                                         # the batch size is dynamic
        (got,) = session.run(["embedding"], {"pixels": batch.numpy()})
        with torch.inference_mode():
            np.testing.assert_allclose(got, tower(batch).numpy(), atol=1e-4)


def test_image_text_runs_export_both_towers_in_the_shared_space(runs, tmp_path):
    """Text towers of ours as a custom module (bag) and as XLM-RoBERTa-XL (transformer), each then the run's
    projection as a Dense module; the image tower as safetensors and ONNX."""
    cases = ("clip", "clip-transformer")
    for name in cases:
        manifest = export_run(runs[name], format="onnx", out=tmp_path / name)
        assert sorted(manifest["towers"]) == ["image", "text"]
        assert (tmp_path / name / "image" / "model.onnx").is_file()
    types = [m["type"].rsplit(".", 1)[1] for m in json.loads((tmp_path / cases[1] / "text" / "modules.json")
                                                             .read_text())]
    assert types == ["Transformer", "Pooling", "Dense", "Normalize"]
    data = toy_data()
    texts = data.texts["en"][:6] + ["an unseen name"]
    got = _st_vectors([tmp_path / name / "text" for name in cases], texts, tmp_path)
    for name, vectors in zip(cases, got):
        embedder = load_run(runs[name], device=devices.CPU).embedder()
        with torch.inference_mode():
            images = load_image_encoder(tmp_path / name / "image")(data.images[:6].float() / 255).numpy()
        np.testing.assert_allclose(images, embedder.encode_images(data.images[:6].numpy()), atol=1e-5)
        assert vectors.shape == (7, 8) and images.shape == (6, 8)                   # embed_dim: the shared space
        np.testing.assert_allclose(vectors, embedder.encode_texts(texts), atol=1e-5, err_msg=name)


def _tiny_bert(folder: Path) -> Path:
    """A 2-layer BERT with random weights and a word-level tokenizer adding [CLS] / [SEP], built from a config
    (nothing downloaded), saved as a `transformers` folder."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import BertConfig, BertModel, PreTrainedTokenizerFast
    vocab = {t: i for i, t in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", *WORDS, *map(str, range(10))])}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(single="[CLS] $A [SEP]", special_tokens=[("[CLS]", 2),
                                                                                                ("[SEP]", 3)])
    PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="[PAD]", unk_token="[UNK]", cls_token="[CLS]",
                            sep_token="[SEP]").save_pretrained(str(folder))
    torch.manual_seed(0)
    BertModel(BertConfig(vocab_size=len(vocab), hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                         intermediate_size=32, max_position_embeddings=64)).save_pretrained(str(folder))
    return folder


@pytest.fixture(scope="module")
def model_runs(tmp_path_factory) -> dict[str, Path]:
    """Runs that fine-tune a bring-your-own model: hf:BERT and st:BERT (an ST folder with no Normalize module of
    its own), and an image-text run with the default wordllama text tower; "st-bert": the model before training."""
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Pooling, Transformer
    root = tmp_path_factory.mktemp("models")
    bert = _tiny_bert(root / "bert")
    st = root / "st-bert"
    transformer = Transformer(str(bert))
    SentenceTransformer(modules=[transformer, Pooling(16, "mean")], device=str(devices.CPU)).save(str(st))
    data = _text_data("words")
    return {"st-bert": st, "hf": _train(root / "hf", data, method="pairs", encoder=f"hf:{bert}", steps=2, batch_size=8),
            "st": _train(root / "st", data, method="pairs", encoder=f"st:{st}", steps=2, batch_size=8),
            "clip-wordllama": _train(root / "clip-wordllama", toy_data(), method="clip", batch_size=12, steps=2,
                                     encoder_options={"widths": [4, 4, 8, 8]}, hyperparameters={"embed_dim": 8})}


def test_hf_and_st_runs_export_their_fine_tuned_model(model_runs, tmp_path):
    for name in ("hf", "st"):
        export_run(model_runs[name], format="sentence-transformers", out=tmp_path / name)
    export_run(model_runs["clip-wordllama"], format="sentence-transformers", out=tmp_path / "clip")
    folders = [tmp_path / "hf", tmp_path / "st", tmp_path / "clip" / "text", model_runs["st-bert"]]
    assert (tmp_path / "hf" / "config.json").is_file() and not (tmp_path / "hf" / "contrastlab_text.py").exists()
    types = [m["type"].rsplit(".", 1)[1] for m in json.loads((tmp_path / "st" / "modules.json").read_text())]
    assert types == ["Transformer", "Pooling", "Normalize"]                     # Normalize added after its own
    *got, before = _st_vectors(folders, PROBE_TEXTS, tmp_path)
    for name, vectors in zip(("hf", "st", "clip-wordllama"), got):
        want = load_run(model_runs[name], device=devices.CPU).embedder().encode_texts(PROBE_TEXTS)
        np.testing.assert_allclose(vectors, want, atol=1e-5, err_msg=name)
    before /= np.linalg.norm(before, axis=1, keepdims=True)
    assert np.abs(got[1] - before).max() > 1e-3                                  # the fine-tuned weights, not the
                                                                                 # model the run started from


# ---------------------------------------------------------------------------------------------------- bad input
def test_an_export_into_a_folder_that_holds_files_is_refused(runs, tmp_path):
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("mine")
    with pytest.raises(FileExistsError, match=r"`--out` '.*full' already exists and is not empty: export into a "
                                              r"new or empty folder"):
        export_run(runs["simclr"], format="safetensors", out=tmp_path / "full")
    assert [p.name for p in (tmp_path / "full").iterdir()] == ["keep.txt"]
    (tmp_path / "empty").mkdir()                                                     # an empty folder is fine
    export_run(runs["simclr"], format="safetensors", out=tmp_path / "empty")
    assert (tmp_path / "empty" / "model.safetensors").is_file()


@pytest.mark.parametrize("run, fmt, message", [
    ("simclr", "sentence-transformers", r"is an image run, which cannot be exported as 'sentence-transformers': an "
                                        r"image run's encoder is not a text model: export it as safetensors or onnx"),
    ("bag", "onnx", r"is a text run, which cannot be exported as 'onnx': a text run exports as "
                    r"sentence-transformers"),
    ("bag", "safetensors", r"is a text run, which cannot be exported as 'safetensors'"),
])
def test_a_format_the_run_cannot_take_is_refused(runs, tmp_path, run, fmt, message):
    with pytest.raises(ValueError, match=message):
        export_run(runs[run], format=fmt, out=tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_a_folder_that_is_not_a_run_and_an_unknown_format_are_refused(runs, tmp_path):
    (tmp_path / "plain").mkdir()
    with pytest.raises(ValueError, match=r"RUN '.*plain' is not a run directory \(no config.json there: give a "
                                         r"folder written by `contrastlab train`\)"):
        export_run(tmp_path / "plain", format="onnx", out=tmp_path / "out")
    with pytest.raises(ValueError, match=r"`format` must be one of \['sentence-transformers', 'safetensors', "
                                         r"'onnx'\], got 'pickle'"):
        export_run(runs["simclr"], format="pickle", out=tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_a_corrupt_safetensors_file_is_named(runs, tmp_path):
    export_run(runs["simclr"], format="safetensors", out=tmp_path / "img")
    weights = tmp_path / "img" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])                                 # truncated
    with pytest.raises(ValueError, match=rf"{weights} \(100 bytes\) is not a readable safetensors file \(corrupt or "
                                         r"truncated\)"):
        load_image_encoder(tmp_path / "img")
    export_run(runs["bag"], format="sentence-transformers", out=tmp_path / "txt")
    module = tmp_path / "txt" / "0_ContrastlabText"
    (module / "model.safetensors").write_bytes(b"not safetensors at all")
    with pytest.raises(ValueError, match=rf"{module / 'model.safetensors'} \(22 bytes\) is not a readable "
                                         r"safetensors file"):
        ContrastlabText.load(str(tmp_path / "txt"), "0_ContrastlabText")


def test_a_failed_export_leaves_nothing_behind(runs, tmp_path, monkeypatch):
    def broken(*args, **kwargs):
        raise ValueError("the 'small_cnn' image encoder does not export to ONNX (boom)")
    monkeypatch.setattr("contrastlab.export.towers.write_onnx", broken)
    with pytest.raises(ValueError, match="does not export to ONNX"):
        export_run(runs["simclr"], format="onnx", out=tmp_path / "out")
    assert list(tmp_path.iterdir()) == []                                            # no DIR, no temporary sibling


def test_the_command_exports_and_reports_errors(runs, tmp_path, capsys):
    assert main(["export", str(runs["simclr"]), "--format", "safetensors", "--out", str(tmp_path / "a")]) == 0
    assert f"{tmp_path / 'a'}: safetensors, 40-dimensional" in capsys.readouterr().out
    with pytest.raises(SystemExit) as e:
        main(["export", str(runs["simclr"]), "--format", "safetensors", "--out", str(tmp_path / "a")])
    assert e.value.code == 2 and "contrastlab export: `--out`" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        main(["export", str(runs["simclr"]), "--format", "pickle", "--out", str(tmp_path / "b")])
    assert e.value.code == 2 and "invalid choice: 'pickle'" in capsys.readouterr().err


def test_an_out_that_is_a_file_and_a_run_of_another_kind_are_refused(runs, tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(FileExistsError, match=r"`--out` '.*file' is a file: export into a new or empty folder"):
        export_run(runs["simclr"], format="onnx", out=tmp_path / "file")
    (tmp_path / "audio").mkdir()
    (tmp_path / "audio" / "config.json").write_text(json.dumps({"train": {}, "model": {"modality": "audio"}}))
    with pytest.raises(ValueError, match=r"RUN '.*audio': runs of modality 'audio' cannot be exported; those that "
                                         r"can: \['image', 'image_text', 'text'\]"):
        export_run(tmp_path / "audio", format="onnx", out=tmp_path / "out")


def test_an_exported_image_folder_that_is_damaged_is_named(runs, tmp_path):
    folder = tmp_path / "img"
    export_run(runs["simclr"], format="safetensors", out=folder)
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "encoder_options": {"widths": [4, 4, 4, 4]}}))
    with pytest.raises(ValueError, match=rf"{folder / 'model.safetensors'} does not match the encoder that "
                                         r"config.json describes"):
        load_image_encoder(folder)
    (folder / "config.json").write_text(json.dumps({**config, "format": "something-else"}))
    with pytest.raises(ValueError, match=r"config.json does not describe an exported contrastlab image encoder \(its "
                                         r"'format' must be 'contrastlab-image-encoder', got 'something-else'\)"):
        load_image_encoder(folder)
    (folder / "config.json").write_text("{")
    with pytest.raises(ValueError, match=r"config.json is not valid JSON"):
        load_image_encoder(folder)
    (folder / "config.json").unlink()
    with pytest.raises(FileNotFoundError, match=r"img is not an exported image encoder \(config.json is missing\)"):
        load_image_encoder(folder)
    (folder / "config.json").write_text(json.dumps(config))
    (folder / "model.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match=r"model.safetensors is missing \(the exported weights\)"):
        load_image_encoder(folder)


def test_an_image_tower_that_does_not_give_the_runs_features_is_not_exported(runs, tmp_path, monkeypatch):
    from contrastlab.export import towers
    real = towers.load_image_encoder

    def shifted(folder):
        tower = real(folder)
        with torch.no_grad():
            tower.encoder.features[0].weight.add_(0.1)
        return tower
    monkeypatch.setattr(towers, "load_image_encoder", shifted)
    with pytest.raises(ValueError, match=r"the exported image encoder differs from the run's embedder by .* \(> "
                                         r"1e-05\): method 'simclr' does not embed images with its encoder alone; not "
                                         r"exported"):
        export_run(runs["simclr"], format="safetensors", out=tmp_path / "out")
    assert list(tmp_path.iterdir()) == []


def test_an_encoder_that_does_not_export_to_onnx_says_so(runs, tmp_path, monkeypatch):
    def unsupported(*args, **kwargs):
        raise RuntimeError("no symbolic function for aten::weird_op\nmore detail")
    monkeypatch.setattr(torch.onnx, "export", unsupported)
    with pytest.raises(ValueError, match=r"the 'small_cnn' image encoder does not export to ONNX \(RuntimeError: no "
                                         r"symbolic function for aten::weird_op\); export it with --format "
                                         r"safetensors instead"):
        export_run(runs["simclr"], format="onnx", out=tmp_path / "out")
    assert list(tmp_path.iterdir()) == []


def test_text_encoders_that_cannot_be_exported_are_named(tmp_path):
    from contrastlab.export.hf_transformer import transformer_to_xlm_roberta_xl
    from contrastlab.export.text import write_text_tower
    from contrastlab.models.text import TextEncoder, TextTokenizer, create_text_encoder

    class Chars(TextEncoder):
        out_dim = 1
    with pytest.raises(ValueError, match=r"a Chars text encoder cannot be exported to sentence-transformers; those "
                                         r"that can: \['BagOfEmbeddings', 'HFTextEncoder', "):
        write_text_tower(Chars(), tmp_path)
    tok = TextTokenizer.train(WORDS * 2, kind="words")
    enc = create_text_encoder("transformer", tokenizer=tok, dim=8, layers=1, heads=2, ff=8)
    enc.encoder.layers[0].norm_first = False
    with pytest.raises(ValueError, match=r"must be pre-norm with GELU \(norm_first=True, activation='gelu'\) to map "
                                         r"onto XLM-RoBERTa-XL"):
        transformer_to_xlm_roberta_xl(enc)


def test_the_custom_module_names_a_missing_file_and_a_bad_kind(runs, tmp_path):
    export_run(runs["cnn"], format="sentence-transformers", out=tmp_path / "txt")
    module = tmp_path / "txt" / "0_ContrastlabText"
    config = json.loads((module / "config.json").read_text())
    (module / "config.json").write_text(json.dumps({**config, "kind": "lstm"}))
    with pytest.raises(ValueError, match=r"`kind` in config.json must be one of \['bag', 'cnn', 'mean'\], got 'lstm'"):
        ContrastlabText.load(str(tmp_path / "txt"), "0_ContrastlabText")
    (module / "tokenizer.json").unlink()
    with pytest.raises(FileNotFoundError, match=r"0_ContrastlabText/tokenizer.json is missing \(a contrastlab text "
                                                r"encoder's folder holds config.json, tokenizer.json and "
                                                r"model.safetensors\)"):
        ContrastlabText.load(str(tmp_path / "txt"), "0_ContrastlabText")
