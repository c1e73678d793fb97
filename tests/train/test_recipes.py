"""Training recipes (`contrastlab train --recipe NAME`): each builds a valid configuration with the papers' numbers
(written out here, independently of the recipe module), --set overrides win, bad names are clear errors, and a
recipe trains (2 steps on tiny data)."""
import json

import pytest
import torch

from contrastlab.cli import main
from contrastlab.methods import method_hyperparameters
from contrastlab.train import TrainConfig, Trainer
from contrastlab.train.recipes import RECIPES, build_config, list_recipes, recipe, register_recipe
from contrastlab.views import PRESETS, blur_kernel_size, preset

SIZES = (32, 64, 96, 224)

# The papers' numbers, written out from the papers (not read from the recipe module).
# SimCLR, Chen et al. 2020: appendix A (ImageNet) and B.9 (CIFAR-10: strength s = 0.5, no blur, temperature 0.5).
SIMCLR_IMAGENET_VIEWS = dict(crop_scale=(0.08, 1.0), flip_p=0.5, jitter_p=0.8, brightness=0.8, contrast=0.8,
                             saturation=0.8, hue=0.2, grayscale_p=0.2, blur_p=0.5, blur_sigma=(0.1, 2.0))
SIMCLR_CIFAR_VIEWS = dict(crop_scale=(0.08, 1.0), flip_p=0.5, jitter_p=0.8, brightness=0.4, contrast=0.4,
                          saturation=0.4, hue=0.1, grayscale_p=0.2, blur_p=0.0)
# MoCo v2, Chen et al. 2020b: crop (0.2, 1), jitter (0.4, 0.4, 0.4, 0.1) p = 0.8, grayscale 0.2, blur p = 0.5
# sigma in [0.1, 2.0], flip.
MOCOV2_VIEWS = dict(crop_scale=(0.2, 1.0), flip_p=0.5, jitter_p=0.8, brightness=0.4, contrast=0.4, saturation=0.4,
                    hue=0.1, grayscale_p=0.2, blur_p=0.5, blur_sigma=(0.1, 2.0))


def _views(name):
    hp = preset(name).hyperparameters
    return hp


@pytest.mark.parametrize("name, expected", [("simclr", SIMCLR_IMAGENET_VIEWS), ("simclr-cifar", SIMCLR_CIFAR_VIEWS),
                                            ("mocov2", MOCOV2_VIEWS),
                                            ("mocov2-cifar", {**MOCOV2_VIEWS, "blur_p": 0.0})])
def test_view_presets_are_the_papers(name, expected):
    hp = _views(name)
    for key, value in expected.items():
        assert hp[key] == pytest.approx(value), (name, key)
    assert hp["crop_ratio"] == pytest.approx((3 / 4, 4 / 3))


def test_blur_kernel_is_ten_percent_of_the_side():
    # SimCLR appendix A: kernel 10% of the side (odd): 23 taps at 224 px, 9 at 96, 7 at 64 (6.4 -> odd)
    assert [blur_kernel_size(s, s) for s in (224, 96, 64)] == [23, 9, 7]


def test_registry_covers_three_methods_at_four_sizes():
    assert list_recipes() == [f"{m}-{s}" for m in ("mocov2", "simclr", "supcon") for s in SIZES]
    assert list_recipes("moco") == [f"mocov2-{s}" for s in SIZES]


