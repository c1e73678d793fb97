"""The `clip` two-tower method: loss against float64 references, the temperature clamp, weight decay, LiT locking,
the train/test split through the trainer, and clear errors."""
from __future__ import annotations

import math

import pytest
import torch

from contrastlab.data.image_text import ImageTextData
from contrastlab.methods import CLIP, TwoTowers
from contrastlab.models import create_encoder
from contrastlab.models.text import TextTokenizer, create_text_encoder
from contrastlab.optim import param_groups
from contrastlab.train.config import TrainConfig
from contrastlab.train.trainer import Trainer

COLOURS = ["red", "green", "blue", "yellow", "purple", "white", "black", "orange"]


def toy_data(n: int = 48) -> ImageTextData:
    """n images of 8 flat colours; names 'red 3' / 'rojo 3'; every 4th example held out."""
    g = torch.Generator().manual_seed(0)
    rgb = torch.randint(0, 256, (len(COLOURS), 3), generator=g, dtype=torch.uint8)
    c = torch.arange(n) % len(COLOURS)
    images = rgb[c][:, :, None, None].expand(n, 3, 8, 8).clone()
    en = [f"{COLOURS[int(k)]} {i}" for i, k in enumerate(c)]
    es = [f"color{int(k)} {i}" if i % 5 else None for i, k in enumerate(c)]
    return ImageTextData(name="toy", images=images, texts={"en": en, "es": es},
                         split=torch.arange(n) % 4 == 3, ids=tuple(str(i) for i in range(n)),
                         labels=c, classes=tuple(COLOURS))


def make_method(data, **kwargs) -> CLIP:
    torch.manual_seed(0)
    tok = TextTokenizer.train([t for v in data.texts.values() for t in v if t], kind="words")
    towers = TwoTowers(create_encoder("small_cnn", in_channels=3), create_text_encoder("bag", tokenizer=tok, dim=16))
    return CLIP(towers, feature_dim=towers.image.out_dim, embed_dim=8, **kwargs)


def run(tmp_path, steps=6, **hp) -> Trainer:
    cfg = TrainConfig(method="clip", data="toy", steps=steps, batch_size=12, final_eval=False, threads=1,
                      hyperparameters=hp, checkpoint_minutes=100.0)
    data = toy_data()
    trainer = Trainer(make_method(data, **hp), data, cfg, tmp_path, show_progress=False)
    return trainer


def clip_reference(a, b, scale):
    a = torch.nn.functional.normalize(a.double(), dim=1)
    b = torch.nn.functional.normalize(b.double(), dim=1)
    logits = scale * a @ b.t()
    n = a.shape[0]
    rows = -sum(logits[i, i] - torch.logsumexp(logits[i], 0) for i in range(n)) / n
    cols = -sum(logits[i, i] - torch.logsumexp(logits[:, i], 0) for i in range(n)) / n
    return float((rows + cols) / 2)


def test_clip_loss_matches_float64_reference():
    m = make_method(toy_data())
    g = torch.Generator().manual_seed(1)
    a, b = torch.randn(5, 8, generator=g), torch.randn(5, 8, generator=g)
    out = m.loss_from((a, b), {})
    assert out.loss.item() == pytest.approx(clip_reference(a, b, 1 / 0.07), rel=1e-5)
    assert out.metrics["temperature"] == pytest.approx(0.07, rel=1e-5)


def test_sigmoid_loss_matches_float64_reference():
    m = make_method(toy_data(), loss="sigmoid", temperature=0.1)
    g = torch.Generator().manual_seed(2)
    a, b = torch.randn(4, 8, generator=g), torch.randn(4, 8, generator=g)
    x = torch.nn.functional.normalize(a.double(), dim=1)
    y = torch.nn.functional.normalize(b.double(), dim=1)
    logits = 10.0 * x @ y.t() - 10.0                                  # scale 1 / 0.1, bias -10 (SigLIP's start)
    sign = 2 * torch.eye(4, dtype=torch.float64) - 1
    ref = -torch.nn.functional.logsigmoid(sign * logits).sum() / 4
    assert m.loss_from((a, b), {}).loss.item() == pytest.approx(float(ref), rel=1e-5)


def test_temperature_clamp_under_a_huge_learning_rate():
    m = make_method(toy_data(), max_scale=20.0)
    opt = torch.optim.SGD([m.scale.log_scale], lr=1e4)
    z = torch.eye(6, 8)                                               # perfectly aligned pairs: a larger scale helps
    for _ in range(3):
        opt.zero_grad()
        m.loss_from((z, z), {}).loss.backward()
        opt.step()
        assert m.scale.log_scale.item() > math.log(20.0)              # the raw step overshoots ...
        assert float(m.scale().detach()) <= 20.0 + 1e-4                        # ... and every use clamps it
        assert m.scale.temperature >= 1 / 20.0 - 1e-7


def test_temperature_and_bias_are_excluded_from_weight_decay(tmp_path):
    m = make_method(toy_data(), loss="sigmoid")
    decay, no_decay = param_groups(m, weight_decay=0.1)
    ids = lambda group: {id(p) for p in group["params"]}               # noqa: E731
    assert id(m.scale.log_scale) in ids(no_decay) and id(m.bias) in ids(no_decay)
    assert id(m.image_proj.weight) in ids(decay)
    trainer = run(tmp_path)                                            # the trainer's own optimizer groups
    groups = trainer.optimizer.param_groups
    assert any(id(trainer.method.scale.log_scale) in ids(g) and g["weight_decay"] == 0.0 for g in groups)


