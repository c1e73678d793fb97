"""The trainer: any `Method` on any data (images or text pairs), with a budget, a schedule, a run directory and
exact resume. What differs by kind of data (the encoder, the views, the online monitor) lives in `tasks.py`.

Every random draw of step `s` (the batch's images, their views, MoCo's shuffle) comes from generators seeded by
(seed, s) or (seed, epoch), so a run killed at any point and resumed from its last checkpoint replays the same
steps and ends with the same weights and metrics as an uninterrupted run (on the same machine and threads).

Several processes (``torchrun --nproc-per-node N -m contrastlab train ...`` or ``contrastlab train ... --nproc N``):
``batch_size`` stays the *global* batch. Every rank draws the same seeded permutation per epoch and takes its slice
of each global batch (so an epoch still covers every example once), makes its views with its own generator, and
computes the loss of its rows against every rank's embeddings (exact global negatives); gradients are averaged over
ranks after each backward (``distributed.average_gradients``), so the update is the one-process update on the same
global batch. Batch-norm statistics are per rank, as with DistributedDataParallel. Only rank 0 writes the run
directory; every rank loads the checkpoint on resume, also with another process count that divides the batch.

Devices (``device`` = auto | cpu | cuda | cuda:N | mps, resolved by :mod:`contrastlab.devices`): the method (encoders,
heads, momentum encoder, queue) is moved there before the optimizer is built; each batch's images are copied there
(pinned, non_blocking for CUDA) before the views are made, so the augmentation runs on the device, while every
random draw still comes from the step's CPU generator (the same seed gives the same views on every device, and
bit-identical runs on the CPU). Checkpoints load on any device, and the device is not part of a run's identity:
``Trainer.resume(run, device=...)`` continues a GPU run on a CPU. Snapshots and metrics are numpy / floats.

>>> import tempfile
>>> cfg = TrainConfig(method="simclr", data="digits", steps=3, batch_size=32, final_eval=False,
...                   hyperparameters={"proj_hidden_dim": 32, "proj_dim": 16})
>>> trainer = Trainer.from_config(cfg, tempfile.mkdtemp(), show_progress=False)
>>> trainer.fit()["step"]
3
"""
from __future__ import annotations

import contextlib
import copy
import json
import math
import statistics
import sys
import time
from datetime import datetime, timezone

import torch
from torch import nn

from .. import __version__
from .. import devices
from .. import distributed as dist
from .. import faults
from ..io import load_checkpoint, save_checkpoint
from ..losses.validation import NonFiniteError
from ..progress import bar as progress_bar
from ..methods import Method, method_hyperparameters
from ..optim import param_groups
from .config import TrainConfig
from .gradcache import grad_cache_step
from .lars import LARS
from .precision import MixedPrecision, fp32_loss, maybe_compile
from ..rundir import RunDir, RunInUse
from .schedule import SCHEDULES
from .seeding import generator as _generator, views_generator
from .tracking import Trackers
from .tasks import TASKS, channel_stats, load_data, view_geometry

__all__ = ["Trainer", "TrainingDiverged", "RunInUse", "view_geometry", "channel_stats"]

CHECKPOINT_FORMAT = 1
MONITORS_PER_RUN = 20          # at most; with a minutes budget, monitoring takes at most MONITOR_SHARE of it
MONITOR_SHARE = 0.05


class TrainingDiverged(RuntimeError):
    """The loss, or the weights, became NaN or infinite."""


def _finite(module: nn.Module) -> bool:
    """Whether every parameter and floating buffer is finite (one fused reduction per dtype)."""
    ts = [t.detach() for t in [*module.parameters(), *module.buffers()] if t.is_floating_point() and t.numel()]
    return all(bool(torch.isfinite(t).all()) for t in ts)


_IDENTITY_KEYS = ("run_id",)
_WHERE_KEYS = ("device", "stream", "workers")   # where and how a run reads and trains, not what it is: a run may
                                                 # resume on another device, streamed or loaded (the same images)


def _config_differences(saved: dict, mine: dict) -> list[str]:
    """Settings present in both configurations that differ (keys added by a later version are not differences;
    values compare as JSON holds them, so a tuple equals the list it was saved as; the device is no difference)."""
    saved, mine = json.loads(json.dumps(saved)), json.loads(json.dumps(mine))
    return [f"{k}: {saved[k]!r} in the checkpoint, {mine[k]!r} in the run"
            for k in sorted((set(saved) & set(mine)) - set(_WHERE_KEYS)) if saved[k] != mine[k]]


