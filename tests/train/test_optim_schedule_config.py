"""LARS, the warm-up + cosine schedule and the training configuration."""
import math

import pytest
import torch

from contrastlab.train import LARS, TrainConfig, parse_overrides, warmup_cosine, warmup_linear


def test_lars_step_matches_float64_formula():
    torch.manual_seed(0)
    w0, g = torch.randn(4, 3, dtype=torch.float64), torch.randn(4, 3, dtype=torch.float64)
    b0, gb = torch.randn(3, dtype=torch.float64), torch.randn(3, dtype=torch.float64)
    w, b = torch.nn.Parameter(w0.clone()), torch.nn.Parameter(b0.clone())
    opt = LARS([{"params": [w], "weight_decay": 0.1}, {"params": [b], "weight_decay": 0.0, "lars_exclude": True}],
               lr=0.5, momentum=0.9, eta=0.01)
    for _ in range(2):
        w.grad, b.grad = g.clone(), gb.clone()
        opt.step()
    # reference: two steps by hand
    def adapted(p):
        d = g + 0.1 * p
        return 0.01 * p.norm() / d.norm() * d
    u1 = adapted(w0); w1 = w0 - 0.5 * u1
    u2 = 0.9 * u1 + adapted(w1); w2 = w1 - 0.5 * u2
    torch.testing.assert_close(w.detach(), w2)
    torch.testing.assert_close(b.detach(), b0 - 0.5 * gb - 0.5 * (0.9 * gb + gb))


def test_warmup_cosine_values():
    f = lambda s: warmup_cosine(s, total_steps=100, base_lr=2.0, warmup_steps=10)
    assert f(0) == pytest.approx(0.2) and f(9) == pytest.approx(2.0)
    assert f(10) == pytest.approx(2.0) and f(55) == pytest.approx(1.0)
    assert f(99) == pytest.approx(2.0 * 0.5 * (1 + math.cos(math.pi * 89 / 90)))
    assert warmup_cosine(5, total_steps=10, base_lr=1.0, warmup_steps=0) == pytest.approx(0.5)


def test_warmup_linear_is_the_hugging_face_linear_schedule():
    """Hugging Face's get_linear_schedule_with_warmup (what sentence-transformers' trainer uses) as the reference:
    the same decay; in the warm-up ours takes the value HF takes one step later (no update at lr 0)."""
    from transformers import get_linear_schedule_with_warmup
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=2.0)
    hf = get_linear_schedule_with_warmup(opt, num_warmup_steps=10, num_training_steps=100).lr_lambdas[0]
    for s in range(100):
        ours = warmup_linear(s, total_steps=100, base_lr=2.0, warmup_steps=10)
        assert ours == pytest.approx(2.0 * hf(s + 1 if s < 10 else s)), s
    assert warmup_linear(100, total_steps=100, base_lr=2.0, warmup_steps=10) == 0.0


@pytest.mark.parametrize("kwargs, message", [
    (dict(), "give exactly one budget"),
    (dict(steps=5, schedule="step"), "`schedule` must be one of ['cosine', 'linear'], got 'step'"),
    (dict(steps=5, max_grad_norm=0.0), "`max_grad_norm` must be > 0, got 0.0"),
    (dict(steps=5, max_grad_norm=float("nan")), "`max_grad_norm` must be a finite number > 0, got nan"),
    (dict(steps=5, minutes=1.0), "give exactly one budget"),
    (dict(steps=0), "`steps` must be a positive int, got 0"),
    (dict(minutes=-1.0), "`minutes` must be > 0, got -1.0"),
    (dict(steps=5, batch_size=1), "`batch_size` must be an int >= 2, got 1"),
    (dict(steps=5, optimizer="adam"), "`optimizer` must be one of ['adamw', 'lars', 'sgd'], got 'adam'"),
    (dict(steps=5, lr=0.0), "`lr` must be > 0, got 0.0"),
    (dict(steps=5, warmup=1.5), "`warmup` must be a fraction in [0, 1), got 1.5"),
    (dict(steps=5, strength=3.0), "`strength` must be in [0, 2], got 3.0"),
])
def test_config_rejects_bad_values(kwargs, message):
    with pytest.raises(ValueError) as err:
        TrainConfig(**kwargs)
    assert message in str(err.value)


def test_config_round_trip_and_defaults():
    cfg = TrainConfig(steps=10, batch_size=512, optimizer="sgd")
    assert TrainConfig.from_dict(cfg.to_dict()) == cfg
    assert cfg.base_lr() == pytest.approx(0.12)
    with pytest.raises(ValueError, match="unknown keys \\['bogus'\\]"):
        TrainConfig.from_dict({**cfg.to_dict(), "bogus": 1})


def test_overrides_are_typed_and_unknown_keys_named():
    t, m = parse_overrides(["lr=0.1", "final_eval=false", "weight_decay=none", "symmetric=true", "queue_size=64"],
                           method_keys={"symmetric": False, "queue_size": 16384})
    assert t == {"lr": 0.1, "final_eval": False, "weight_decay": None} and m == {"symmetric": True, "queue_size": 64}
    with pytest.raises(ValueError, match="--set tempreature: unknown key"):
        parse_overrides(["tempreature=0.1"], method_keys={"temperature": 0.2})
    with pytest.raises(ValueError, match="--set batch_size=big: expected a value of type int"):
        parse_overrides(["batch_size=big"], method_keys={})
    with pytest.raises(ValueError, match="--set expects key=value, got 'lr'"):
        parse_overrides(["lr"], method_keys={})


def _updates(tmp_path, name, **kw):
    """(lr, global gradient norm) seen by the optimizer at each update of a 3-step digits run."""
    from contrastlab.train import Trainer
    cfg = TrainConfig(method="simclr", data="digits", steps=3, batch_size=16, final_eval=False, threads=1,
                      probe_size=32, monitor_bank=64, warmup=0.34, lr=0.01, **kw)
    trainer = Trainer.from_config(cfg, tmp_path / name, show_progress=False)
    seen, step = [], trainer.optimizer.step

    def recording(*args, **kwargs):
        grads = [p.grad for g in trainer.optimizer.param_groups for p in g["params"] if p.grad is not None]
        norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g.double()) for g in grads]))
        seen.append((trainer.optimizer.param_groups[0]["lr"], float(norm)))
        return step(*args, **kwargs)
    trainer.optimizer.step = recording
    trainer.fit()
    return seen


def test_the_trainer_follows_the_linear_schedule_and_clips_the_gradient_norm(tmp_path):
    clipped = _updates(tmp_path, "clipped", schedule="linear", max_grad_norm=1e-3)
    free = _updates(tmp_path, "free", schedule="linear")
    assert [lr for lr, _ in clipped] == pytest.approx(
        [warmup_linear(s, total_steps=3, base_lr=0.01, warmup_steps=1) for s in range(3)])
    assert all(norm <= 1e-3 * (1 + 1e-4) for _, norm in clipped)
    assert free[0][1] > 1e-2                                 # unclipped, the first gradient is far larger
