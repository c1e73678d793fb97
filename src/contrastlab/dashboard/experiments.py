"""Guided experiments of the playground: one registry of one-click experiments, each with its
settings, its question, what to watch, and the check that confirms (or not) its outcome from the
engine's live numbers (:func:`.measures.measure`).

An experiment runs in phases: each phase sets controls (on top of the defaults and the experiment's
``base``), optionally restarts from the seed's initial embeddings, and trains for a number of steps.
The engine measures once when the first phase starts and once at the end of every phase; the
experiment's ``check`` reads those measures and says what happened, with the numbers. The page gets
the registry (without the checks) in its ``init`` message and the outcome in each frame.

Example::

    >>> from contrastlab.dashboard.experiments import EXPERIMENTS, ExperimentRun
    >>> from contrastlab.dashboard.playground import Playground
    >>> "collapse" in EXPERIMENTS and len(EXPERIMENTS) >= 8
    True
    >>> pg = Playground()
    >>> pg.start_experiment("temperature")
    >>> while pg.experiment.status == "running":
    ...     _ = pg.step(20)
    >>> pg.experiment.passed, pg.running
    (True, False)
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

from .controls import check_consistent, defaults, validate_settings
from .measures import HARD_K, measure

__all__ = ["Phase", "Experiment", "ExperimentRun", "EXPERIMENTS"]


@dataclass(frozen=True)
class Phase:
    """One stretch of an experiment: ``settings`` applied, then ``steps`` optimisation steps.
    ``reset``: restart from the seed's initial embeddings (a fair comparison with the phase before)."""
    label: str
    steps: int
    settings: dict = field(default_factory=dict)
    reset: bool = False


Check = Callable[[list], tuple]


@dataclass(frozen=True)
class Experiment:
    """A one-click experiment. ``check(measures) -> (passed, verdict)``: ``measures[0]`` is taken when the
    first phase starts, ``measures[k]`` at the end of phase k. ``note`` says what the playground uses in
    place of the real thing, where it does."""
    name: str
    title: str
    question: str
    watch: str
    base: dict
    phases: tuple
    check: Check
    note: str = ""

    def __post_init__(self):
        if not self.phases:
            raise ValueError(f"experiment {self.name!r}: `phases` must not be empty")
        for phase in self.phases:
            if not isinstance(phase.steps, int) or phase.steps < 1:
                raise ValueError(f"experiment {self.name!r}: a phase's `steps` must be an integer >= 1, "
                                 f"got {phase.steps!r}")
            check_consistent(self.settings_of(phase))

    def settings_of(self, phase: Phase) -> dict:
        """The complete, validated settings of one phase."""
        return {**defaults(), **validate_settings(self.base), **validate_settings(phase.settings)}

    def to_json(self) -> dict:
        return {"name": self.name, "title": self.title, "question": self.question, "watch": self.watch,
                "note": self.note, "phases": [{"label": p.label, "steps": p.steps, "reset": p.reset,
                                               "settings": self.settings_of(p)} for p in self.phases]}


class ExperimentRun:
    """The progress of one experiment on one engine: phase, steps taken in it, measures, verdict."""

    def __init__(self, experiment: Experiment):
        self.experiment = experiment
        self.phase = 0
        self.phase_steps = 0
        self.measures: list[dict] = []
        self.status = "running"              # "running", "done" or "stopped" (the learner changed a control)
        self.passed: bool | None = None
        self.verdict = ""

    @property
    def current(self) -> Phase:
        return self.experiment.phases[self.phase]

    def after_step(self, engine) -> bool:
        """Count one step of ``engine`` (a :class:`~.playground.Playground`): at the end of a phase, measure it
        and apply the next phase, or judge the outcome and pause the engine. Returns True when it ended."""
        if self.status != "running":
            return False
        self.phase_steps += 1
        if self.phase_steps < self.current.steps:
            return False
        self.measures.append(measure(engine))
        if self.phase + 1 == len(self.experiment.phases):
            self.finish()
            engine.running = False
            return True
        self.phase, self.phase_steps = self.phase + 1, 0
        engine.apply(self.experiment.settings_of(self.current), restart=self.current.reset)
        return False

    def finish(self) -> None:
        self.status = "done"
        passed, verdict = self.experiment.check(self.measures)
        self.passed, self.verdict = bool(passed), verdict

    def stop(self, why: str) -> None:
        if self.status == "running":
            self.status, self.verdict = "stopped", why

    def to_json(self) -> dict:
        e = self.experiment
        return {"name": e.name, "title": e.title, "status": self.status, "phase": self.phase,
                "phase_label": self.current.label, "phase_steps": self.phase_steps, "phases": len(e.phases),
                "steps": self.current.steps,
                "measures": [{k: v if math.isfinite(v) else None for k, v in m.items()} for m in self.measures], "passed": self.passed,
                "verdict": self.verdict}


