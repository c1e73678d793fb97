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

>>> import tempfile
>>> cfg = TrainConfig(method="simclr", data="digits", steps=3, batch_size=32, final_eval=False,
...                   hyperparameters={"proj_hidden_dim": 32, "proj_dim": 16})
>>> trainer = Trainer.from_config(cfg, tempfile.mkdtemp(), show_progress=False)
>>> trainer.fit()["step"]
3
"""
from __future__ import annotations

import copy
import math
import statistics
import sys
import time
from datetime import datetime, timezone

import torch
from torch import nn
from tqdm.auto import tqdm

from .. import __version__
from .. import distributed as dist
from ..io import load_checkpoint, save_checkpoint
from ..methods import Method, method_hyperparameters
from ..optim import param_groups
from .config import TrainConfig
from .gradcache import grad_cache_step
from .lars import LARS
from .precision import MixedPrecision, fp32_loss, maybe_compile
from .rundir import RunDir
from .schedule import warmup_cosine
from .tasks import TASKS, channel_stats, load_data, view_geometry

__all__ = ["Trainer", "TrainingDiverged", "view_geometry", "channel_stats"]

CHECKPOINT_FORMAT = 1
MONITORS_PER_RUN = 20          # at most; with a minutes budget, monitoring takes at most MONITOR_SHARE of it
MONITOR_SHARE = 0.05


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite."""


