"""Image encoders from other libraries (hf:PATH, timm:NAME), ResNet-50, pretrained state dict files, frozen encoders
and learning-rate groups. The references are the peer library's own forward (transformers' pooler_output on the
same standardised input), torchvision's published ResNet-50 parameter count, and the files' own tensors."""
from __future__ import annotations

import copy
import json
import sys
import types

import pytest
import torch
from torch import nn

from contrastlab.models import (IMAGE_ENCODER_LOADERS, FrozenEncoder, HFImageEncoder, ResNet50, create_encoder,
                                load_pretrained, read_state_dict)
from contrastlab.models.encoders import register_encoder_loader
from contrastlab.optim import param_groups

transformers = pytest.importorskip("transformers")

TINY = {   # (config, what the pooled output is)
    "resnet": lambda: transformers.ResNetConfig(embedding_size=8, hidden_sizes=[8, 16], depths=[1, 1]),
    "vit": lambda: transformers.ViTConfig(image_size=16, patch_size=4, hidden_size=16, num_hidden_layers=1,
                                          num_attention_heads=2, intermediate_size=32),
    "convnext": lambda: transformers.ConvNextConfig(hidden_sizes=[8, 16], depths=[1, 1], num_stages=2),
    "dinov2": lambda: transformers.Dinov2Config(image_size=16, patch_size=4, hidden_size=16, num_hidden_layers=1,
                                                num_attention_heads=2, mlp_ratio=2),
}
OUT_DIM = {"resnet": 16, "vit": 16, "convnext": 16, "dinov2": 16}     # hidden_sizes[-1] / hidden_size


def save_tiny(kind: str, path, *, preprocessor: dict | None = None):
    torch.manual_seed(0)
    transformers.AutoModel.from_config(TINY[kind]()).save_pretrained(path)
    if preprocessor is not None:
        (path / "preprocessor_config.json").write_text(json.dumps(preprocessor))
    return path


@pytest.fixture(scope="module", params=sorted(TINY))
def hf_folder(request, tmp_path_factory):
    return request.param, save_tiny(request.param, tmp_path_factory.mktemp(f"tiny-{request.param}"))


def hf_reference(folder, x_rgb_standardised):
    """transformers' own forward of the saved model (loaded afresh), its pooled output as (B, F)."""
    model = transformers.AutoModel.from_pretrained(str(folder), local_files_only=True).eval()
    kwargs = {"interpolate_pos_encoding": True} if model.config.model_type == "vit" else {}
    with torch.no_grad():
        return model(pixel_values=x_rgb_standardised, **kwargs).pooler_output.flatten(1)


# ------------------------------------------------------------------------------------------------ hf:PATH
def test_hf_features_are_the_models_pooled_output_on_standardised_gray_repeated_input(hf_folder):
    kind, folder = hf_folder
    mean, std = [0.3], [0.2]
    enc = create_encoder(f"hf:{folder}", in_channels=1, mean=mean, std=std).eval()
    assert isinstance(enc, HFImageEncoder) and enc.out_dim == OUT_DIM[kind]
    x = torch.rand(3, 1, 32, 32, generator=torch.Generator().manual_seed(1))     # ViT/DINOv2 configs are 16 px
    want = hf_reference(folder, ((x - 0.3) / 0.2).repeat(1, 3, 1, 1))
    with torch.no_grad():
        got = enc(x)
    assert got.shape == (3, OUT_DIM[kind])
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


def test_hf_uses_the_folders_preprocessor_statistics(tmp_path):
    image_mean, image_std = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
    folder = save_tiny("resnet", tmp_path / "m", preprocessor={"image_mean": image_mean, "image_std": image_std})
    enc = create_encoder(f"hf:{folder}", in_channels=3, mean=[0.1] * 3, std=[0.9] * 3).eval()   # data stats unused
    x = torch.rand(2, 3, 24, 24, generator=torch.Generator().manual_seed(2))
    m, s = torch.tensor(image_mean).view(1, 3, 1, 1), torch.tensor(image_std).view(1, 3, 1, 1)
    with torch.no_grad():
        torch.testing.assert_close(enc(x), hf_reference(folder, (x - m) / s), rtol=1e-5, atol=1e-5)
    (folder / "preprocessor_config.json").write_text(json.dumps({"do_normalize": False, "image_mean": [9, 9, 9],
                                                                 "image_std": [9, 9, 9]}))
    enc = create_encoder(f"hf:{folder}", in_channels=3, mean=[0.1] * 3, std=[0.9] * 3).eval()
    with torch.no_grad():
        torch.testing.assert_close(enc(x), hf_reference(folder, x), rtol=1e-5, atol=1e-5)


