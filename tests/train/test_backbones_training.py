"""Pretrained and external backbones in training: hf:PATH trains with SimCLR and embeds as transformers does,
pretrained= weights start every image method, freeze_encoder keeps the encoder (and MoCo's momentum copy) fixed
and in eval mode, backbone_lr scales the encoder's learning rate along the schedule, and such runs resume exactly."""
from __future__ import annotations

import pytest
import torch

from contrastlab import faults
from contrastlab.data import load_images
from contrastlab.train import Trainer, TrainConfig, parse_overrides
from contrastlab.train.schedule import warmup_cosine

SMALL = dict(data="digits", batch_size=32, final_eval=False, probe_size=64, monitor_bank=128, monitor_every=3,
             threads=1)
HEADS = {"proj_hidden_dim": 16, "proj_dim": 8}
ENCODER = dict(encoder="resnet18", encoder_options={"width": 4})


def config(**kw):
    return TrainConfig(**{**SMALL, "steps": 3, **kw})


def trainer(tmp_path, name="run", **kw):
    return Trainer.from_config(config(**kw), tmp_path / name, show_progress=False)


def digits_stats(size: int):
    """The training images' per-channel mean and std in [0, 1] units, computed here (unbiased std, float64)."""
    x = load_images("digits", image_size=size).x.to(torch.float64) / 255
    return x.mean().item(), x.std().item()


def encoder_weights(method) -> dict:
    return {k: v.clone() for k, v in method.encoder.state_dict().items()}


# ------------------------------------------------------------------------------------------------ hf:PATH
@pytest.mark.parametrize("kind", ["resnet", "vit"])
def test_hf_backbone_trains_with_simclr_and_embeds_as_transformers_does(tmp_path, kind):
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    folder = tmp_path / kind
    cfg = (transformers.ResNetConfig(embedding_size=8, hidden_sizes=[8, 16], depths=[1, 1]) if kind == "resnet" else
           transformers.ViTConfig(image_size=8, patch_size=4, hidden_size=16, num_hidden_layers=1,
                                  num_attention_heads=2, intermediate_size=32))
    transformers.AutoModel.from_config(cfg).save_pretrained(folder)
    t = trainer(tmp_path, encoder=f"hf:{folder}", image_size=16, hyperparameters=HEADS)
    enc = t.method.encoder
    assert enc.out_dim == 16 and t.model_info["feature_dim"] == 16
    # before training: the encoder is the saved model; gray digits repeated to RGB, standardised by the data's stats
    mean, std = digits_stats(16)
    x = torch.rand(4, 1, 16, 16, generator=torch.Generator().manual_seed(0))
    reference = transformers.AutoModel.from_pretrained(str(folder), local_files_only=True).eval()
    kwargs = {"interpolate_pos_encoding": True} if kind == "vit" else {}    # trained at 16 px, config 8 px
    with torch.no_grad():
        want = reference(pixel_values=((x - mean) / std).repeat(1, 3, 1, 1), **kwargs).pooler_output.flatten(1)
        got = enc.eval()(x)
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)
    before = encoder_weights(t.method)
    assert t.fit()["step"] == 3
    after = t.method.encoder.state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before if k.startswith("model."))   # it trained


# ------------------------------------------------------------------------------------------------ pretrained=
@pytest.mark.parametrize("method, hp", [("simclr", HEADS), ("moco", {**HEADS, "queue_size": 64}),
                                        ("supcon", HEADS), ("triplet", {}), ("supervised", {})])
def test_pretrained_file_starts_every_image_method(tmp_path, method, hp):
    from contrastlab.models import create_encoder
    torch.manual_seed(123)
    source = create_encoder("resnet18", in_channels=1, width=4, mean=[0.3], std=[0.2]).state_dict()
    weights = {k: v for k, v in source.items() if not k.startswith("standardize.")}
    torch.save(weights, tmp_path / "w.pt")
    t = trainer(tmp_path, method=method, pretrained=str(tmp_path / "w.pt"), hyperparameters=hp, **ENCODER)
    got = t.method.encoder.state_dict()
    assert all(torch.equal(got[k], v) for k, v in weights.items())
    if method == "moco":                                     # the momentum copy starts from the same weights
        key = t.method.key_net.net[0].state_dict()
        assert all(torch.equal(key[k], v) for k, v in weights.items())