class _OnDevice:
    """``augment`` run on ``device``: the images are copied there first (pinned, non_blocking for CUDA); the
    random parameters still come from the step's CPU generator and are moved by the views code."""

    def __init__(self, augment, device: torch.device):
        self.augment, self.device = augment, device

    def __call__(self, x, *, generator=None):
        return self.augment(devices.to_device(x, self.device), generator=generator)


def _sync_from_main(module: nn.Module) -> None:
    """Copy rank 0's parameters and buffers to every rank (one gather per dtype; a no-op in one process), so all
    ranks start from the same weights even where building the model drew different random numbers."""
    if dist.world_size() == 1:
        return
    by_dtype: dict[torch.dtype, list[torch.Tensor]] = {}
    for t in [*module.parameters(), *module.buffers()]:
        by_dtype.setdefault(t.dtype, []).append(t)
    with torch.no_grad():
        for ts in by_dtype.values():
            flat = torch.cat([t.detach().reshape(-1) for t in ts])             # (P,)
            main = dist.gather_no_grad(flat[None])[0]                          # rank 0's row of (W, P)
            for t, v in zip(ts, main.split([t.numel() for t in ts])):
                t.copy_(v.view_as(t))


def _divisors(b: int, most: int = 64) -> list[int]:
    return [k for k in range(1, min(b, most) + 1) if b % k == 0]


def _check_world(b: int) -> None:
    w = dist.world_size()
    if b % w:
        raise ValueError(f"`batch_size` is the global batch and must be divisible by the number of processes "
                         f"({w}), got {b}; a resumed run keeps its batch_size, so run it with a process count "
                         f"that divides {b}: one of {_divisors(b)}")


def _main_first(fn):
    """Run ``fn`` on rank 0, then on the other ranks (which then find what rank 0 wrote, e.g. a tokenizer)."""
    if not dist.is_main():
        dist.barrier()
    out = fn()
    if dist.is_main():
        dist.barrier()
    return out


