"""The one dataset registry: every modality in `DATASETS`, modality lookup for every spec form, names and suffixes
unique across modalities, the grouped error for an unclaimed spec, loaders refusing specs of another modality, and
`load_data` dispatching by modality."""

import re
from types import SimpleNamespace

import pytest
import torch

from contrastlab import data as data_module
from contrastlab.cli import main
from contrastlab.data import (ImageData, ImageTextData, TextData, dataset_modality, list_datasets,
                              list_image_text_datasets, list_text_datasets, load_image_text, load_images,
                              load_sequences, load_text, register_dataset, register_image_text_dataset,
                              register_text_dataset, registry, resolve_dataset, text_registry)
from contrastlab.data import image_text as image_text_module
from contrastlab.data.text import PairData
from contrastlab.train import tasks


@pytest.fixture
def fresh(monkeypatch):
    """A copy of the registry, so toy loaders do not leak into other tests."""
    monkeypatch.setattr(registry, "DATASETS", dict(registry.DATASETS))


def test_one_registry_holds_every_modality():
    modality = {name: ds.modality for name, ds in registry.DATASETS.items()}
    assert modality["digits"] == "image" and modality["wordnet"] == "text" and modality["emoji"] == "image_text"
    assert set(modality.values()) == {"image", "text", "image_text", "sequence"}
    assert set(list_datasets()) == set(registry.DATASETS)
    assert list_datasets("text") == list_text_datasets() == sorted(n for n, m in modality.items() if m == "text")
    assert list_datasets("image_text") == list_image_text_datasets() == ["captions", "emoji"]
    # no second (or third) dict of datasets
    for module in (text_registry, image_text_module, data_module):
        assert not [k for k, v in vars(module).items() if isinstance(v, dict) and k.endswith("DATASETS")
                    and v is not registry.DATASETS], module


def test_wrappers_register_into_the_one_registry(fresh):
    register_text_dataset("toy-text", options=("flavour",))(lambda path, *, root, flavour="": None)
    register_image_text_dataset("toy-pics", takes_path=True)(lambda path, *, root: None)
    assert registry.DATASETS["toy-text"].modality == "text" and registry.DATASETS["toy-text"].options == ("flavour",)
    assert registry.DATASETS["toy-pics"].modality == "image_text" and registry.DATASETS["toy-pics"].takes_path


@pytest.mark.parametrize("spec, modality, name, path", [
    ("digits", "image", "digits", None),
    (" FMNIST ", "image", "fashion-mnist", None),                     # alias, case, spaces
    ("npz:some/x.bin", "image", "npz", "some/x.bin"),
    ("Data/A.NPZ", "image", "npz", "Data/A.NPZ"),                     # suffix, any case
    ("Folder:photos/", "image", "folder", "photos/"),
    ("wordnet", "text", "wordnet", None),
    ("Verses", "text", "verses-en-es", None),
    ("ML-100K", "text", "movielens-100k", None),
    ("PAIRS:x.csv", "text", "pairs", "x.csv"),
    ("t.JSONL", "text", "pairs", "t.JSONL"),
    ("t.parquet", "text", "pairs", "t.parquet"),
    ("clicks:log.jsonl", "text", "clicks", "log.jsonl"),              # NAME:PATH beats the path's suffix
    ("npz:odd.jsonl", "image", "npz", "odd.jsonl"),
    ("emoji", "image_text", "emoji", None),
    ("Captions:/some/folder", "image_text", "captions", "/some/folder"),
])
def test_modality_of_every_spec_form(spec, modality, name, path):
    ds, got_path = resolve_dataset(spec)
    assert (ds.name, got_path) == (name, path)
    assert dataset_modality(spec) == tasks.data_modality(spec) == modality


def test_names_and_suffixes_are_unique_across_modalities(fresh):
    with pytest.raises(ValueError, match=r"^an image dataset named 'digits' is already registered \(names are "
                                         r"unique across modalities\)$"):
        register_text_dataset("digits")
    with pytest.raises(ValueError, match=r"^a text dataset named 'wordnet' is already registered"):
        register_dataset("wordnet")
    with pytest.raises(ValueError, match=r"^an image-text dataset named 'emoji' is already registered"):
        register_dataset("new", aliases=("emoji",))
    with pytest.raises(ValueError, match=r"^a text dataset named 'verses' is already registered"):
        register_image_text_dataset("verses")
    with pytest.raises(ValueError, match=r"^suffix '.jsonl' is already claimed by a text dataset 'pairs' \(a bare "
                                         r"path must name one dataset\)$"):
        register_dataset("jsonl-images", takes_path=True, suffixes=(".jsonl",))
    with pytest.raises(ValueError, match=r"^suffix '.npz' is already claimed by an image dataset 'npz'"):
        register_text_dataset("npz-text", takes_path=True, suffixes=(".npz",))
    assert "new" not in registry.DATASETS and "jsonl-images" not in registry.DATASETS