def test_pretrained_errors_reach_the_trainer(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"`pretrained` file '.*gone\.pt' does not exist"):
        trainer(tmp_path, pretrained=str(tmp_path / "gone.pt"), **ENCODER)
    (tmp_path / "bad.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}")
    with pytest.raises(ValueError, match=r"`pretrained` file '.*bad\.safetensors' .*corrupt or truncated"):
        trainer(tmp_path, pretrained=str(tmp_path / "bad.safetensors"), **ENCODER)


# ------------------------------------------------------------------------------------------------ freeze
@pytest.mark.parametrize("method, hp", [("simclr", HEADS), ("moco", {**HEADS, "queue_size": 64}),
                                        ("supervised", {})])
def test_a_frozen_encoder_does_not_change_while_the_head_trains(tmp_path, method, hp):
    t = trainer(tmp_path, method=method, freeze_encoder=True, hyperparameters=hp, **ENCODER)
    enc = t.method.encoder
    in_optimizer = {id(p) for g in t.optimizer.param_groups for p in g["params"]}
    assert not any(id(p) in in_optimizer for p in enc.parameters())
    before = encoder_weights(t.method)                          # weights and batch-norm statistics
    heads = {k: v.clone() for k, v in t.method.state_dict().items()
             if not k.startswith(("encoder.", "key_net.", "queue.")) and v.is_floating_point()}
    modes = []
    real_point = faults.point

    def record(name, at=None):                                  # during training, right after each update
        if name == "after-update":
            modes.append((t.method.training, any(m.training for m in enc.modules())))
        real_point(name, at)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(faults, "point", record)
        t.fit()
    assert modes == [(True, False)] * 3                          # the method trains, its encoder stays in eval
    after = t.method.encoder.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    now = t.method.state_dict()
    assert any(not torch.equal(v, now[k]) for k, v in heads.items())
    if method == "moco":                                         # the key encoder: the same frozen weights
        key = t.method.key_net.net[0].state_dict()
        assert all(torch.equal(before[k], key[k]) for k in before)
    fresh = t.make_encoder()                                     # label efficiency fine-tunes the plain
    fresh.load_state_dict(t.method.encoder.state_dict())         # architecture from the frozen one's weights
    assert all(p.requires_grad for p in fresh.parameters())


# ------------------------------------------------------------------------------------------------ backbone_lr
def test_backbone_lr_scales_the_encoders_groups_along_the_schedule(tmp_path):
    t = trainer(tmp_path, steps=4, lr=0.01, backbone_lr=0.1, warmup=0.5, hyperparameters=HEADS, **ENCODER)
    encoder = {id(p) for p in t.method.encoder.parameters()}
    seen = []
    real_point = faults.point

    def record(name, at=None):
        if name == "after-update":                              # the lr the step `at - 1` just used
            seen.append([(g["lr"], {id(p) in encoder for p in g["params"]}) for g in t.optimizer.param_groups])
        real_point(name, at)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(faults, "point", record)
        t.fit()
    assert len(seen) == 4
    for step, groups in enumerate(seen):
        lr = warmup_cosine(step, total_steps=4, base_lr=0.01, warmup_steps=2)
        assert {frozenset(kinds) for _, kinds in groups} == {frozenset({True}), frozenset({False})}
        for got, kinds in groups:
            assert got == pytest.approx(lr * (0.1 if kinds == {True} else 1.0), rel=1e-12)


@pytest.mark.parametrize("optimizer", ["sgd", "lars"])
def test_backbone_lr_groups_for_every_optimizer(tmp_path, optimizer):
    t = trainer(tmp_path, optimizer=optimizer, lr=0.2, backbone_lr=0.5, hyperparameters=HEADS, **ENCODER)
    groups = t.optimizer.param_groups
    assert sorted((g["lr_scale"], g["kind"]) for g in groups) == [(0.5, "decay"), (0.5, "no_decay"),
                                                                  (1.0, "decay"), (1.0, "no_decay")]
    assert all(g["lr"] == pytest.approx(0.2 * g["lr_scale"]) for g in groups)
    if optimizer == "lars":                                     # biases and norms: no trust ratio, at any scale
        assert all(g["lars_exclude"] == (g["kind"] == "no_decay") for g in groups)