@pytest.mark.parametrize("lock, frozen, trained", [("image", "image", "text"), ("text", "text", "image")])
def test_lock_freezes_one_tower_and_trains_the_other(tmp_path, lock, frozen, trained):
    trainer = run(tmp_path, lock=lock)
    m = trainer.method
    before = {k: v.clone() for k, v in m.state_dict().items()}
    trainer.fit()
    tower = lambda name: getattr(m.encoder, name)                       # noqa: E731
    for k, v in tower(frozen).state_dict().items():                    # parameters and norm statistics
        assert torch.equal(v, before[f"encoder.{frozen}.{k}"]), k
    assert all(not p.requires_grad for p in tower(frozen).parameters())
    assert not tower(frozen).training and m.training
    changed = [k for k, v in tower(trained).named_parameters() if not torch.equal(v, before[f"encoder.{trained}.{k}"])]
    assert changed
    assert not torch.equal(m.image_proj.weight, before["image_proj.weight"])     # the projection still trains


def test_batches_never_hold_a_test_example(tmp_path):
    trainer = run(tmp_path, languages="en,es")
    data = trainer.data
    test = set(data.test_indices().tolist())
    seen = set()
    for step in range(3 * trainer.steps_per_epoch):
        batch = trainer.method.make_batch(data, trainer.batch_indices(step), trainer.augment,
                                          trainer._views_generator(step))
        idx = batch["index"].tolist()
        assert not test & set(idx)
        assert batch["images"].shape[0] == len(idx) == batch["tokens"]["ids"].shape[0]
        seen |= set(idx)
    assert seen == set(data.train_indices().tolist())


def test_languages_are_drawn_per_image_from_the_list():
    data = toy_data()
    m = make_method(data, languages="en,es")
    rows = data.train_indices()
    idx = torch.arange(len(data))
    batch_texts = []
    for seed in range(3):
        tokens = m.make_batch(data, idx, None, torch.Generator().manual_seed(seed))["tokens"]["ids"]
        batch_texts.append(tokens)
    es_ok = [i for i, r in enumerate(rows.tolist()) if data.texts["es"][r]]
    en_only = [i for i, r in enumerate(rows.tolist()) if not data.texts["es"][r]]
    vocab = m.encoder.text.tokenize(["color0"])["ids"][0, 0]
    assert en_only                                                     # some images have no Spanish name ...
    uses_es = torch.stack([(t == vocab).any(1) for t in batch_texts]).any(0)
    assert not uses_es[en_only].any()                                  # ... and then always get the English one
    assert 0 < int(uses_es.sum()) < len(es_ok) * 3


def test_bad_input_gets_clear_errors(tmp_path):
    data = toy_data()
    with pytest.raises(ValueError, match="`lock` must be one of .*got 'both'"):
        make_method(data, lock="both")
    with pytest.raises(ValueError, match="`loss` must be one of .*got 'hinge'"):
        make_method(data, loss="hinge")
    with pytest.raises(ValueError, match="`languages` must name at least one"):
        make_method(data, languages=" , ")
    with pytest.raises(ValueError, match="`max_scale`"):
        make_method(data, max_scale=-1.0)
    with pytest.raises(ValueError, match="`languages` must be languages of toy .*got 'ja'"):
        run(tmp_path, languages="en,ja")
    with pytest.raises(TypeError, match="`encoder` must be a TwoTowers"):
        CLIP(create_encoder("small_cnn", in_channels=3), feature_dim=8)


def test_a_bad_caption_file_fails_with_its_line(tmp_path):
    from PIL import Image

    Image.new("RGB", (8, 8), "red").save(tmp_path / "a.png")
    (tmp_path / "captions.csv").write_text("file,text\na.png,a red square\n")
    cfg = TrainConfig(method="clip", data=f"captions:{tmp_path}", steps=1, batch_size=2, final_eval=False)
    with pytest.raises(ValueError, match="captions.csv line 1: unknown column 'text'"):
        Trainer.from_config(cfg, tmp_path / "run", show_progress=False)


@pytest.mark.parametrize("lock", ["none", "text"])
def test_the_wordllama_text_tower_is_fine_tuned_unless_locked(tmp_path, lock):
    from contrastlab.train.tasks import ImageTextTask
    data = toy_data()
    cfg = TrainConfig(method="clip", data="toy", steps=2, batch_size=12, final_eval=False, threads=1,
                      hyperparameters={"lock": lock})                         # text_encoder: the default, wordllama
    method = ImageTextTask.build(cfg, data, tmp_path)[0]
    assert method.text_encoder_name == "wordllama"
    text = method.encoder.text
    params = list(text.parameters())
    if lock == "text":                                  # LiT: frozen pretrained table, kept out of the checkpoint
        assert not any(p.requires_grad for p in params) and "encoder.text.weight" not in method.state_dict()
    else:
        assert [p.requires_grad for p in params] == [True] and "encoder.text.weight" in method.state_dict()
        before = text.weight.detach().clone()
        trainer = Trainer(method, data, cfg, tmp_path / "run", show_progress=False)
        trainer.fit()
        rows = text.tokenize([t for t in data.texts["en"] if t])["input_ids"].unique()
        assert not torch.equal(text.weight.detach()[rows], before[rows])      # the names' tokens moved