class Trainer:
    def __init__(self, method: Method, data, config: TrainConfig, run_dir, *, augment=None,
                 show_progress: bool = True, model_info: dict | None = None, make_encoder=None):
        self.method, self.data, self.config = method, data, config
        self.device = devices.resolve(config.device)     # a clear error when it is not available here
        precision = devices.resolve_precision(config.precision, self.device)
        self.task = TASKS[getattr(data, "modality", "image")](self)
        self.run = RunDir(run_dir)
        self.show_progress = show_progress
        self.model_info = model_info or {"encoder": type(method.encoder).__name__, "custom": True}
        self.make_encoder = make_encoder       # builds a fresh encoder of the same architecture (label efficiency)
        method.check_data(data)
        n, b = len(data), config.batch_size
        if b > n:
            raise ValueError(f"`batch_size` must be at most the number of training examples ({n}), got {b}")
        _check_world(b)
        if config.micro_batch and not method.supports_micro_batch():
            from ..methods import METHODS
            able = sorted(k for k, c in METHODS.items() if c.supports_micro_batch())
            raise ValueError(f"`micro_batch` (gradient caching) needs a method that computes its loss from "
                             f"per-chunk embeddings; {method.name!r} does not (use one of {able}, or "
                             f"micro_batch=0), got micro_batch={config.micro_batch}")
        self.steps_per_epoch = n // b
        self.augment = augment if augment is not None else self.task.default_augment()
        self._batch_augment = _OnDevice(self.augment, self.device) if self.augment is not None else None
        method.to(self.device)                  # encoders, heads, momentum encoder, queue; before the optimizer
        _sync_from_main(method)
        self.amp = MixedPrecision(self.device, precision)
        self.model = maybe_compile(method, enabled=config.compile)   # forward only; state stays `method`'s
        self.optimizer = self._optimizer(method)
        self.step = 0
        self.total_steps: int | None = None
        self.monitor_every: int | None = None
        self.elapsed = 0.0                      # training seconds, summed over resumes
        self._perms: dict[int, torch.Tensor] = {}   # epoch -> its seeded permutation of the training examples
        self.restarting = False                 # resumed a run that had no checkpoint: start it over in its folder
        self._owns_run = False                  # this trainer created or resumed the run directory (it may write it)
        self._at_boundary = False               # the state in memory is one a checkpoint may hold (between steps)
        self._saved_step: int | None = None     # the step of the last checkpoint written or loaded
        self.trackers = Trackers(config)        # `log`: TensorBoard, MLflow (their packages are checked here)

    # -- construction from a configuration ------------------------------------------------------------------
    @classmethod
    def from_config(cls, config: TrainConfig, run_dir, *, show_progress: bool = True, data=None,
                    first_stage=None) -> "Trainer":
        """A new run of `config` in `run_dir` (`data`: already loaded; `first_stage`: the embedder that mines hard
        negatives when `config.mine` names a run, e.g. ``contrastlab.runs.load_run(config.mine).embedder()``)."""
        device = devices.resolve(config.device)    # before loading anything: `--device cuda` without CUDA fails here
        dist.init_from_env(devices.backend_for(device))   # joins torchrun's group (WORLD_SIZE > 1): NCCL for CUDA
        _check_world(config.batch_size)            # before loading anything
        run = RunDir(run_dir)
        run.check_writable()
        if config.threads:
            torch.set_num_threads(config.threads)
        unknown = sorted(set(config.hyperparameters) - set(method_hyperparameters(config.method)))
        if unknown:
            raise ValueError(f"unknown hyperparameters {unknown} for method {config.method!r}; "
                             f"it takes {sorted(method_hyperparameters(config.method))}")
        data = data if data is not None else load_data(config)
        task = TASKS[getattr(data, "modality", "image")]
        data = task.prepare(config, data, first_stage=first_stage)
        torch.manual_seed(config.seed)
        def build():
            if dist.is_main() and run.exists() and not run.started():
                run.check_not_in_use()               # a run stopped before its first checkpoint: start it over,
                run.clear(tokenizer=True)            # its tokenizer too (the build below would reuse it)
            return task.build(config, data, run_dir)
        method, info, make_encoder = _main_first(build)
        return cls(method, data, config, run_dir, show_progress=show_progress and dist.is_main(), model_info=info,
                   make_encoder=make_encoder)

    @classmethod
    def resume(cls, run_dir, *, show_progress: bool = True, for_training: bool = True,
               device: str | None = None, first_stage=None) -> "Trainer":
        """Continue a run from its last checkpoint. For training, a run stopped before its first checkpoint is
        started over in its own folder with its saved settings, and a run that a live process trains is refused;
        ``for_training=False`` (evaluation) only loads the last checkpoint. ``device`` (auto | cpu | cuda | ...)
        replaces the saved one: a run trained on a GPU resumes or evaluates on a CPU, and the reverse."""
        run = RunDir(run_dir)
        saved = run.config()
        if "train" not in saved:
            raise ValueError(f"{run.config_file} was not written by `contrastlab train` (no 'train' section)")
        config = TrainConfig.from_dict({**saved["train"], **({"device": device} if device is not None else {})})
        if for_training and dist.is_main():
            run.check_not_in_use()
        if for_training and not run.last_checkpoint.exists():
            trainer = cls.from_config(config, run_dir, show_progress=show_progress, first_stage=first_stage)
            trainer.restarting = trainer._owns_run = True
            return trainer
        state = load_checkpoint(run.last_checkpoint, required=("format", "step", "method", "optimizer"))
        trainer = cls.from_config(config, run_dir, show_progress=show_progress, first_stage=first_stage)
        trainer._check_identity(state, saved)
        trainer._load(state)
        trainer._owns_run = for_training
        return trainer

    def _check_identity(self, state: dict, saved: dict) -> None:
        """A checkpoint copied in from another run (another seed, schedule or model) is refused, not resumed."""
        path = self.run.last_checkpoint
        mine_id, theirs_id = saved.get("run_id"), state.get("run_id")
        diffs = _config_differences(state.get("config") or {}, saved["train"])
        if diffs or (mine_id and theirs_id and mine_id != theirs_id):
            why = "; ".join(diffs[:6]) + (f" (and {len(diffs) - 6} more)" if len(diffs) > 6 else "")
            raise ValueError(f"checkpoint {path} belongs to another run (run id {theirs_id or 'unknown'}, this run "
                             f"is {mine_id or 'unknown'}){': ' + why if why else ''}; put back this run's own "
                             f"checkpoint, or start a new run")

    def _optimizer(self, method: nn.Module) -> torch.optim.Optimizer:
        cfg = self.config
        groups = param_groups(method, weight_decay=cfg.base_weight_decay(), lr_scales={"encoder": cfg.backbone_lr})
        if cfg.freeze_encoder and not any(g["params"] for g in groups):
            raise ValueError(f"method {cfg.method!r} has no trainable parameters (`freeze_encoder` freezes the "
                             f"encoder, and the method adds no head); nothing to train")
        lr = cfg.base_lr()
        for g in groups:                      # the encoder's groups at lr x backbone_lr (each step: see _fit)
            g["lr"] = lr * g["lr_scale"]
        if cfg.optimizer == "adamw" and not devices.fused_optimizers(devices.module_device(method)):
            return torch.optim.AdamW(groups, lr=lr)
        if cfg.optimizer == "adamw":          # fused: one kernel per tensor, 5-8x faster on CPU for big tables
            try:
                return torch.optim.AdamW(groups, lr=lr, fused=True)
            except (RuntimeError, TypeError):
                return torch.optim.AdamW(groups, lr=lr)
        if cfg.optimizer == "sgd":
            return torch.optim.SGD(groups, lr=lr, momentum=cfg.optimizer_momentum)
        for g in groups:                      # biases and norm weights: no trust ratio, no decay (SimCLR)
            g["lars_exclude"] = g["kind"] == "no_decay"
        return LARS(groups, lr=lr, momentum=cfg.optimizer_momentum)

    # -- checkpoints ----------------------------------------------------------------------------------------
    def _state(self) -> dict:
        return {"format": CHECKPOINT_FORMAT, "run_id": self._run_id, "step": self.step,
                "total_steps": self.total_steps, "monitor_every": self.monitor_every, "elapsed": self.elapsed,
                "method": self.method.state_dict(),
                "optimizer": self.optimizer.state_dict(), "torch_rng": torch.get_rng_state(),
                "device_rng": devices.accelerator_rng_state(),     # dropout drawn on a GPU
                "precision": self.amp.state_dict(), "world_size": dist.world_size(),
                "config": self.config.to_dict()}

    def _load(self, state: dict) -> None:
        if state["format"] != CHECKPOINT_FORMAT:
            raise ValueError(f"checkpoint format {state['format']} is not supported (expected {CHECKPOINT_FORMAT})")
        try:
            self.method.load_state_dict(state["method"])
            self.optimizer.load_state_dict(state["optimizer"])
        except (RuntimeError, ValueError, KeyError) as e:
            raise ValueError(f"checkpoint {self.run.last_checkpoint} does not match the run's model "
                             f"({str(e).splitlines()[0]})") from None
        self.step, self.total_steps, self.elapsed = state["step"], state["total_steps"], state["elapsed"]
        self._saved_step = self.step
        self.monitor_every = state.get("monitor_every")
        saved_precision = (state.get("precision") or {}).get("precision")
        if saved_precision is not None and (saved_precision == self.amp.precision or self.config.precision != "auto"):
            self.amp.load_state_dict(state["precision"])   # `auto` may resolve otherwise on another device: no scaler
        torch.set_rng_state(state["torch_rng"])
        devices.set_rng_state(state.get("device_rng", {}))       # where the same GPUs exist

    @property
    def _run_id(self) -> str | None:
        if not hasattr(self, "_run_id_cache"):
            self._run_id_cache = self.run.config().get("run_id") if self.run.exists() else None
        return self._run_id_cache

    def save(self) -> None:
        """Write the checkpoint (atomically). Weights that are no longer finite are never saved: the last
        checkpoint stays the last good one."""
        if not _finite(self.method):
            raise TrainingDiverged(self._diverged_message("the weights became NaN or infinite"))
        save_checkpoint(self.run.last_checkpoint, self._state())
        self._saved_step = self.step
        faults.point("after-checkpoint", self.step)
        self.trackers.checkpoint(self.step)

    def _diverged_message(self, what: str) -> str:
        last = (f"the last good checkpoint is {self.run.last_checkpoint} (step {self._saved_step})"
                if self._saved_step is not None else "no checkpoint was written")
        return (f"training diverged: {what} at step {self.step}; {last}. Lower `lr` (now {self.config.base_lr():g}) "
                f"or raise `temperature`, then resume or restart.")

    @contextlib.contextmanager
    def _diverged_on_error(self, method: nn.Module):
        """A NaN check that fires inside a step or the monitor (a loss's own, say), or any error once the weights
        are no longer finite, is the divergence it is, with the trainer's message."""
        try:
            yield
        except NonFiniteError as e:
            raise TrainingDiverged(self._diverged_message(f"the embeddings became NaN or infinite ({e})")) from None
        except (ValueError, RuntimeError) as e:
            if isinstance(e, TrainingDiverged) or _finite(method):
                raise
            raise TrainingDiverged(self._diverged_message(f"the weights became NaN or infinite ({e})")) from None

    # -- the data stream ------------------------------------------------------------------------------------
    def batch_indices(self, step: int) -> torch.Tensor:
        epoch, pos = divmod(step, self.steps_per_epoch)
        perms = self._perms                         # the last two epochs' (prefetching reads ahead into the next)
        if epoch not in perms:
            perms[epoch] = torch.randperm(len(self.data), generator=_generator(self.config.seed, 1, epoch))
            for old in sorted(perms)[:-2]:
                del perms[old]
        b = self.config.batch_size
        return perms[epoch][pos * b:(pos + 1) * b]

    def _prefetching(self, total: int):
        """While training, a streamed dataset's next batches are decoded by DataLoader workers (in pinned memory for
        a GPU); images in memory: nothing to do."""
        from ..data.stream import prefetching
        x = getattr(self.data, "x", None)
        return prefetching(x, (self.local_indices(s) for s in range(self.step, total)), workers=self.config.workers,
                           pin_memory=devices.pinned(self.device))

    def local_indices(self, step: int) -> torch.Tensor:
        """This rank's slice of the global batch of `step` (the whole batch in one process)."""
        idx = self.batch_indices(step)
        return idx if dist.world_size() == 1 else idx.tensor_split(dist.world_size())[dist.rank()]

    def _views_generator(self, step: int) -> torch.Generator:
        return views_generator(self.config.seed, step, dist.rank())   # rank 0 draws what one process draws

    def make_batch(self, method, step: int) -> dict:
        """Step `step`'s batch on the trainer's device: the images copied there before the views are made (the
        augmentation runs on the device), then every other tensor of the batch (labels, tokens, shuffles)."""
        batch = method.make_batch(self.data, self.local_indices(step), self._batch_augment, self._views_generator(step))
        return devices.to_device(batch, self.device)

    def _train_step(self, method, optimizer, step: int, *, amp: MixedPrecision | None = None,
                    model=None) -> tuple[float, dict]:
        amp = amp or self.amp
        model = model if model is not None else (self.model if method is self.method else method)
        batch = self.make_batch(method, step)
        mb = self.config.micro_batch
        optimizer.zero_grad(set_to_none=True)
        if mb:                                      # GradCache: one micro-batch's activations at a time
            box = {}

            def encode(chunk):
                with amp.autocast():
                    return method.embeddings(chunk)

            def loss_fn(*emb):
                box["out"] = fp32_loss(method.loss_from)(emb, batch)
                return amp.scale(box["out"].loss)
            grad_cache_step(encode, method.split(batch, mb), loss_fn, module=method)
            out = box["out"]
        else:
            if amp.precision != "fp32" and method.supports_micro_batch():
                with amp.autocast():
                    emb = method.embeddings(batch)
                out = fp32_loss(method.loss_from)(emb, batch)   # the logits in float32
            else:
                with amp.autocast():
                    out = model(batch)
            amp.backward(out.loss)
        dist.average_gradients(p for p in method.parameters() if p.requires_grad)
        amp.step(optimizer, max_grad_norm=self.config.max_grad_norm)    # clipped after the ranks' average
        return dist.all_reduce_mean(out.loss.detach().float()), out.metrics

    # -- budget ---------------------------------------------------------------------------------------------
    def _plan(self) -> tuple[int, int]:
        """(total steps, steps between monitors). A minutes budget is turned into steps once, by timing a few
        steps and one monitor pass on a throwaway copy; the step count is then fixed (and saved), so the schedule
        and a resumed run do not depend on the machine's speed afterwards."""
        kind, value = self.config.budget()
        every = self.config.monitor_every
        if kind == "steps":
            total = int(value)
        elif kind == "epochs":
            total = max(1, math.ceil(value * self.steps_per_epoch))
        else:                                       # every rank times the steps (they are collective) ...
            trial = copy.deepcopy(self.method)
            opt = self._optimizer(trial)
            rng = devices.rng_state()               # the CPU's and any GPU's (dropout drawn there)
            times = []
            for s in range(4):                      # on the trainer's device, in its precision
                t0 = time.perf_counter()
                with self._diverged_on_error(trial):
                    self._train_step(trial, opt, s, amp=MixedPrecision(self.device, self.amp.precision))
                devices.synchronize(self.device)
                times.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            if dist.is_main():                      # ... rank 0 alone monitors
                self.task.monitor_features(trial)
                devices.synchronize(self.device)
            monitor_s = max(1.5 * (time.perf_counter() - t0), 1e-3)   # + kNN, geometry and the snapshot write
            devices.set_rng_state(rng)
            del trial, opt
            step_s = statistics.median(times[1:])
            budget_s = value * 60 - self.elapsed
            monitors = max(2, min(MONITORS_PER_RUN, int(MONITOR_SHARE * budget_s / monitor_s)))
            total = max(1, int((budget_s - monitors * monitor_s - 2.0) / step_s))
            if not every:
                every = max(1, total // monitors)
            total, every = (int(v) for v in dist.gather_no_grad(torch.tensor([[total, every]]))[0])  # rank 0's
        return total, every or max(1, total // MONITORS_PER_RUN)

    # -- monitoring -----------------------------------------------------------------------------------------
    def monitor(self) -> dict:
        """The task's online progress signal on a fixed probe subset (kNN for images, recall@1 / MRR for text) and
        an embedding snapshot for the dashboard. Not the final evaluation."""
        extra, probe = self.task.monitor(self.method)
        record = {"kind": "monitor", "step": self.step, "time": round(self.elapsed, 3), **extra}
        if probe is not None:                       # snapshots are device-independent: numpy on the host
            probe = devices.to_host(probe).numpy()
            self.run.write_snapshot(self.step, probe, elapsed=self.elapsed)
            self.trackers.snapshot(self.step, probe)
        self._append_metric(record)
        return record

    def _append_metric(self, record: dict) -> None:
        self.run.append_metric(record)
        self.trackers.record(record)

    # -- the loop -------------------------------------------------------------------------------------------
    def _start_run_dir(self) -> None:
        cfg = self.config
        kind, value = cfg.budget()
        replaced = self.run.create({
            "method": cfg.method, "data": cfg.data, "seed": cfg.seed, "classes": list(self.data.classes or []) or None,
            "num_classes": getattr(self.method, "num_classes", None),
            "budget": {kind: value}, "hyperparameters": {**method_hyperparameters(cfg.method), **cfg.hyperparameters},
            "model": self.model_info, "data_notes": list(getattr(self.data, "notes", ())),
            "train": cfg.to_dict(), "contrastlab_version": __version__,
            "started": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "command": " ".join(sys.argv)})
        self.__dict__.pop("_run_id_cache", None)
        self._owns_run = True
        self.run.status("running", step=0, total_steps=None)
        if replaced or self.restarting:
            print(f"note: {self.run.path} held a run that stopped before its first checkpoint; starting it over",
                  file=sys.stderr)
        faults.point("run-created")

    def fit(self) -> dict:
        """Train to the end of the budget (or continue a resumed run); returns the last monitor record."""
        main = dist.is_main()                       # only rank 0 writes; every rank trains
        if self.total_steps is not None and not self._owns_run:
            raise RuntimeError("this trainer was loaded for evaluation (`Trainer.resume(..., for_training=False)`); "
                               "resume the run with `Trainer.resume(run)` to train it")
        try:
            return self._fit(main)
        except KeyboardInterrupt:
            if main and self._owns_run:
                if self._at_boundary and _finite(self.method):   # never a half-done step: else the last checkpoint
                    self.save()
                self.run.status("interrupted", step=self.step, total_steps=self.total_steps)
            raise
        except BaseException as e:                  # the status never stays "running" after the trainer stopped
            if main and self._owns_run:
                reason = str(e).splitlines()[0] if str(e) else type(e).__name__
                self.run.status("failed", step=self.step, total_steps=self.total_steps,
                                reason=reason if isinstance(e, TrainingDiverged) else f"{type(e).__name__}: {reason}")
            raise
        finally:
            self.trackers.close(done=self.total_steps is not None and self.step >= self.total_steps)

    def _fit(self, main: bool) -> dict:
        cfg = self.config
        resumed = self.total_steps is not None
        if not resumed:
            if main:
                self._start_run_dir()
            dist.barrier()
            self.total_steps, self.monitor_every = self._plan()
            if main:
                self.run.update_config(total_steps=self.total_steps, monitor_every=self.monitor_every)
        elif main:
            removed = self.run.remove_temporaries()
            if removed:
                print(f"note: removed {len(removed)} temporary file(s) ({sum(n for _, n in removed) / 2**20:.1f} MiB) "
                      f"left by a write that was killed", file=sys.stderr)
            self.run.truncate_metrics(self.step)
            self.run.remove_snapshots_after(self.step)
        if main:
            self.trackers.start(self.run, step=self.step, resumed=resumed)
        total = self.total_steps
        every = self.monitor_every or cfg.monitor_every or max(1, total // MONITORS_PER_RUN)
        warmup = int(cfg.warmup * total)
        base_lr = cfg.base_lr()
        schedule = SCHEDULES[cfg.schedule]
        if not resumed and main:
            self.monitor()
            self.save()                             # the first checkpoint, before any step: always resumable
        if main:
            self.run.status("running", step=self.step, total_steps=total)
        self._at_boundary = True                    # == the checkpoint just written or loaded
        bar = progress_bar(total=total, initial=self.step, disable=not (self.show_progress and main), unit="step",
                           desc=f"{cfg.method} on {cfg.data}")
        last_ckpt = last_status = time.time()
        record = {}
        smooth = None
        self.method.train()
        with bar, self._diverged_on_error(self.method), self._prefetching(total):   # + a NaN check in the monitor
            while self.step < total:
                self._at_boundary = False
                t0 = time.perf_counter()
                lr = schedule(self.step, total_steps=total, base_lr=base_lr, warmup_steps=warmup)
                for group in self.optimizer.param_groups:
                    group["lr"] = lr * group.get("lr_scale", 1.0)   # backbone_lr; checkpoints before it: 1
                loss, extra = self._train_step(self.method, self.optimizer, self.step)
                faults.point("after-update", self.step + 1)     # the weights updated, the step not yet counted
                if not math.isfinite(loss):         # the all-reduced loss: every rank stops here together
                    raise TrainingDiverged(self._diverged_message(f"the loss became {loss}"))
                self.step += 1
                self.method.after_step(step=self.step, total_steps=total)
                dt = time.perf_counter() - t0
                self.elapsed += dt
                smooth = loss if smooth is None else 0.9 * smooth + 0.1 * loss
                throughput = cfg.batch_size * self.method.n_views / dt
                if main and (self.step % cfg.log_every == 0 or self.step == total):
                    self._append_metric({"kind": "train", "step": self.step,
                                         "epoch": round(self.step / self.steps_per_epoch, 4),
                                         "time": round(self.elapsed, 3), "loss": loss, "lr": lr,
                                         "throughput": round(throughput, 1), **extra})
                bar.update(1)
                bar.set_postfix(loss=f"{smooth:.3f}", views_per_s=f"{throughput:.0f}", lr=f"{lr:.3g}",
                                refresh=False)
                if main and (self.step % every == 0 or self.step == total):
                    record = self.monitor()
                    shown = {k: f"{record[k]:.3f}" for k in ("knn_top1", "recall@1") if k in record}
                    if shown:
                        bar.set_postfix(loss=f"{smooth:.3f}", **shown, refresh=False)
                now = time.time()
                if main and ((cfg.checkpoint_every and self.step % cfg.checkpoint_every == 0)
                             or self.step == total or now - last_ckpt > cfg.checkpoint_minutes * 60):
                    self.save()
                    last_ckpt = now
                if main and now - last_status > 5:
                    self.run.status("running", step=self.step, total_steps=total)
                    last_status = now
                self._at_boundary = True
                faults.point("after-step", self.step)
        if main:
            self.run.status("done", step=self.step, total_steps=total)
        dist.barrier()                              # the last checkpoint is on disk before any rank returns
        return {**record, "step": self.step}

    def features(self) -> nn.Module:
        """The trained encoder's evaluation features as a module (eval mode is set by the caller)."""
        return self.task.features(self.method)