@pytest.mark.parametrize("name", sorted(RECIPES))
def test_every_recipe_builds_a_valid_config_with_the_papers_numbers(name):
    r = recipe(name)
    cfg = build_config(name, data="folder:/photos", epochs=100)
    assert isinstance(cfg, TrainConfig) and cfg.method == r.method and cfg.budget() == ("epochs", 100)
    assert set(cfg.hyperparameters) <= set(method_hyperparameters(r.method))
    assert cfg.augment in PRESETS
    size = int(name.rsplit("-", 1)[1])
    assert cfg.image_size == size
    assert cfg.encoder == ("resnet50" if size == 224 else "resnet18")
    assert cfg.encoder_options == {"stem": "small" if size < 64 else "imagenet"}   # the small stem below 64 px
    hp, b = cfg.hyperparameters, cfg.batch_size
    cifar = size == 32
    if r.method in ("simclr", "supcon"):                 # SimCLR's optimisation: LARS 0.3 x B / 256, wd 1e-6
        assert cfg.optimizer == "lars"
        assert cfg.base_lr() == pytest.approx(0.3 * b / 256) and cfg.base_weight_decay() == 1e-6
        assert cfg.augment == ("simclr-cifar" if cifar else "simclr")
        want_t = 0.1 if r.method == "supcon" else (0.5 if cifar else 0.1)
        assert hp["temperature"] == want_t
    else:                                                 # MoCo v2: SGD 0.03 x B / 256, wd 1e-4, momentum 0.9
        assert r.method == "moco" and cfg.optimizer == "sgd" and cfg.optimizer_momentum == 0.9
        assert cfg.base_lr() == pytest.approx(0.03 * b / 256) and cfg.base_weight_decay() == 1e-4
        assert hp["temperature"] == 0.2 and cfg.augment == ("mocov2-cifar" if cifar else "mocov2")
        if size == 224:
            assert hp["queue_size"] == 65536 and hp["momentum"] == 0.999
    if size == 224:                                       # the MLP head's hidden width = ResNet-50's 2048 features
        assert hp["proj_hidden_dim"] == 2048
    assert r.description.startswith({"simclr": "SimCLR", "supcon": "SupCon", "moco": "MoCo v2"}[r.method])


@pytest.mark.parametrize("name", ["simclr-224", "mocov2-224", "supcon-224"])
def test_224_recipes_build_a_resnet50_with_the_imagenet_stem(name):
    from contrastlab.models import create_encoder
    cfg = build_config(name, data="folder:/photos", epochs=1)
    enc = create_encoder(cfg.encoder, in_channels=3, width=4, **cfg.encoder_options)   # a narrow copy: fast
    assert enc.out_dim == 32 * 4
    first = next(m for m in enc.modules() if isinstance(m, torch.nn.Conv2d))
    assert (first.kernel_size, first.stride) == ((7, 7), (2, 2))
    assert enc(torch.rand(2, 3, 64, 64)).shape == (2, 128)


def test_overrides_win():
    cfg = build_config("simclr-32", data="digits", steps=1, batch_size=64, hyperparameters={"temperature": 0.2})
    assert cfg.batch_size == 64 and cfg.lr == pytest.approx(0.3 * 64 / 256)   # the lr follows the new batch
    assert cfg.hyperparameters["temperature"] == 0.2
    assert build_config("mocov2-224", data="digits", steps=1, lr=0.5).lr == 0.5
    other = build_config("mocov2-32", data="digits", steps=1, optimizer="adamw")  # another optimizer: its defaults
    assert other.lr is None and other.weight_decay is None
    assert build_config("mocov2-32", data="digits", steps=1, optimizer="adamw", weight_decay=0.3).weight_decay == 0.3
    small = build_config("simclr-224", data="digits", steps=1, encoder="resnet18")   # the stem option stays behind
    assert small.encoder == "resnet18" and small.encoder_options == {}
    assert build_config("simclr-224", data="digits", steps=1, encoder_options={"width": 8}).encoder_options == {
        "width": 8}


def test_bad_names_are_clear_errors():
    with pytest.raises(ValueError, match=r"`recipe` must be one of \['mocov2-32', .*'supcon-224'\], got 'simclr-48'"):
        recipe("simclr-48")
    with pytest.raises(ValueError, match=r"recipe 'simclr-32' trains 'simclr', not 'moco'; run `contrastlab train "
                                         r"simclr --recipe simclr-32`, or use a moco recipe: \['mocov2-32'"):
        build_config("simclr-32", data="digits", steps=1, method="moco")