# ----------------------------------------------------------------------------- the checks
def _collapse(m):
    u0, u, a = m[0]["uniformity"], m[-1]["uniformity"], m[-1]["alignment"]
    if u > -0.2 and a < 0.1:
        return True, (f"Uniformity rose from {u0:.2f} to {u:.2f} and alignment fell to {a:.3f}: the embedding "
                      f"collapsed. Every point sits in nearly one spot; nothing pushed them apart.")
    return False, f"Uniformity is {u:.2f} (from {u0:.2f}), alignment {a:.3f}: not collapsed."


def _temperature(m):
    hot, cold = m[1]["hard_share"], m[2]["hard_share"]
    text = (f"The {HARD_K} hardest negatives of each anchor take {100 * cold:.0f}% of the negatives' softmax "
            f"mass (and so of the push) at temperature 0.05, against {100 * hot:.0f}% at temperature 1.0")
    if cold > 2 * hot and cold > 0.5:
        return True, text + ": a low temperature spends the gradient on the hardest negatives."
    return False, text + ": not the sharp difference expected."


def _hard_pair(m):
    g = m[-1]["pair_gap"]
    text = (f"Clusters A and B: the mean cosine within them exceeds the one between them by {g:.2f} "
            f"(0 would be merged)")
    if g > 0.25:
        return True, text + ": with moderate augmentation the close pair is still told apart."
    return False, text + ": the close pair is mixed."


def _too_strong(m):
    gentle, strong = m[1]["pair_gap"], m[2]["pair_gap"]
    text = (f"Within-minus-between cosine of clusters A and B: {gentle:.2f} with augmentation 0.15, "
            f"{strong:.2f} with augmentation 0.6")
    if gentle > 0.25 and strong < 0.1:
        return True, (text + ": strong augmentation makes positives across the two clusters, and the "
                      "clusters merge.")
    return False, text + ": the clusters did not merge."


def _supcon(m):
    nce, sup = m[1]["separation"], m[2]["separation"]
    text = (f"Within-cluster minus between-cluster cosine: {nce:.2f} with InfoNCE, {sup:.2f} with SupCon "
            f"(within a cluster: {m[1]['within']:.2f} and {m[2]['within']:.2f})")
    if sup > nce + 0.3:
        return True, (text + ": InfoNCE pushes apart points of the same cluster (false negatives); SupCon, "
                      "told the labels, pulls each cluster together.")
    return False, text + ": SupCon did not separate the clusters more."


def _debiased(m):
    nce, deb = m[1]["separation"], m[2]["separation"]
    text = (f"Within-cluster minus between-cluster cosine: {nce:.2f} with InfoNCE, {deb:.2f} with debiased "
            f"InfoNCE (tau+ 0.5)")
    if deb > nce + 0.1:
        return True, (text + ": without labels, subtracting the expected false negatives from the denominator "
                      "separates the two classes better.")
    return False, text + ": debiasing did not separate the classes more."


def _batch(m):
    few, many = m[1]["purity"], m[2]["purity"]
    text = (f"After the same 200 steps, {100 * few:.0f}% of the points have a nearest neighbour of their own "
            f"cluster with batch 4 (3 negatives each), {100 * many:.0f}% with batch 128 (127 negatives)")
    if many > few + 0.3:
        return True, (text + ": a large batch trains more points per step and gives each anchor many "
                      "negatives, so the clusters form far sooner.")
    return False, text + ": the larger batch did not help."


def _margin(m):
    small, big = m[1]["margin_gap"], m[2]["margin_gap"]
    text = (f"Nearest other-cluster distance minus farthest same-cluster distance: {small:.2f} with margin 0.05, "
            f"{big:.2f} with margin 1.0")
    if big > small + 0.2:
        return True, (text + ": the triplet loss stops pushing once a negative is farther than the positive by "
                      "the margin, so a larger margin separates the clusters more.")
    return False, text + ": the larger margin did not separate the clusters more."


def _align_uniform(m):
    a0, a, u = m[0]["alignment"], m[-1]["alignment"], m[-1]["uniformity"]
    text = f"Alignment fell from {a0:.3f} to {a:.3f} while uniformity stayed at {u:.2f}"
    if a < 0.5 * a0 and u < -1.0:
        return True, (text + ": InfoNCE optimises both, positives close and all points spread (Wang & Isola "
                      "2020); compare the collapse experiment, where alignment alone sends uniformity to 0.")
    return False, text + ": not both."