def test_hf_folder_errors_name_the_path_and_what_is_missing(tmp_path):
    with pytest.raises(FileNotFoundError, match="containing config.json, got '.*nothing'"):
        create_encoder(f"hf:{tmp_path / 'nothing'}", in_channels=3)
    with pytest.raises(FileNotFoundError, match="got 'no path'"):
        create_encoder("hf:", in_channels=3)
    folder = tmp_path / "config-only"
    TINY["resnet"]().save_pretrained(folder)
    with pytest.raises(FileNotFoundError) as e:
        create_encoder(f"hf:{folder}", in_channels=3)
    assert str(folder) in str(e.value) and "has no weights" in str(e.value) and "model.safetensors" in str(e.value)
    broken = save_tiny("resnet", tmp_path / "broken")
    (broken / "model.safetensors").write_bytes(b"garbage" * 10)
    with pytest.raises(ValueError, match=rf"'{broken}' is not a Hugging Face model `transformers` can load .*"
                                         rf"SafetensorError"):
        create_encoder(f"hf:{broken}", in_channels=3)
    (broken / "config.json").write_text('{"model_type": "nonsense"}')
    with pytest.raises(ValueError, match=r"can load .*ValueError: .*model type `nonsense`"):
        create_encoder(f"hf:{broken}", in_channels=3)
    text = tmp_path / "bert"
    transformers.BertModel(transformers.BertConfig(vocab_size=50, hidden_size=8, num_hidden_layers=1,
                                                   num_attention_heads=2, intermediate_size=16)).save_pretrained(text)
    with pytest.raises(ValueError, match=r"holds a 'bert' model, not a vision model: it takes 'input_ids'"):
        create_encoder(f"hf:{text}", in_channels=3)
    rgb = save_tiny("resnet", tmp_path / "rgb")
    with pytest.raises(ValueError, match=r"`in_channels` must be 3 \(the model's num_channels\) or 1 .*got 2"):
        create_encoder(f"hf:{rgb}", in_channels=2)
    (rgb / "preprocessor_config.json").write_text(json.dumps({"image_mean": [0.5, 0.5], "image_std": [0.2] * 3}))
    with pytest.raises(ValueError, match=r"`image_mean` must be 3 numbers .*got \[0.5, 0.5\]"):
        create_encoder(f"hf:{rgb}", in_channels=3)
    (rgb / "preprocessor_config.json").write_text("{not json")
    with pytest.raises(ValueError, match="preprocessor_config.json' is not valid JSON"):
        create_encoder(f"hf:{rgb}", in_channels=3)


def test_unknown_encoder_names_list_the_prefix_forms():
    assert {"hf", "timm"} <= set(IMAGE_ENCODER_LOADERS)
    with pytest.raises(ValueError, match=r"`encoder` must be one of \[.*'resnet50'.*\] or 'hf:\.\.\.', "
                                         r"'timm:\.\.\.', got 'nope:x'"):
        create_encoder("nope:x", in_channels=1)
    with pytest.raises(ValueError, match="encoder loader 'hf' is already registered"):
        register_encoder_loader("hf")(lambda arg, **kw: None)


# ------------------------------------------------------------------------------------------------ timm:NAME
class _TinyTimm(nn.Module):
    def __init__(self, in_chans: int):
        super().__init__()
        self.conv = nn.Conv2d(in_chans, 6, 3, padding=1)
        self.bn = nn.BatchNorm2d(6)
        self.num_features = 6

    def forward(self, x):
        return self.bn(self.conv(x)).mean((2, 3))


@pytest.fixture
def fake_timm(monkeypatch):
    calls = []

    def create_model(name, **kwargs):
        calls.append((name, kwargs))
        return _TinyTimm(kwargs["in_chans"])
    monkeypatch.setitem(sys.modules, "timm", types.SimpleNamespace(create_model=create_model))
    return calls


