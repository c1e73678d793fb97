"""LARS, the warm-up + cosine schedule and the training configuration."""
import math

import pytest
import torch

from contrastlab.train import LARS, TrainConfig, parse_overrides, warmup_cosine


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


@pytest.mark.parametrize("kwargs, message", [
    (dict(), "give exactly one budget"),
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