_COMMON = {"points": 256, "clusters": 4, "batch_size": 32, "lr": 0.3, "noise": 0.15, "seed": 0, "steps_per_frame": 5}
_NOISE_NOTE = ("Free-embedding mode has no input-space augmentation: the augmentation strength is the noise added "
               "to a point before it is snapped to its nearest neighbour, its positive.")

EXPERIMENTS: dict[str, Experiment] = {e.name: e for e in (
    Experiment("collapse", "No negatives: collapse",
               "What happens when the loss only pulls positives together?",
               "The uniformity curve climbs to 0 and every point runs into one spot.",
               {**_COMMON, "points": 128, "no_negatives": True, "noise": 0.4, "lr": 0.5},
               (Phase("alignment only", 300),), _collapse),
    Experiment("temperature", "Temperature 1.0 against 0.05",
               "Where does the softmax put its mass at a high and at a low temperature?",
               "The anchor's bars: flat at 1.0, dominated by a few hard negatives at 0.05.",
               _COMMON, (Phase("temperature 1.0", 40, {"temperature": 1.0}),
                         Phase("temperature 0.05", 40, {"temperature": 0.05})), _temperature),
    Experiment("hard_pair", "A hard pair of clusters",
               "Two clusters lie close together in the data: does the embedding keep them apart?",
               "Clusters A and B (blue and orange) form two separate groups.",
               {**_COMMON, "hard_pair": True, "temperature": 0.2}, (Phase("augmentation 0.15", 300),), _hard_pair,
               note=_NOISE_NOTE),
    Experiment("too_strong", "Augmentation too strong: clusters merge",
               "What if the augmentation can turn a point of one cluster into a point of another?",
               "With strength 0.6 the positives cross between A and B, and the two groups merge.",
               {**_COMMON, "hard_pair": True, "temperature": 0.2},
               (Phase("augmentation 0.15", 300, {"noise": 0.15}),
                Phase("augmentation 0.6", 300, {"noise": 0.6}, reset=True)), _too_strong, note=_NOISE_NOTE),
    Experiment("supcon", "False negatives: InfoNCE against SupCon",
               "With two clusters, half of an anchor's negatives are of its own class. What do labels change?",
               "InfoNCE spreads each cluster out; SupCon gathers each cluster into a tight group.",
               {**_COMMON, "clusters": 2},
               (Phase("InfoNCE", 200, {"loss": "info_nce"}),
                Phase("SupCon", 200, {"loss": "supcon"}, reset=True)), _supcon),
    Experiment("debiased", "False negatives: debiased InfoNCE",
               "Without labels, can the loss correct for the negatives that are really positives?",
               "Debiased InfoNCE (tau+ 0.5: two equal clusters) separates the two classes more than InfoNCE.",
               {**_COMMON, "clusters": 2, "temperature": 0.2},
               (Phase("InfoNCE", 200, {"loss": "info_nce"}),
                Phase("debiased InfoNCE", 200, {"loss": "debiased_info_nce", "tau_plus": 0.5}, reset=True)),
               _debiased,
               note="On free embeddings the effect is small and depends on the seed: it shows with seed 0, the "
                    "experiment's; change the seed afterwards and see for yourself."),
    Experiment("batch", "Batch size and the number of negatives",
               "Does it matter how many anchors, and so negatives, each step sees?",
               "Batch 4: a few points move per step and the clusters barely form; batch 128: they form quickly.",
               _COMMON, (Phase("batch 4", 200, {"batch_size": 4}),
                         Phase("batch 128", 200, {"batch_size": 128}, reset=True)), _batch,
               note="Both runs take the same number of steps; a step of batch 128 also moves 32 times as many points."),
    Experiment("margin", "Triplet margin",
               "How far does the triplet loss push negatives: what does the margin decide?",
               "Margin 0.05: training stops once clusters barely clear each other; margin 1.0: they move further apart.",
               {**_COMMON, "loss": "triplet", "mining": "batch_all"},
               (Phase("margin 0.05", 300, {"margin": 0.05}),
                Phase("margin 1.0", 300, {"margin": 1.0}, reset=True)), _margin),
    Experiment("align_uniform", "Alignment and uniformity (Wang & Isola)",
               "InfoNCE is said to do two things at once. Which two?",
               "The alignment curve falls while the uniformity curve stays low.",
               _COMMON, (Phase("InfoNCE", 200),), _align_uniform),
)}