def _generator(*keys: int) -> torch.Generator:
    seed = 0
    for k in keys:                                   # a fixed arithmetic mix (Python's hash() is salted per process)
        seed = (seed * 1_000_003 + int(k) + 0x9E3779B9) % (2 ** 63 - 1)
    return torch.Generator().manual_seed(seed)


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
        _sync_from_main(method)
        self.amp = MixedPrecision("cpu", config.precision)
        self.model = maybe_compile(method, enabled=config.compile)   # forward only; state stays `method`'s
        self.optimizer = self._optimizer(method)
        self.step = 0
        self.total_steps: int | None = None
        self.monitor_every: int | None = None
        self.elapsed = 0.0                      # training seconds, summed over resumes
        self._perm_epoch, self._perm = -1, None

    # -- construction from a configuration ------------------------------------------------------------------
    @classmethod
    def from_config(cls, config: TrainConfig, run_dir, *, show_progress: bool = True, data=None) -> "Trainer":
        dist.init_from_env()                       # joins torchrun's process group when WORLD_SIZE > 1
        _check_world(config.batch_size)            # before loading anything
        if config.threads:
            torch.set_num_threads(config.threads)
        unknown = sorted(set(config.hyperparameters) - set(method_hyperparameters(config.method)))
        if unknown:
            raise ValueError(f"unknown hyperparameters {unknown} for method {config.method!r}; "
                             f"it takes {sorted(method_hyperparameters(config.method))}")
        data = data if data is not None else load_data(config)
        task = TASKS[getattr(data, "modality", "image")]
        data = task.prepare(config, data)
        torch.manual_seed(config.seed)
        method, info, make_encoder = _main_first(lambda: task.build(config, data, run_dir))
        return cls(method, data, config, run_dir, show_progress=show_progress and dist.is_main(), model_info=info,
                   make_encoder=make_encoder)

    @classmethod
    def resume(cls, run_dir, *, show_progress: bool = True) -> "Trainer":
        run = RunDir(run_dir)
        saved = run.config()
        if "train" not in saved:
            raise ValueError(f"{run.config_file} was not written by `contrastlab train` (no 'train' section)")
        config = TrainConfig.from_dict(saved["train"])
        state = load_checkpoint(run.last_checkpoint, required=("format", "step", "method", "optimizer"))
        trainer = cls.from_config(config, run_dir, show_progress=show_progress)
        trainer._load(state)
        return trainer

    def _optimizer(self, method: nn.Module) -> torch.optim.Optimizer:
        cfg = self.config
        groups = param_groups(method, weight_decay=cfg.base_weight_decay())
        lr = cfg.base_lr()
        if cfg.optimizer == "adamw":          # fused: one kernel per tensor, 5-8x faster on CPU for big tables
            try:
                return torch.optim.AdamW(groups, lr=lr, fused=True)
            except (RuntimeError, TypeError):
                return torch.optim.AdamW(groups, lr=lr)
        if cfg.optimizer == "sgd":
            return torch.optim.SGD(groups, lr=lr, momentum=cfg.optimizer_momentum)
        groups[1]["lars_exclude"] = True      # biases and norm weights: no trust ratio, no decay (SimCLR)
        return LARS(groups, lr=lr, momentum=cfg.optimizer_momentum)

    # -- checkpoints ----------------------------------------------------------------------------------------
    def _state(self) -> dict:
        return {"format": CHECKPOINT_FORMAT, "step": self.step, "total_steps": self.total_steps,
                "monitor_every": self.monitor_every, "elapsed": self.elapsed, "method": self.method.state_dict(),
                "optimizer": self.optimizer.state_dict(), "torch_rng": torch.get_rng_state(),
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
        self.monitor_every = state.get("monitor_every")
        if "precision" in state:
            self.amp.load_state_dict(state["precision"])
        torch.set_rng_state(state["torch_rng"])

    def save(self) -> None:
        save_checkpoint(self.run.last_checkpoint, self._state())

    # -- the data stream ------------------------------------------------------------------------------------
    def batch_indices(self, step: int) -> torch.Tensor:
        epoch, pos = divmod(step, self.steps_per_epoch)
        if epoch != self._perm_epoch:
            self._perm = torch.randperm(len(self.data), generator=_generator(self.config.seed, 1, epoch))
            self._perm_epoch = epoch
        b = self.config.batch_size
        return self._perm[pos * b:(pos + 1) * b]

    def local_indices(self, step: int) -> torch.Tensor:
        """This rank's slice of the global batch of `step` (the whole batch in one process)."""
        idx = self.batch_indices(step)
        return idx if dist.world_size() == 1 else idx.tensor_split(dist.world_size())[dist.rank()]

    def _views_generator(self, step: int) -> torch.Generator:
        r = dist.rank()                             # rank 0 draws what one process draws
        return _generator(self.config.seed, 2, step) if r == 0 else _generator(self.config.seed, 2, step, r)

    def _train_step(self, method, optimizer, step: int, *, amp: MixedPrecision | None = None,
                    model=None) -> tuple[float, dict]:
        amp = amp or self.amp
        model = model if model is not None else (self.model if method is self.method else method)
        batch = method.make_batch(self.data, self.local_indices(step), self.augment, self._views_generator(step))
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
        amp.step(optimizer)
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
            rng = torch.get_rng_state()
            times = []
            for s in range(4):
                t0 = time.perf_counter()
                self._train_step(trial, opt, s, amp=MixedPrecision("cpu", self.config.precision))
                times.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            if dist.is_main():                      # ... rank 0 alone monitors
                self.task.monitor_features(trial)
            monitor_s = max(1.5 * (time.perf_counter() - t0), 1e-3)   # + kNN, geometry and the snapshot write
            torch.set_rng_state(rng)
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
        if probe is not None:
            self.run.write_snapshot(self.step, probe.numpy(), elapsed=self.elapsed)
        self.run.append_metric(record)
        return record

    # -- the loop -------------------------------------------------------------------------------------------
    def _start_run_dir(self) -> None:
        cfg = self.config
        kind, value = cfg.budget()
        self.run.create({
            "method": cfg.method, "data": cfg.data, "seed": cfg.seed, "classes": list(self.data.classes or []) or None,
            "budget": {kind: value}, "hyperparameters": {**method_hyperparameters(cfg.method), **cfg.hyperparameters},
            "model": self.model_info, "data_notes": list(getattr(self.data, "notes", ())),
            "train": cfg.to_dict(), "contrastlab_version": __version__,
            "started": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "command": " ".join(sys.argv)})

    def fit(self) -> dict:
        """Train to the end of the budget (or continue a resumed run); returns the last monitor record."""
        cfg = self.config
        main = dist.is_main()                       # only rank 0 writes; every rank trains
        resumed = self.total_steps is not None
        if not resumed:
            if main:
                self._start_run_dir()
            dist.barrier()
            self.total_steps, self.monitor_every = self._plan()
            if main:
                self.run.update_config(total_steps=self.total_steps, monitor_every=self.monitor_every)
        elif main:
            self.run.truncate_metrics(self.step)
            self.run.remove_snapshots_after(self.step)
        total = self.total_steps
        every = self.monitor_every or cfg.monitor_every or max(1, total // MONITORS_PER_RUN)
        warmup = int(cfg.warmup * total)
        base_lr = cfg.base_lr()
        if self.step == 0 and main:
            self.monitor()
        if main:
            self.run.status("running", step=self.step, total_steps=total)
        bar = tqdm(total=total, initial=self.step, disable=not (self.show_progress and main), unit="step",
                   dynamic_ncols=True,
                   desc=f"{cfg.method} on {cfg.data}")
        last_ckpt = last_status = time.time()
        record = {}
        smooth = None
        self.method.train()
        try:
            while self.step < total:
                t0 = time.perf_counter()
                lr = warmup_cosine(self.step, total_steps=total, base_lr=base_lr, warmup_steps=warmup)
                for group in self.optimizer.param_groups:
                    group["lr"] = lr
                loss, extra = self._train_step(self.method, self.optimizer, self.step)
                if not math.isfinite(loss):         # the all-reduced loss: every rank stops here together
                    if main:
                        self.run.status("failed", step=self.step, total_steps=total, reason="loss is not finite")
                    raise TrainingDiverged(
                        f"the loss became {loss} at step {self.step}; the last good checkpoint is "
                        f"{self.run.last_checkpoint}. Lower `lr` or raise `temperature` and resume or restart.")
                self.step += 1
                self.method.after_step(step=self.step, total_steps=total)
                dt = time.perf_counter() - t0
                self.elapsed += dt
                smooth = loss if smooth is None else 0.9 * smooth + 0.1 * loss
                throughput = cfg.batch_size * self.method.n_views / dt
                if main and (self.step % cfg.log_every == 0 or self.step == total):
                    self.run.append_metric({"kind": "train", "step": self.step,
                                            "epoch": round(self.step / self.steps_per_epoch, 4),
                                            "time": round(self.elapsed, 3), "loss": loss, "lr": lr,
                                            "throughput": round(throughput, 1), **extra})
                bar.update(1)
                bar.set_postfix(loss=f"{smooth:.3f}", views_per_s=f"{throughput:.0f}", lr=f"{lr:.3g}", refresh=False)
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
        except KeyboardInterrupt:
            if main:
                self.save()
                self.run.status("interrupted", step=self.step, total_steps=total)
            bar.close()
            raise
        bar.close()
        if main:
            self.run.status("done", step=self.step, total_steps=total)
        dist.barrier()                              # the last checkpoint is on disk before any rank returns
        return {**record, "step": self.step}

    def features(self) -> nn.Module:
        """The trained encoder's evaluation features as a module (eval mode is set by the caller)."""
        return self.task.features(self.method)
