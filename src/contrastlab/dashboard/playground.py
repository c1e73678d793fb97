"""The playground engine: embeddings on the circle or the sphere, trained live by the library's
losses and autograd, one frame per tick. In free mode (below) every point owns its embedding; in encoder
mode (:mod:`.encoder_mode`) the embeddings are an MLP of 2-D inputs, trained by Adam on the same loss's
gradient, positives are augmented inputs snapped to the nearest training input, a fifth of the points is
held out of every batch, and each frame also carries the inputs and where the MLP sends the input plane.

Each point owns one learnable unit vector (initialised at random, like an untrained encoder). A
step samples a batch of anchors, finds each anchor's positive by augmentation (see
:mod:`.toy_data`), evaluates the chosen loss from :mod:`contrastlab.losses` on the batch, and moves
the batch's vectors by SGD on the sphere (tangent step, at most :data:`MAX_STEP` radians per point,
renormalised). The loss is summed over the anchors (mean times batch size), so a learning rate
means the same per point whatever the batch size. Every control applies at once: data controls
(points, clusters, hard pair, dimension, seed) regenerate the points, the others change the next
step and frame. A guided experiment (:mod:`.experiments`) sets the controls phase by phase and judges its
outcome from :func:`.measures.measure`; a link (:mod:`.share`) restarts the same run; each frame carries
the clicked anchor's InfoNCE written out (:mod:`.formula`).

Example::

    >>> from contrastlab.dashboard.playground import Playground
    >>> pg = Playground(points=64, batch_size=16, temperature=0.2, seed=1)
    >>> loss = pg.step(5)
    >>> frame = pg.frame()
    >>> frame.positions.shape, frame.step
    ((64, 2), 5)
    >>> pg.update(temperature=0.05)          # applies to the next step and frame
    >>> round(sum(frame.anchor["probabilities"]), 6)
    1.0
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from ..losses import alignment, uniformity
from .controls import DATA_CONTROLS, check_consistent, defaults, validate_settings
from .encoder_mode import LR_SCALE, InputEncoder, augment_inputs, field as encoder_field, make_inputs
from .experiments import EXPERIMENTS, ExperimentRun
from .explain import explain
from .forces import anchor_distribution, entropy, forces_and_gradient, make_objective
from .formula import anchor_formula
from .measures import measure
from .share import parse_link, settings_query
from .toy_data import class_names, make_clusters, nearest_positives, sample_batch

__all__ = ["Playground", "Frame", "MAX_STEP", "SIMILARITY_SIZE", "TOP_NEGATIVES"]

#: Largest move of one point in one step (radians): keeps low temperatures from throwing points around.
MAX_STEP = 0.25
#: The similarity matrix shows at most this many anchors (and their positives).
SIMILARITY_SIZE = 48
#: The anchor's softmax bars show the positive and this many hardest negatives (the rest summed).
TOP_NEGATIVES = 12
#: Alignment and uniformity are measured on fixed subsets of this size (stable curves).
EVAL_PAIRS, EVAL_POINTS = 256, 256
#: History length kept (older points are thinned by half when it fills).
HISTORY = 2000


@dataclass
class Frame:
    """One picture of the playground.

    positions: (N, dim) float32; batch: (2B,) int64, the batch's anchors then their positives (ids into
    positions); pull, push: (2B, dim) float32, the forces on those rows (zero where not computed);
    similarity: (S, S) float32 cosine of the shown anchors (rows) and their positives (columns, same
    order, so the positives are on the diagonal); similarity_rows / _cols: their ids;
    history: the curve points since the last frame (``replace``: true when they replace the curves).
    """
    step: int
    epoch: int
    positions: np.ndarray
    batch: np.ndarray
    pull: np.ndarray
    push: np.ndarray
    similarity: np.ndarray
    similarity_rows: list
    similarity_cols: list
    anchor: dict
    metrics: dict
    history: dict
    text: str
    settings: dict = field(default_factory=dict)
    experiment: dict | None = None
    formula: dict | None = None
    link: str = ""
    inputs: np.ndarray | None = None          # encoder mode: (N, 2) input positions
    held_out: np.ndarray | None = None        # encoder mode: (N,) bool, never in a batch (drawn hollow)
    field: np.ndarray | None = None           # encoder mode: (G * G, dim) where the encoder sends the plane's grid


class Playground:
    """The engine behind the playground page; one per connection. Not thread-safe: drive it from one
    thread (the server queues client commands and applies them between ticks)."""

    def __init__(self, **settings):
        s = defaults()
        s.update(validate_settings(settings))
        check_consistent(s)
        self._settings = s
        self.running = True
        self.anchor = 0
        self.epoch = 0                       # counts resets: the page clears its curves when it changes
        self.experiment: ExperimentRun | None = None
        self._reset()

    # ------------------------------------------------------------------ state
    @property
    def settings(self) -> dict:
        return dict(self._settings)

    @property
    def labels(self) -> torch.Tensor:
        return self._labels

    @property
    def embeddings(self) -> torch.Tensor:
        """The current unit vectors (N, dim), float32 (a view: do not modify)."""
        return self._w

    @property
    def batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The current batch: anchors (B,) and their positives (B,), point ids."""
        return self._batch

    @property
    def eval_points(self) -> torch.Tensor:
        """The fixed subset of point ids that uniformity (and the experiments' measures) use."""
        return self._eval_points

    def metrics(self) -> dict:
        """The engine's loss on the current batch (per anchor, as the curves show it), alignment and uniformity."""
        an = self._analysis or self._analyse()
        return {"loss": an["loss"], **self._metrics()}

    @property
    def class_names(self) -> list[str]:
        return class_names(int(self._labels.max()) + 1)                  # moons: 2 whatever `clusters` says

    @property
    def encoder(self) -> InputEncoder | None:
        """Encoder mode's MLP (None in free mode)."""
        return self._encoder

    @property
    def held_out(self) -> torch.Tensor | None:
        """Encoder mode: (N,) bool, the points never in a batch (None in free mode)."""
        return self._held

    @property
    def inputs(self) -> torch.Tensor:
        """The data positions (N, dim) on the sphere (free mode), or the 2-D inputs (N, 2) (encoder mode)."""
        return self._x

    def _reset(self) -> None:
        s = self._settings
        g = torch.Generator().manual_seed(s["seed"])
        if s["mode"] == "encoder":
            self._x, self._labels, self._held = make_inputs(s["inputs"], points=s["points"], clusters=s["clusters"],
                                                            hard_pair=s["hard_pair"], generator=g)
            self._encoder = InputEncoder(dim=s["dim"], seed=s["seed"])
            self._optimizer = torch.optim.Adam(self._encoder.parameters(), lr=s["lr"] * LR_SCALE)
            self._space = {"exclude": self._held, "augment": augment_inputs, "metric": "euclidean"}
            self._w = self._embed()
        else:
            self._x, self._labels = make_clusters(points=s["points"], clusters=s["clusters"], dim=s["dim"],
                                                  hard_pair=s["hard_pair"], generator=g)
            self._w = torch.nn.functional.normalize(torch.randn(s["points"], s["dim"], generator=g), dim=1)  # (N, dim)
            self._held = self._encoder = self._optimizer = None
            self._space = {}
        self._gen = torch.Generator().manual_seed(s["seed"] + 1)
        self.anchor = min(self.anchor, s["points"] - 1)
        if self._held is not None and bool(self._held[self.anchor]):     # a held-out point is never an anchor
            self.anchor = int(torch.nonzero(~self._held)[0, 0])
        self.step_count = 0
        self.epoch += 1
        self._history = {"step": [], "loss": [], "alignment": [], "uniformity": []}
        self._history_sent = 0
        self._history_replace = True
        self._last_loss = None
        self._metrics_cache = (None, {})
        n = s["points"]
        self._eval_points = torch.randperm(n, generator=g)[:EVAL_POINTS]
        self._resample_eval()
        self._resample_batch()

    def _embed(self) -> torch.Tensor:
        """Encoder mode: every point's embedding f(x) (N, dim), without gradients."""
        with torch.no_grad():
            return self._encoder(self._x)

    def _resample_eval(self) -> None:
        s = self._settings
        g = torch.Generator().manual_seed(s["seed"] + 2)
        n = s["points"]
        allowed = torch.arange(n) if self._held is None else torch.nonzero(~self._held).squeeze(1)
        b = min(EVAL_PAIRS, allowed.shape[0] // 2)
        anchors = allowed[torch.randperm(allowed.shape[0], generator=g)[:b]]
        taken = torch.zeros(n, dtype=torch.bool) if self._held is None else self._held.clone()
        taken[anchors] = True
        space = {k: v for k, v in self._space.items() if k != "exclude"}
        self._eval_pairs = (anchors, nearest_positives(self._x, anchors, noise=s["noise"], generator=g, taken=taken,
                                                       **space))

    def _resample_batch(self) -> None:
        self._analysis = None
        s = self._settings
        a, p = sample_batch(self._x, batch_size=s["batch_size"], noise=s["noise"], generator=self._gen,
                            include=self.anchor, **self._space)
        order = torch.argsort(self._labels[a] * s["points"] + a)              # by cluster, then id
        self._batch = (a[order], p[order])

    # --------------------------------------------------------------- controls
    def update(self, **values) -> None:
        """Change any controls (validated all together, applied at once); stops a guided experiment."""
        v = validate_settings(values)
        check_consistent({**self._settings, **v})
        self._stop_experiment("stopped: a control was changed")
        self._set(v)

    def _set(self, v: dict) -> None:
        new = {**self._settings, **v}
        check_consistent(new)
        old, self._settings = self._settings, new
        if any(new[k] != old[k] for k in DATA_CONTROLS):
            self._reset()
            return
        if new["noise"] != old["noise"]:
            self._resample_eval()
        if new["batch_size"] != old["batch_size"] or new["noise"] != old["noise"]:
            self._resample_batch()
        if self._optimizer is not None:
            for group in self._optimizer.param_groups:
                group["lr"] = new["lr"] * LR_SCALE
        self._analysis = None                                                 # forces under the new settings

    def select_anchor(self, index: int) -> None:
        """Make point ``index`` the anchor shown in the softmax panel (it joins every batch)."""
        n = self._settings["points"]
        if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < n:
            raise ValueError(f"`index` must be an integer in [0, {n - 1}], got {index!r}")
        if self._held is not None and bool(self._held[index]):
            raise ValueError(f"`index` {index} is a held-out point (drawn hollow): it is never in a batch, so it "
                             "cannot be the anchor; choose a filled point")
        self.anchor = index
        if not bool((self._batch[0] == index).any()):
            self._resample_batch()
        self._analysis = None                                                 # the shown rows changed

    def reset(self) -> None:
        """Back to the initial embeddings of the current seed (the step count and curves restart)."""
        self._stop_experiment("stopped: the playground was reset")
        self._reset()

    def restart(self, settings: dict, *, anchor: int = 0) -> None:
        """Start again from the seed's initial embeddings under complete ``settings`` (defaults for the
        missing ones) with ``anchor`` as the anchor: the same settings and anchor give the same run."""
        s = {**defaults(), **validate_settings(settings)}
        check_consistent(s)
        self._settings = s
        self.anchor = 0
        self._reset()
        anchor = min(anchor, s["points"] - 1)
        if self._held is None or not bool(self._held[anchor]):          # a held-out one: _reset's first training point
            self.select_anchor(anchor)

    def load_link(self, query: str) -> list[str]:
        """Open a playground link (:mod:`.share`): restart under its settings and anchor; with a ``step``,
        take that many steps and pause. Returns the notices about the parts of the link that were ignored."""
        link = parse_link(query)
        self._stop_experiment("stopped: a link was opened")
        self.restart(link.settings, anchor=link.anchor)
        if self.anchor != min(link.anchor, self._settings["points"] - 1):
            link.notices.append(f"ignored anchor={link.anchor}: a held-out point (encoder mode) is never in a batch; "
                                f"using anchor {self.anchor}")
        self.running = link.step is None
        if link.step is not None:
            self.step(link.step)
        return link.notices

    # ------------------------------------------------------------ experiments
    def start_experiment(self, name: str) -> None:
        """Run the guided experiment ``name`` (see :mod:`.experiments`): its first phase's settings from the
        seed's initial embeddings, anchor 0, running; it pauses the playground when it ends."""
        if name not in EXPERIMENTS:
            raise ValueError(f"`name` must be one of {sorted(EXPERIMENTS)}, got {name!r}")
        exp = EXPERIMENTS[name]
        self._stop_experiment("stopped: another experiment started")
        self.restart(exp.settings_of(exp.phases[0]))
        self.experiment = ExperimentRun(exp)
        self.experiment.measures.append(measure(self))
        self.running = True                                                   # after_step pauses at the end

    def _stop_experiment(self, why: str) -> None:
        if self.experiment is not None:
            self.experiment.stop(why)

    def _experiment_step(self) -> bool:
        """Count one step of the running experiment (it may measure and start its next phase). True: it ended."""
        return self.experiment is not None and self.experiment.after_step(self)

    def apply(self, settings: dict, *, restart: bool) -> None:
        """Complete ``settings`` at once, from the seed's initial embeddings when ``restart`` (the anchor kept);
        for the experiments' phases: unlike :meth:`update`, it leaves a running experiment running."""
        if restart:
            self.restart(settings, anchor=self.anchor)
        else:
            self._set(validate_settings(settings))

    # ------------------------------------------------------------------- step
    def _objective(self):
        a, p = self._batch
        rows = torch.cat([a, p])
        objective, groups = make_objective(self._settings, labels=self._labels[rows])
        return rows, objective, groups

    def _force_rows(self) -> torch.Tensor | None:
        """Rows whose pull and push are computed: all of them, or past 256 rows the shown anchors'."""
        b = self._batch[0].shape[0]
        if 2 * b <= 256:
            return None
        idx = torch.tensor(self._shown_anchors(self._anchor_position()))
        return torch.cat([idx, idx + b])

    def _analyse(self) -> dict:
        """Loss, gradient, pull and push of the current batch at the current positions (one pass)."""
        rows, objective, groups = self._objective()
        loss, grad, pull, push = forces_and_gradient(objective, self._w[rows], groups, rows=self._force_rows(),
                                                     scale=float(self._settings["batch_size"]))
        self._analysis = {"rows": rows, "loss": loss / self._settings["batch_size"], "grad": grad,
                          "pull": pull, "push": push}
        return self._analysis

    def step(self, count: int = 1, *, should_stop=None) -> float | None:
        """Run ``count`` optimisation steps; returns the last loss.

        ``should_stop``, if given, is called before each step: when it returns True no more steps are
        taken (``step_count`` says how many were). The frame after a step shows the pull and push of
        that step's batch, the forces that made the move."""
        s = self._settings
        taken = 0
        for _ in range(count):
            if should_stop is not None and should_stop():
                break
            self._resample_batch()
            an = self._analyse()
            if self._encoder is not None:
                self._encoder_step(an)
            else:
                rows, g = an["rows"], an["grad"]
                z = self._w[rows]                                             # (2B, dim)
                g = g - (g * z).sum(1, keepdim=True) * z                      # tangent part
                move = -s["lr"] * g
                norm = move.norm(dim=1, keepdim=True)
                move = move * (MAX_STEP / norm.clamp(min=MAX_STEP))           # at most MAX_STEP per point
                self._w[rows] = torch.nn.functional.normalize(z + move, dim=1)
            self.step_count += 1
            taken += 1
            self._last_loss = an["loss"]
            if self._experiment_step():
                break
            s = self._settings                                                # a phase may change them
        if taken and self._last_loss is not None:                             # None: a phase just restarted
            self._record()
        return self._last_loss

    def _encoder_step(self, an: dict) -> None:
        """Encoder mode: the loss's gradient with respect to the batch's embeddings, back through the MLP, one
        Adam step; then every point's embedding again."""
        z = self._encoder(self._x[an["rows"]])                                # (2B, dim), = self._w[rows]
        self._optimizer.zero_grad(set_to_none=True)
        z.backward(an["grad"].to(z.dtype))
        self._optimizer.step()
        self._w = self._embed()

    def _metrics(self) -> dict:
        key = (self.epoch, self.step_count, self._settings["noise"])
        if self._metrics_cache[0] != key:                                   # once per state, not per call
            a, p = self._eval_pairs
            self._metrics_cache = (key, {"alignment": float(alignment(self._w[a], self._w[p])),
                                         "uniformity": float(uniformity(self._w[self._eval_points]))})
        return dict(self._metrics_cache[1])

    def _record(self) -> None:
        m = self._metrics()
        h = self._history
        for key, value in (("step", self.step_count), ("loss", self._last_loss), *m.items()):
            h[key].append(value)
        if len(h["step"]) > HISTORY:                                        # thin by half, keep the last
            for key in h:
                h[key] = h[key][-1::-2][::-1]
            self._history_replace = True

    def history(self) -> dict:
        return {k: list(v) for k, v in self._history.items()}

    # ------------------------------------------------------------------ frame
    def _shown_anchors(self, position: int) -> list[int]:
        b = self._settings["batch_size"]
        if b <= SIMILARITY_SIZE:
            return list(range(b))
        shown = np.linspace(0, b - 1, SIMILARITY_SIZE).round().astype(int).tolist()
        if position not in shown:
            shown[int(np.abs(np.array(shown) - position).argmin())] = position
        return sorted(set(shown))

    def anchor_softmax(self) -> tuple[torch.Tensor, int]:
        """The anchor's distribution over its positive and the batch's other positives (its
        negatives), and the index of the positive in it."""
        a, p = self._batch
        i = self._anchor_position()
        s = self._settings
        probs = anchor_distribution(self._w[self.anchor], self._w[p], i, temperature=s["temperature"],
                                    hard_negative_beta=s["hard_negative_beta"] if s["loss"] == "info_nce" else 0.0)
        return probs, i

    def _anchor_info(self) -> dict:
        a, p = self._batch
        names = self.class_names
        probs, i = self.anchor_softmax()
        cos = (self._w[p].double() @ self._w[self.anchor].double()).tolist()
        pl = p.tolist()
        order = [j for j in torch.argsort(probs, descending=True).tolist() if j != i]

        def item(j):
            return {"point": pl[j], "label": names[int(self._labels[pl[j]])], "p": float(probs[j]), "cos": cos[j]}
        shown = order[:TOP_NEGATIVES]
        return {"point": self.anchor, "label": names[int(self._labels[self.anchor])], "positive": item(i),
                "negatives": [item(j) for j in shown], "rest": float(probs[order[TOP_NEGATIVES:]].sum()),
                "n_negatives": len(order), "entropy": entropy(probs),
                "probabilities": probs.tolist()}

    def _anchor_position(self) -> int:
        return int((self._batch[0] == self.anchor).nonzero()[0, 0])

    def frame(self) -> Frame:
        """The current picture (no step is taken). Pull and push are those of the last step, or of
        the current positions when a control changed since."""
        s = self._settings
        a, p = self._batch
        an = self._analysis or self._analyse()
        shown = self._shown_anchors(self._anchor_position())
        sa, sp = a[shown], p[shown]
        similarity = (self._w[sa] @ self._w[sp].t()).numpy().astype(np.float32)
        metrics = {"loss": an["loss"], **self._metrics(), "negatives": self._negatives_count()}
        anchor = self._anchor_info()
        start = 0 if self._history_replace else self._history_sent
        new_history = {k: v[start:] for k, v in self._history.items()}
        new_history["replace"] = self._history_replace
        self._history_sent, self._history_replace = len(self._history["step"]), False
        return Frame(step=self.step_count, epoch=self.epoch, positions=self._w.numpy().astype(np.float32),
                     batch=an["rows"].numpy(), pull=an["pull"].numpy().astype(np.float32),
                     push=an["push"].numpy().astype(np.float32), similarity=similarity,
                     similarity_rows=sa.tolist(), similarity_cols=sp.tolist(), anchor=anchor, metrics=metrics,
                     history=new_history, text=explain(s, anchor, metrics), settings=self.settings,
                     experiment=None if self.experiment is None else self.experiment.to_json(),
                     formula=anchor_formula(self), link=settings_query(s, anchor=self.anchor),
                     **self._encoder_frame())

    def _encoder_frame(self) -> dict:
        if self._encoder is None:
            return {}
        return {"inputs": self._x.numpy().astype(np.float32), "held_out": self._held.numpy(),
                "field": encoder_field(self._encoder).numpy().astype(np.float32)}

    def _negatives_count(self) -> int:
        s = self._settings
        b = s["batch_size"]
        if s["no_negatives"]:
            return 0
        return {"nt_xent": 2 * b - 2, "margin_contrastive": 1}.get(s["loss"], b - 1)