@pytest.mark.parametrize("kw, exc, msg", [
    (dict(modality="audio"), ValueError, r"`modality` must be one of image, text, image_text, sequence, got 'audio'"),
    (dict(aliases="toy2"), TypeError, r"`aliases` must be a tuple of str, got 'toy2'"),
    (dict(options=("a", 3)), TypeError, r"`options` must be a tuple of str, got \('a', 3\)"),
    (dict(aliases=("toy",)), ValueError, r"`aliases` must differ from the name and from each other, got 'toy' twice"),
    (dict(takes_path=1), TypeError, r"`takes_path` must be a bool, got 1"),
    (dict(streams="yes"), TypeError, r"`streams` must be a bool, got 'yes'"),
    (dict(description=3), TypeError, r"`description` must be a str, got int"),
    (dict(takes_path=True, suffixes=(".TXT",)), ValueError, r"`suffixes` must be lower-case str starting with '\.', "
                                                            r"got '\.TXT'"),
    (dict(suffixes=(".toy",)), ValueError, r"`suffixes` need `takes_path=True` \(a bare path is passed to the "
                                           r"loader\), got suffixes=\('\.toy',\) for 'toy'"),
    (dict(options=("root",)), ValueError, r"`options` must be keyword names other than 'root', got 'root'"),
    (dict(options=("a-b",)), ValueError, r"`options` must be keyword names other than 'root', got 'a-b'"),
    (dict(modality="text", streams=True), ValueError, r"`streams` is for image loaders \(load_images' `stream=`\), "
                                                      r"got 'text' for 'toy'"),
])
def test_bad_registrations(fresh, kw, exc, msg):
    with pytest.raises(exc, match=msg):
        register_dataset("toy", **kw)
    assert "toy" not in registry.DATASETS


def test_the_decorator_needs_a_function(fresh):
    with pytest.raises(TypeError, match=r"register_dataset\('toy'\) decorates a loader function, got str"):
        register_dataset("toy")("not a loader")


def _groups(msg: str) -> dict[str, str]:
    """'image datasets: a, b; text datasets: c' -> {'image': 'a, b', 'text': 'c'} (in message order)."""
    return {m.group(1): m.group(2) for m in re.finditer(r"(image|text|image-text|sequence) datasets: (.*?)(?=; |$)", msg)}


def test_an_unclaimed_spec_lists_every_dataset_by_modality():
    with pytest.raises(ValueError) as info:
        resolve_dataset("imagenet")
    msg = str(info.value)
    assert msg.startswith("`spec` must name a registered dataset or use a path form, got 'imagenet'; image datasets: ")
    groups = _groups(msg)
    assert list(groups) == ["image", "text", "image-text", "sequence"]
    words = {"image": "image", "text": "text", "image_text": "image-text", "sequence": "sequence"}
    for name, ds in registry.DATASETS.items():
        entry = rf"(^|, ){re.escape(name)}([ :,(]|$)"            # "name", "name (alias ..)", "name:PATH"
        listed = {g for g, text in groups.items() if re.search(entry, text)}
        assert listed == {words[ds.modality]}, (name, groups)
    assert "fashion-mnist (alias fmnist)" in groups["image"] and "npz:PATH or PATH.npz" in groups["image"]
    assert "pairs:PATH or PATH.jsonl or PATH.csv or PATH.parquet" in groups["text"]
    assert "captions:PATH" in groups["image-text"]


@pytest.mark.parametrize("load, first, head", [
    (load_images, "image", "a registered image dataset"), (load_text, "text", "a registered text dataset"),
    (load_image_text, "image-text", "a registered image-text dataset"),
    (load_sequences, "sequence", "a registered sequence dataset"),
])
def test_each_loader_lists_its_own_modality_first(load, first, head):
    with pytest.raises(ValueError) as info:
        load("garbage")
    msg = str(info.value)
    assert msg.startswith(f"`spec` must name {head} or use a path form, got 'garbage'; ")
    assert list(_groups(msg))[0] == first and len(_groups(msg)) == 4


def test_a_folder_spec_hints_at_the_folder_forms(tmp_path):
    with pytest.raises(ValueError) as info:
        load_images(str(tmp_path))
    assert str(info.value).endswith(f"; {str(tmp_path)!r} is a folder: did you mean 'folder:{tmp_path}' (image) or "
                                    f"'captions:{tmp_path}' (image-text)?")
    with pytest.raises(ValueError, match=rf"is a folder: did you mean 'captions:{re.escape(str(tmp_path))}' "
                                         r"\(image-text\) or 'folder:"):
        load_image_text(str(tmp_path))


