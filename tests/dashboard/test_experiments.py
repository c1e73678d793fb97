"""Guided experiments: every one confirms its claim when run on the engine, its measures are the engine's
live numbers (checked against float64 recomputations here), and the registry refuses bad definitions."""

import math

import numpy as np
import pytest
import torch

from contrastlab.dashboard.experiments import EXPERIMENTS, Experiment, Phase
from contrastlab.dashboard.measures import margin_gap, measure, neighbour_purity, pair_gap
from contrastlab.dashboard.playground import Playground

TOPICS = {"collapse", "temperature", "hard_pair", "too_strong", "supcon", "debiased", "batch", "margin",
          "align_uniform"}


def run_to_end(name, **start):
    pg = Playground(**start)
    pg.start_experiment(name)
    steps = sum(p.steps for p in EXPERIMENTS[name].phases)
    for _ in range(steps):                                    # one step at a time: phases end exactly
        if pg.experiment.status != "running":
            break
        pg.step(1)
    return pg


def test_the_registry_covers_the_issue_topics():
    assert set(EXPERIMENTS) >= TOPICS and len(EXPERIMENTS) >= 8
    for e in EXPERIMENTS.values():
        j = e.to_json()
        assert j["question"].endswith("?") and j["watch"] and j["phases"]
        assert "check" not in j                                   # the page gets no code, only the outcome


@pytest.mark.parametrize("name", sorted(EXPERIMENTS))
def test_every_experiment_confirms_its_outcome_on_the_engine(name):
    # started from a playground in another state (other seed, loss, anchor): the experiment sets everything
    pg = run_to_end(name, seed=9, loss="triplet", points=100, batch_size=10)
    run = pg.experiment
    assert run.status == "done" and not pg.running
    assert run.passed, run.verdict
    assert len(run.measures) == len(EXPERIMENTS[name].phases) + 1
    since_reset = 0
    for phase in EXPERIMENTS[name].phases:                  # the step count restarts at a phase that resets
        since_reset = phase.steps if phase.reset else since_reset + phase.steps
    assert pg.step_count == since_reset
    # the last measure is the engine's state now: recompute a few of its numbers independently (float64)
    last = run.measures[-1]
    z = pg.embeddings.numpy().astype(np.float64)[pg.eval_points.numpy()]
    d2 = ((z[:, None] - z[None]) ** 2).sum(-1)
    off = ~np.eye(len(z), dtype=bool)
    assert last["uniformity"] == pytest.approx(math.log(np.exp(-2 * d2[off]).mean()), abs=1e-4)
    lab = pg.labels.numpy()[pg.eval_points.numpy()]
    s = z @ z.T
    np.fill_diagonal(s, -np.inf)
    assert last["purity"] == pytest.approx(float((lab[s.argmax(1)] == lab).mean()), abs=1e-12)
    # and the verdict quotes the numbers
    assert f"{last[_quoted(name)]:.2f}" in run.verdict or f"{100 * last[_quoted(name)]:.0f}%" in run.verdict


def _quoted(name):
    return {"collapse": "uniformity", "temperature": "hard_share", "hard_pair": "pair_gap", "too_strong": "pair_gap",
            "supcon": "separation", "debiased": "separation", "batch": "purity", "margin": "margin_gap",
            "align_uniform": "uniformity"}[name]


def test_experiments_run_one_after_another_through_a_session():
    from contrastlab.dashboard.live import Session
    from contrastlab.dashboard.protocol import parse_message
    s = Session()
    for name in ("hard_pair", "too_strong"):                 # the second restarts mid-run (a phase that resets)
        s.submit(*parse_message(f'{{"type": "experiment", "name": "{name}"}}'))
        for _ in range(1000):
            errors, out = s.tick()
            assert errors == [] and out                        # every tick is encoded (finite JSON)
            if s.engine.experiment.status != "running":
                break
        assert s.engine.experiment.passed, s.engine.experiment.verdict


def test_a_run_is_reproducible_and_a_control_change_stops_it():
    a, b = run_to_end("temperature"), run_to_end("temperature", seed=4)
    assert a.experiment.measures == b.experiment.measures
    pg = Playground()
    pg.start_experiment("collapse")
    pg.step(3)
    pg.update(temperature=0.3)
    assert pg.experiment.status == "stopped" and "control" in pg.experiment.verdict
    pg.step(400)
    assert pg.experiment.passed is None                       # a stopped experiment never judges


def test_measures_against_float64_formulas():
    g = torch.Generator().manual_seed(0)
    z = torch.nn.functional.normalize(torch.randn(40, 3, generator=g, dtype=torch.float64), dim=1)
    labels = torch.arange(40) % 3
    zn, ln = z.numpy(), labels.numpy()
    d = 1 - zn @ zn.T
    same = ln[:, None] == ln[None]
    ref = np.mean([d[i][~same[i]].min() - d[i][same[i]].max() for i in range(40)])
    assert margin_gap(z, labels) == pytest.approx(ref, abs=1e-12)
    a, b = zn[ln == 0], zn[ln == 1]
    within = [(x @ x.T)[~np.eye(len(x), dtype=bool)] for x in (a, b)]
    ref = np.concatenate(within).mean() - (a @ b.T).mean()
    assert pair_gap(z, labels) == pytest.approx(ref, abs=1e-12)
    assert neighbour_purity(torch.tensor([[1.0, 0], [0.99, 0.14], [-1, 0], [-0.99, -0.14]]),
                            torch.tensor([0, 0, 1, 1])) == 1.0


def test_hard_share_is_the_top_negatives_share_of_the_softmax():
    pg = Playground(points=64, batch_size=16, temperature=0.3, seed=2)
    m = measure(pg)
    a, p = pg.batch
    z = pg.embeddings.numpy().astype(np.float64)
    logits = z[a.numpy()] @ z[p.numpy()].T / 0.3
    shares = []
    for i in range(16):
        neg = np.delete(logits[i], i)
        e = np.exp(neg - neg.max())
        shares.append(np.sort(e / e.sum())[-3:].sum())
    assert m["hard_share"] == pytest.approx(float(np.mean(shares)), abs=1e-12)


def test_bad_experiments_are_refused_with_precise_messages():
    check = lambda m: (True, "")                                         # noqa: E731
    with pytest.raises(ValueError, match="`phases` must not be empty"):
        Experiment("x", "X", "?", "w", {}, (), check)
    with pytest.raises(ValueError, match=r"a phase's `steps` must be an integer >= 1, got 0"):
        Experiment("x", "X", "?", "w", {}, (Phase("p", 0),), check)
    with pytest.raises(ValueError, match=r"`temperature` must be a number in \[0.01, 2\], got 5"):
        Experiment("x", "X", "?", "w", {"temperature": 5.0}, (Phase("p", 1),), check)
    with pytest.raises(ValueError, match="`batch_size` must be at most points / 2"):
        Experiment("x", "X", "?", "w", {"points": 16}, (Phase("p", 1),), check)
    with pytest.raises(ValueError, match=r"`name` must be one of \["):
        Playground().start_experiment("nope")