def test_timm_encoder_builds_without_weights_and_standardises(fake_timm):
    enc = create_encoder("timm:tiny_net", in_channels=1, mean=[0.4], std=[0.1], drop_rate=0.0).eval()
    assert fake_timm == [("tiny_net", {"pretrained": False, "num_classes": 0, "in_chans": 1, "drop_rate": 0.0})]
    assert enc.out_dim == 6
    x = torch.rand(2, 1, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(enc(x), enc.model((x - 0.4) / 0.1))


def test_timm_that_cannot_import_says_so_and_why(monkeypatch, tmp_path):
    """As on this machine: timm's import fails on torchvision (a stand-in timm package that imports it)."""
    (tmp_path / "timm").mkdir()
    (tmp_path / "timm" / "__init__.py").write_text("import torchvision\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "timm", raising=False)
    monkeypatch.setitem(sys.modules, "torchvision", None)   # not importable, whether or not it is installed
    with pytest.raises(ImportError) as e:
        create_encoder("timm:resnet50", in_channels=3)
    msg = str(e.value)
    assert "`encoder` 'timm:resnet50' needs the `timm` package, which cannot be imported here" in msg
    assert "(ModuleNotFoundError: import of torchvision halted" in msg      # why: the underlying error
    assert "timm imports torchvision when it starts" in msg
    monkeypatch.setitem(sys.modules, "timm", None)          # timm not installed at all
    with pytest.raises(ImportError, match=r"cannot be imported here \(ModuleNotFoundError: import of timm"):
        create_encoder("timm:resnet50", in_channels=3)


# ------------------------------------------------------------------------------------------------ resnet50
def test_resnet50_parameter_count_matches_torchvision():
    # torchvision's ResNet-50 without fc: 25,557,032 - (2048 * 1000 + 1000) = 23,508,032 (7x7 stem)
    count = lambda m: sum(p.numel() for p in m.parameters())
    assert count(ResNet50(in_channels=3, stem="imagenet")) == 23_508_032
    # the small-image stem swaps the 7x7x3x64 convolution for a 3x3x3x64 one
    assert count(create_encoder("resnet50", in_channels=3)) == 23_508_032 - 7 * 7 * 3 * 64 + 3 * 3 * 3 * 64


def test_resnet18_parameter_count_matches_torchvision():
    # torchvision's ResNet-18: 11,689,512 with fc (512 * 1000 + 1000) -> 11,176,512 without (7x7 stem)
    count = lambda m: sum(p.numel() for p in m.parameters())
    assert count(create_encoder("resnet18", in_channels=3, stem="imagenet")) == 11_176_512
    assert count(create_encoder("resnet18", in_channels=3)) == 11_176_512 - 7 * 7 * 3 * 64 + 3 * 3 * 3 * 64
    with pytest.raises(ValueError, match=r"`stem` must be one of \['small', 'imagenet'\], got 'tiny'"):
        create_encoder("resnet18", in_channels=3, stem="tiny")


@pytest.mark.parametrize("size", [32, 96])
def test_resnet50_output_shape(size):
    enc = create_encoder("resnet50", in_channels=3).eval()
    assert enc.out_dim == 2048 and not any(isinstance(m, nn.MaxPool2d) for m in enc.modules())
    with torch.no_grad():
        assert enc(torch.rand(2, 3, size, size)).shape == (2, 2048)


def test_resnet50_rejects_bad_settings():
    with pytest.raises(ValueError, match=r"`stem` must be one of \['small', 'imagenet'\], got 'big'"):
        ResNet50(stem="big")
    with pytest.raises(ValueError, match="`width` must be a positive int, got 0"):
        ResNet50(width=0)


# ------------------------------------------------------------------------------------------------ pretrained
def small(seed: int, **kw):
    torch.manual_seed(seed)
    return create_encoder("resnet18", in_channels=1, width=4, mean=[0.3], std=[0.2], **kw)


def weights_equal(module: nn.Module, state: dict) -> bool:
    own = module.state_dict()
    return all(torch.equal(own[k], v) for k, v in state.items())


@pytest.mark.parametrize("suffix", [".pt", ".pth", ".bin", ".safetensors"])
@pytest.mark.parametrize("prefix", ["", "module.", "encoder.", "module.encoder."])
def test_pretrained_state_dict_files_load(tmp_path, suffix, prefix):
    source = {k: v.clone() for k, v in small(1).state_dict().items() if not k.startswith("standardize.")}
    path = tmp_path / f"w{suffix}"
    saved = {prefix + k: v for k, v in source.items()}
    if suffix == ".safetensors":
        from safetensors.torch import save_file
        save_file(saved, str(path))
    else:
        torch.save(saved, path)
    enc = load_pretrained(small(2), path)
    assert weights_equal(enc, source)
    # the file had no input statistics: the data's stay
    assert enc.standardize.mean.item() == pytest.approx(0.3) and enc.standardize.std.item() == pytest.approx(0.2)


def test_pretrained_file_with_statistics_and_contrastlab_checkpoints(tmp_path):
    source = create_encoder("resnet18", in_channels=1, width=4, mean=[0.7], std=[0.5])
    torch.save({"format": 1, "step": 3, "method": {**{f"encoder.{k}": v for k, v in source.state_dict().items()},
                                                   "head.0.weight": torch.zeros(2, 2)}}, tmp_path / "last.pt")
    enc = load_pretrained(small(3), tmp_path / "last.pt")
    assert weights_equal(enc, source.state_dict()) and enc.standardize.mean.item() == pytest.approx(0.7)


def test_a_file_of_the_wrapped_librarys_own_model_loads_into_the_wrapper(tmp_path, fake_timm):
    enc = create_encoder("timm:tiny", in_channels=1, mean=[0.5], std=[0.25])
    other = _TinyTimm(1)
    torch.save(other.state_dict(), tmp_path / "timm.pth")       # keys conv.weight ..., the wrapper's model.conv...
    load_pretrained(enc, tmp_path / "timm.pth")
    assert weights_equal(enc.model, other.state_dict())


def test_pretrained_mismatches_list_keys_and_shapes(tmp_path):
    source = small(1).state_dict()
    torch.save({**source, "extra.weight": torch.zeros(1)}, tmp_path / "extra.pt")
    with pytest.raises(ValueError, match=r"does not fit the encoder ResNet18 \(keys compared\): "
                                         r"unexpected 1: extra\.weight"):
        load_pretrained(small(2), tmp_path / "extra.pt")
    torch.save({k: v for k, v in source.items() if not k.startswith("blocks.7")}, tmp_path / "less.pt")
    with pytest.raises(ValueError, match=r"missing \d+: blocks\.7\.body\.0\.weight, blocks\.7\.body\.1\.bias"):
        load_pretrained(small(2), tmp_path / "less.pt")
    torch.save(small(1, ).state_dict(), tmp_path / "w4.pt")
    torch.manual_seed(0)
    wide = create_encoder("resnet18", in_channels=1, width=8)
    with pytest.raises(ValueError) as e:
        load_pretrained(wide, tmp_path / "w4.pt")
    assert "shape mismatches" in str(e.value)
    assert "stem.0.weight: (4, 1, 3, 3) in the file, (8, 1, 3, 3) in the encoder" in str(e.value)
    torch.save({f"module.{k}": v for k, v in source.items() if k != "stem.0.weight"}, tmp_path / "m.pt")
    with pytest.raises(ValueError, match=r"keys compared after stripping 'module\.'\): missing 1: stem\.0\.weight"):
        load_pretrained(small(2), tmp_path / "m.pt")


def test_corrupt_truncated_and_wrong_files_are_named(tmp_path):
    good = tmp_path / "good.pt"
    torch.save(small(1).state_dict(), good)
    data = good.read_bytes()
    (tmp_path / "trunc.pt").write_bytes(data[: len(data) // 2])
    (tmp_path / "noise.bin").write_bytes(b"\x00garbage" * 50)
    from safetensors.torch import save_file
    save_file({"a": torch.zeros(4)}, str(tmp_path / "s.safetensors"))
    raw = (tmp_path / "s.safetensors").read_bytes()
    (tmp_path / "trunc.safetensors").write_bytes(raw[:-8])
    for name in ("trunc.pt", "noise.bin", "trunc.safetensors"):
        with pytest.raises(ValueError) as e:
            read_state_dict(tmp_path / name)
        assert f"`pretrained` file '{tmp_path / name}'" in str(e.value) and "corrupt or truncated" in str(e.value)
    with pytest.raises(FileNotFoundError, match=r"`pretrained` file '.*absent\.pt' does not exist"):
        read_state_dict(tmp_path / "absent.pt")
    with pytest.raises(ValueError, match=r"`pretrained` must be a \.pt, \.pth, \.bin, \.safetensors file, got"):
        read_state_dict(tmp_path / "w.npz")
    torch.save({"w": torch.zeros(1), "note": "hello"}, tmp_path / "mixed.pt")
    with pytest.raises(ValueError, match=r"state dict of tensors; entries that are not tensors: \['note'\]"):
        read_state_dict(tmp_path / "mixed.pt")
    torch.save([torch.zeros(1)], tmp_path / "list.pt")
    with pytest.raises(ValueError, match="must hold a state dict .*got list"):
        read_state_dict(tmp_path / "list.pt")


# ------------------------------------------------------------------------------------------------ frozen
def test_frozen_encoder_is_in_eval_mode_without_gradients_and_keeps_its_keys():
    plain = small(1)
    frozen = FrozenEncoder(small(1))
    assert frozen.out_dim == plain.out_dim
    assert sorted(frozen.state_dict()) == sorted(plain.state_dict())
    holder = nn.ModuleDict({"encoder": frozen, "head": nn.Linear(plain.out_dim, 2)}).train()
    assert not frozen.training and not any(m.training for m in frozen.modules())
    assert holder["head"].training and not any(p.requires_grad for p in frozen.parameters())
    state = {k: v + 1 for k, v in plain.state_dict().items()}
    frozen.load_state_dict(state)                                    # the plain architecture's keys load
    assert weights_equal(frozen, state)
    plain.load_state_dict(frozen.state_dict())                       # and the other way
    assert weights_equal(plain, state)
    assert "encoder.stem.0.weight" in holder.state_dict()
    holder.load_state_dict(holder.state_dict())                      # nested: prefixes still right
    x = torch.rand(4, 1, 8, 8)
    before = frozen.inner.stem[1].running_mean.clone()
    out = holder["head"](frozen(x))
    out.sum().backward()
    assert torch.equal(frozen.inner.stem[1].running_mean, before) and holder["head"].weight.grad is not None
    twin = copy.deepcopy(holder).train()                             # a momentum copy stays frozen
    assert not twin["encoder"].training


# ------------------------------------------------------------------------------------------------ lr groups
def test_param_groups_scale_a_submodules_learning_rate():
    model = nn.ModuleDict({"encoder": nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4)), "head": nn.Linear(4, 2)})
    groups = param_groups(model, weight_decay=0.1, lr_scales={"encoder": 0.25})
    encoder = {id(p) for p in model["encoder"].parameters()}
    assert [(g["lr_scale"], g["kind"], g["weight_decay"], len(g["params"])) for g in groups] == [
        (1.0, "decay", 0.1, 1), (1.0, "no_decay", 0.0, 1), (0.25, "decay", 0.1, 1), (0.25, "no_decay", 0.0, 3)]
    assert all((id(p) in encoder) == (g["lr_scale"] == 0.25) for g in groups for p in g["params"])
    assert len(param_groups(model, weight_decay=0.1, lr_scales={"encoder": 1.0})) == 2
    model["encoder"].requires_grad_(False)                          # frozen: in no group
    assert len(param_groups(model, weight_decay=0.1, lr_scales={"encoder": 0.25})) == 2
    with pytest.raises(ValueError, match=r"`lr_scales\['encoder'\]` must be a finite number > 0, got 0"):
        param_groups(model, weight_decay=0.1, lr_scales={"encoder": 0})
    with pytest.raises(ValueError, match="`lr_scales` keys must name submodules of the model, got 'backbone'"):
        param_groups(model, weight_decay=0.1, lr_scales={"backbone": 0.5})