@pytest.mark.parametrize("load, spec, msg", [
    (load_images, "wordnet", "`spec` 'wordnet' names text data (a text dataset 'wordnet'), not image data; "
                             "load_images loads image datasets only, load it with load_text"),
    (load_images, "train.jsonl", "`spec` 'train.jsonl' names text data (a text dataset 'pairs'), not image data; "
                                 "load_images loads image datasets only, load it with load_text"),
    (load_images, "emoji", "`spec` 'emoji' names image-text data (an image-text dataset 'emoji'), not image data; "
                           "load_images loads image datasets only, load it with load_image_text"),
    (load_text, "digits", "`spec` 'digits' names image data (an image dataset 'digits'), not text data; "
                          "load_text loads text datasets only, load it with load_images"),
    (load_image_text, "a.npz", "`spec` 'a.npz' names image data (an image dataset 'npz'), not image-text data; "
                               "load_image_text loads image-text datasets only, load it with load_images"),
])
def test_a_loader_refuses_another_modality(load, spec, msg):
    with pytest.raises(ValueError) as info:
        load(spec)
    assert str(info.value) == msg


@pytest.mark.parametrize("call, msg", [
    (lambda: list_datasets("audio"), "`modality` must be one of image, text, image_text, sequence or None, got 'audio'"),
    (lambda: resolve_dataset("digits", modality="sound"), "`modality` must be one of image, text, image_text, "
                                                          "sequence or None, got 'sound'"),
    (lambda: resolve_dataset(""), "`spec` must be a non-empty str, got ''"),
    (lambda: dataset_modality(None), "`spec` must be a non-empty str, got None"),
])
def test_bad_lookups(call, msg):
    with pytest.raises(ValueError) as info:
        call()
    assert str(info.value) == msg


def _toy_registry():
    """One toy loader per modality, each returning its arguments in `notes` / `name`."""
    @register_dataset("toy-img")
    def images(path, *, root, image_size):
        return ImageData("toy-img", torch.zeros(4, 1, 6, 6, dtype=torch.uint8), None, None, None, None,
                         notes=(f"image_size={image_size}",))

    @register_text_dataset("toy-txt", options=("flavour",))
    def text(path, *, root, flavour="plain"):
        return TextData(name="toy-txt", train=PairData(anchors=["a"], positives=["b"]), notes=[flavour])

    @register_image_text_dataset("toy-it", options=("size",))
    def image_text(*, root, size=8):
        return ImageTextData(name="toy-it", images=torch.zeros(2, 3, size, size, dtype=torch.uint8),
                             texts={"en": ["a", "b"]}, split=torch.tensor([False, True]), ids=("a", "b"))


def _config(data, method="simclr", image_size=None, data_options=None):
    return SimpleNamespace(data=data, method=method, image_size=image_size, data_options=data_options or {},
                           stream=None)


def test_load_data_dispatches_by_modality(fresh):
    _toy_registry()
    img = tasks.load_data(_config("toy-img", image_size=4))
    assert isinstance(img, ImageData) and img.x.shape == (4, 1, 4, 4) and img.notes[0] == "image_size=4"
    txt = tasks.load_data(_config("TOY-TXT", method="pairs", data_options={"flavour": "salty"}))
    assert isinstance(txt, TextData) and txt.notes[0] == "salty"
    it = tasks.load_data(_config("toy-it", method="clip", image_size=5))
    assert isinstance(it, ImageTextData) and it.images.shape == (2, 3, 5, 5)


@pytest.mark.parametrize("method, first", [("simclr", "image"), ("pairs", "text"), ("clip", "image-text")])
def test_load_data_of_an_unclaimed_spec_lists_the_methods_modality_first(method, first):
    with pytest.raises(ValueError) as info:
        tasks.load_data(_config("garbage", method=method))
    assert list(_groups(str(info.value)))[0] == first


def test_cli_lists_datasets_with_their_modality(capsys):
    assert main(["datasets"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["modality", "spec", "description"]
    rows = {line.split()[1]: line.split()[0] for line in lines[1:]}
    assert len(lines) - 1 == len(registry.DATASETS)
    assert rows["digits"] == "image" and rows["wordnet"] == "text" and rows["emoji"] == "image_text"
    assert rows["pairs:PATH"] == "text" and rows["captions:PATH"] == "image_text"
    assert main(["datasets", "--modality", "text"]) == 0
    assert {line.split()[0] for line in capsys.readouterr().out.splitlines()[1:]} == {"text"}


def test_cli_refuses_an_unknown_modality(capsys):
    with pytest.raises(SystemExit) as info:
        main(["datasets", "--modality", "audio"])
    assert info.value.code == 2
    assert "--modality: `modality` must be one of image, text, image_text, sequence or None, got 'audio'" in \
        capsys.readouterr().err