@pytest.mark.parametrize("kwargs, message", [
    (dict(method="simclr", steps=3), r"unknown setting\(s\) \['steps'\]; a recipe sets TrainConfig fields"),
    (dict(method="simclr", hyperparameters={"queue_size": 8}),
     r"unknown hyperparameter\(s\) \['queue_size'\] for method 'simclr'"),
    (dict(method="simclr", augment="cifar"), r"`augment` must be 'auto' or one of \[.*\], got 'cifar'"),
    (dict(method="byol"), r"`method` must be one of \[.*\], got 'byol'"),
    (dict(method="simclr", lr_per_256=-1.0), r"`lr_per_256` must be a number > 0 or None, got -1.0"),
    (dict(method="simclr", batch_size=1), r"`batch_size` must be an int >= 2, got 1"),
])
def test_register_recipe_checks_its_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        register_recipe("bad-recipe", description="x", **kwargs)
    assert "bad-recipe" not in RECIPES


def test_register_recipe_refuses_a_taken_name():
    with pytest.raises(ValueError, match=r"a recipe named 'simclr-32' is already registered"):
        register_recipe("simclr-32", method="simclr", description="x")


def test_a_recipe_trains_two_steps(tmp_path):
    cfg = build_config("simclr-32", data="digits", steps=2, image_size=16, batch_size=16,
                       encoder_options={"width": 4}, final_eval=False, probe_size=32, monitor_bank=64,
                       hyperparameters={"proj_hidden_dim": 16, "proj_dim": 8})
    trainer = Trainer.from_config(cfg, tmp_path / "run", show_progress=False)
    assert trainer.fit()["step"] == 2
    assert type(trainer.method.encoder).__name__ == "ResNet18"
    assert trainer.augment.hyperparameters["blur_p"] == 0.0 and trainer.augment.hyperparameters["brightness"] == 0.4
    assert type(trainer.optimizer).__name__ == "LARS"


def test_cli_recipe_with_set_overrides(tmp_path, capsys):
    run = tmp_path / "run"
    code = main(["train", "--recipe", "mocov2-32", "--data", "digits", "--steps", "2", "--run", str(run), "--quiet",
                 "--no-eval", "--set", "encoder=small_cnn", "--set", "image_size=12", "--set", "batch_size=16",
                 "--set", "queue_size=64", "--set", "proj_hidden_dim=16"])
    assert code == 0
    assert "training moco on digits with recipe mocov2-32" in capsys.readouterr().out
    saved = json.loads((run / "config.json").read_text())
    train = saved["train"]
    assert (train["method"], train["optimizer"], train["augment"], train["encoder"]) == ("moco", "sgd", "mocov2-cifar",
                                                                                       "small_cnn")
    assert train["lr"] == pytest.approx(0.03 * 16 / 256) and train["weight_decay"] == 1e-4
    assert train["hyperparameters"] == {"temperature": 0.2, "queue_size": 64, "momentum": 0.99, "proj_hidden_dim": 16}


def test_cli_lists_recipes_and_refuses_a_mismatched_method(capsys):
    assert main(["recipes", "supcon"]) == 0
    out = capsys.readouterr().out
    assert [line.split()[0] for line in out.splitlines()] == [f"supcon-{s}" for s in SIZES]
    assert "Khosla et al. 2020" in out
    with pytest.raises(SystemExit) as stop:
        main(["train", "moco", "--recipe", "simclr-32", "--steps", "1"])
    assert stop.value.code == 2
    assert "recipe 'simclr-32' trains 'simclr', not 'moco'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["train", "--recipe", "nope", "--steps", "1"])
    assert "`recipe` must be one of ['mocov2-32'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["train", "--resume", "runs/x", "--recipe", "simclr-32"])
    assert "do not also give --recipe" in capsys.readouterr().err
