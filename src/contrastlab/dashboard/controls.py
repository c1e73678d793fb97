"""The playground's controls: one table that names, types, bounds and documents every knob.

The engine validates settings against it, the WebSocket protocol validates client messages against
it, and the page builds its sliders from it (sent in the ``init`` message), so a control is defined
in exactly one place.

Example::

    >>> from contrastlab.dashboard.controls import CONTROLS, validate_settings
    >>> validate_settings({"temperature": 0.05, "loss": "supcon"})
    {'temperature': 0.05, 'loss': 'supcon'}
    >>> validate_settings({"temperature": 0})
    Traceback (most recent call last):
    ...
    ValueError: `temperature` must be a number in [0.01, 2], got 0
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

__all__ = ["Control", "CONTROLS", "LOSS_NAMES", "MINING_MODES", "MODES", "INPUT_NAMES", "DATA_CONTROLS",
           "defaults", "training_points",
           "validate_value", "validate_settings", "check_consistent"]

#: Losses the playground trains with (each maps onto a function of :mod:`contrastlab.losses`).
LOSS_NAMES = ("info_nce", "nt_xent", "supcon", "triplet", "margin_contrastive", "logistic", "debiased_info_nce")
#: Triplet miners of :func:`contrastlab.losses.triplet`.
MINING_MODES = ("batch_hard", "batch_all", "semi_hard")
#: The playground's modes: free embeddings, or an encoder of 2-D inputs (:mod:`.encoder_mode`).
MODES = ("free", "encoder")
#: Encoder mode's input data (:data:`.encoder_mode.INPUTS`, in the order the menu shows them).
INPUT_NAMES = ("clusters", "moons", "rings", "spiral")


@dataclass(frozen=True)
class Control:
    """One knob: ``kind`` is "float", "int", "bool" or "choice"; ``log`` marks a log-scale slider;
    ``data`` marks a control that regenerates the points (it still applies at once, by reset)."""
    name: str
    kind: str
    default: object
    label: str
    help: str
    low: float | None = None
    high: float | None = None
    options: tuple = ()
    log: bool = False
    data: bool = False

    def to_json(self) -> dict:
        d = asdict(self)
        d["options"] = list(self.options)
        return d


CONTROLS: dict[str, Control] = {c.name: c for c in (
    Control("loss", "choice", "info_nce", "loss", "the contrastive loss trained with", options=LOSS_NAMES),
    Control("mining", "choice", "batch_hard", "triplet mining", "which triplets the triplet loss uses",
            options=MINING_MODES),
    Control("temperature", "float", 0.1, "temperature", "divides the cosine similarities in the softmax",
            low=0.01, high=2.0, log=True),
    Control("hard_negative_beta", "float", 0.0, "hard-negative beta",
            "InfoNCE only: re-weights each negative by exp(beta * s / temperature)", low=0.0, high=5.0),
    Control("tau_plus", "float", 0.1, "false-negative prior tau+",
            "debiased InfoNCE only: the assumed fraction of negatives that share the anchor's class "
            "(Chuang et al. 2020)", low=0.0, high=0.9),
    Control("margin", "float", 0.5, "margin", "triplet and margin contrastive: the distance margin",
            low=0.0, high=2.0),
    Control("no_negatives", "bool", False, "no negatives",
            "train with the alignment term only (pull, never push): shows collapse"),
    Control("batch_size", "int", 64, "batch size", "anchors per step; the other anchors' positives are "
            "the negatives", low=2, high=1024),
    Control("lr", "float", 0.05, "learning rate", "step size of SGD on the free embeddings (encoder mode: "
            "Adam's, times 0.1)", low=0.001, high=2.0, log=True),
    Control("steps_per_frame", "int", 1, "steps per frame", "optimisation steps between two frames",
            low=1, high=50),
    Control("noise", "float", 0.15, "augmentation strength", "noise added to a point before it is snapped "
            "to its nearest neighbour, the positive (encoder mode: the zoom, scaling and jitter of the input)",
            low=0.0, high=1.0),
    Control("mode", "choice", "free", "mode", "free: every point owns its embedding; encoder: an MLP maps 2-D "
            "inputs onto the circle or sphere, trained by the same loss (the input plane is shown beside it)",
            options=MODES, data=True),
    Control("inputs", "choice", "clusters", "input data", "encoder mode: the 2-D input data (moons: 2 classes)",
            options=INPUT_NAMES, data=True),
    Control("points", "int", 512, "points", "number of points", low=16, high=10_000, data=True),
    Control("clusters", "int", 4, "clusters", "number of clusters (classes)", low=2, high=10, data=True),
    Control("hard_pair", "bool", False, "hard pair", "put two clusters close together", data=True),
    Control("dim", "choice", 2, "dimension", "circle (2) or sphere (3)", options=(2, 3), data=True),
    Control("seed", "int", 0, "seed", "random seed of the data, the initial embeddings and the batches",
            low=0, high=2**31 - 1, data=True),
)}

#: Controls that regenerate the data when they change.
DATA_CONTROLS = frozenset(name for name, c in CONTROLS.items() if c.data)


def defaults() -> dict:
    """Every control at its default value."""
    return {name: c.default for name, c in CONTROLS.items()}


def _fmt(x) -> str:
    return repr(x) if not isinstance(x, float) else f"{x:g}"


def validate_value(name: str, value):
    """Check one control's value and return it in its canonical type (int stays int, float is float).

    Raises ``ValueError`` (unknown control, out of range) or ``TypeError`` (wrong type), naming the
    control, the rule and the value.
    """
    if name not in CONTROLS:
        raise ValueError(f"unknown control {name!r}; known controls: {sorted(CONTROLS)}")
    c = CONTROLS[name]
    if c.kind == "bool":
        if not isinstance(value, bool):
            raise TypeError(f"`{name}` must be true or false, got {value!r}")
        return value
    if c.kind == "choice":
        # bool is an int in Python: reject it explicitly so True never passes as dimension 1
        if isinstance(value, bool) or value not in c.options:
            raise ValueError(f"`{name}` must be one of {list(c.options)}, got {value!r}")
        return value
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"`{name}` must be a number, got {type(value).__name__} {value!r}")
    if c.kind == "int":
        if isinstance(value, float):
            if not value.is_integer():
                raise ValueError(f"`{name}` must be an integer in [{c.low}, {c.high}], got {value!r}")
            value = int(value)
        if not c.low <= value <= c.high:
            raise ValueError(f"`{name}` must be an integer in [{c.low}, {c.high}], got {value!r}")
        return int(value)
    value = float(value)
    if not math.isfinite(value) or not c.low <= value <= c.high:
        raise ValueError(f"`{name}` must be a number in [{_fmt(c.low)}, {_fmt(c.high)}], got {_fmt(value)}")
    return value


def validate_settings(values: dict) -> dict:
    """Validate a mapping of control values (all or nothing) and check the cross-control rules."""
    if not isinstance(values, dict):
        raise TypeError(f"settings must be an object of control values, got {type(values).__name__}")
    return {name: validate_value(name, value) for name, value in values.items()}


def training_points(settings: dict) -> int:
    """Points a batch can use: all of them, or in encoder mode those not held out (a fifth of each class)."""
    from .encoder_mode import HELD_OUT
    n = settings["points"]
    if settings.get("mode", "free") != "encoder":
        return n
    k = 2 if settings.get("inputs") == "moons" else settings["clusters"]
    counts = [n // k + (1 if c < n % k else 0) for c in range(k)]            # labels are arange(N) % K
    return n - sum(int(round(HELD_OUT * c)) for c in counts)


def check_consistent(settings: dict) -> None:
    """Rules between controls, on a complete settings dict: each batch needs 2 x batch_size distinct
    points (anchors and their positives), held-out points (encoder mode) left out."""
    m = training_points(settings)
    if 2 * settings["batch_size"] > m:
        held = "" if m == settings["points"] else f" of the {m} training points ({settings['points'] - m} held out)"
        raise ValueError(f"`batch_size` must be at most points / 2 = {m // 2}{held} (anchors and "
                         f"positives are distinct points), got {settings['batch_size']}")