# ------------------------------------------------------------------------------------------------ resume
def _interrupted_then_resumed(tmp_path, name, stop_at, **kw):
    t = trainer(tmp_path, name, **kw)
    real_point = faults.point

    def stop(point, at=None):
        if point == "after-step" and at == stop_at:
            raise KeyboardInterrupt                               # Ctrl-C between steps: saves, then stops
        real_point(point, at)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(faults, "point", stop)
        with pytest.raises(KeyboardInterrupt):
            t.fit()
    resumed = Trainer.resume(tmp_path / name, show_progress=False)
    assert resumed.step == stop_at
    resumed.fit()
    return resumed


@pytest.mark.parametrize("settings", [
    dict(method="simclr", backbone_lr=0.3, hyperparameters=HEADS),
    dict(method="moco", freeze_encoder=True, hyperparameters={**HEADS, "queue_size": 64}),
])
def test_runs_with_backbone_settings_resume_exactly(tmp_path, settings):
    from contrastlab.models import create_encoder
    torch.manual_seed(7)
    torch.save(create_encoder("resnet18", in_channels=1, width=4).state_dict(), tmp_path / "w.pt")
    kw = dict(steps=6, pretrained=str(tmp_path / "w.pt"), **ENCODER, **settings)
    whole = trainer(tmp_path, "whole", **kw)
    whole.fit()
    resumed = _interrupted_then_resumed(tmp_path, "resumed", 3, **kw)
    a, b = whole.method.state_dict(), resumed.method.state_dict()
    assert sorted(a) == sorted(b) and all(torch.equal(a[k], b[k]) for k in a)
    assert [g["lr"] for g in whole.optimizer.param_groups] == [g["lr"] for g in resumed.optimizer.param_groups]


# ------------------------------------------------------------------------------------------------ config
def test_backbone_settings_in_the_config_and_on_the_command_line():
    trainer_keys, _ = parse_overrides(["pretrained=/w/model.safetensors", "freeze_encoder=true", "backbone_lr=0.1",
                                       "encoder=hf:/models/vit"], method_keys={})
    assert trainer_keys == {"pretrained": "/w/model.safetensors", "freeze_encoder": True, "backbone_lr": 0.1,
                            "encoder": "hf:/models/vit"}
    assert parse_overrides(["pretrained=none"], method_keys={})[0] == {"pretrained": None}
    cfg = config(pretrained="w.pth", backbone_lr=0.5)
    assert TrainConfig.from_dict(cfg.to_dict()) == cfg
    # clip's own `lock` hyperparameter is not shadowed by a trainer key
    assert parse_overrides(["lock=image"], method_keys={"lock": "none"}) == ({}, {"lock": "image"})


@pytest.mark.parametrize("kw, message", [
    (dict(pretrained="weights.npz"), "`pretrained` must be none or the path of a .pt, .pth, .bin, .safetensors "
                                     "state dict file, got 'weights.npz'"),
    (dict(pretrained=""), "`pretrained` must be none or the path of a"),
    (dict(freeze_encoder="yes"), "`freeze_encoder` must be true or false, got 'yes'"),
    (dict(backbone_lr=0.0), "`backbone_lr` must be > 0, got 0.0"),
    (dict(backbone_lr=float("inf")), "`backbone_lr` must be a finite number > 0, got inf"),
    (dict(backbone_lr=None), "`backbone_lr` must be a finite number > 0 (1.0: the encoder at `lr`), got None"),
    (dict(freeze_encoder=True, backbone_lr=0.1), "`backbone_lr` must be 1.0 when `freeze_encoder` is true"),
    (dict(method="clip", data="emoji", pretrained="w.pt"), "`pretrained` must be unset for method 'clip' "
                                                          "(image_text data)"),
    (dict(method="pairs", freeze_encoder=True), "`freeze_encoder` must be unset for method 'pairs' (text data)"),
])
def test_bad_backbone_settings_are_named(kw, message):
    with pytest.raises(ValueError) as e:
        config(**kw)
    assert message in str(e.value)
