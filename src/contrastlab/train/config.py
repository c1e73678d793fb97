"""Training configuration: one dataclass, validated on construction, settable from the CLI with `--set key=value`.

>>> cfg = TrainConfig(method="simclr", data="digits", steps=10)
>>> cfg.budget()
('steps', 10)
>>> parse_overrides(["batch_size=64", "temperature=0.5"], method_keys={"temperature": 0.2})
({'batch_size': 64}, {'temperature': 0.5})
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field, fields

__all__ = ["TrainConfig", "parse_overrides", "OPTIMIZER_DEFAULTS"]

# base learning rate per 256 images and weight decay, per optimizer (SimCLR: LARS 0.3 x B/256, wd 1e-6).
# AdamW is the default: in CPU budgets of minutes it reaches a given accuracy in far fewer steps than LARS.
OPTIMIZER_DEFAULTS = {"lars": (0.3, 1e-6), "sgd": (0.06, 5e-4), "adamw": (2e-3, 1e-4)}


@dataclass
class TrainConfig:
    method: str = "simclr"
    data: str = "fashion-mnist"
    seed: int = 0
    # budget: exactly one of these
    epochs: float | None = None
    steps: int | None = None
    minutes: float | None = None
    # model
    encoder: str = "auto"                    # auto: small_cnn for images, bag for text
    encoder_options: dict = field(default_factory=dict)   # extra keyword arguments of the encoder
    data_options: dict = field(default_factory=dict)      # extra keyword arguments of a text loader (corpus=...)
    # text: the tokenizer fitted on the training text
    tokenizer: str = "auto"                  # bpe | words; auto: what the data suggests (bpe unless item ids)
    vocab_size: int = 16_000
    max_length: int | None = None            # tokens kept per text; None: 64 for a tokenizer fitted here, the
                                             # model's own for st:/hf:/wordllama encoders (hf: 256)
    mine: str = "none"                       # hard negatives before training: none | bm25 | a text run directory
    mine_count: int = 3                      # mined negatives per pair
    # optimisation
    batch_size: int = 256
    optimizer: str = "adamw"
    lr: float | None = None                  # None: the optimizer's default x batch_size / 256
    weight_decay: float | None = None        # None: the optimizer's default
    optimizer_momentum: float = 0.9
    warmup: float = 0.05                     # fraction of the steps spent in linear warm-up
    schedule: str = "cosine"                 # after the warm-up: cosine | linear decay to zero (`train.schedule`)
    max_grad_norm: float | None = None       # clip the global gradient norm to this before each update; None: not
    # views
    augment: str = "auto"                    # a `contrastlab.views` preset; auto picks one for the data
    strength: float = 1.0
    image_size: int | None = None            # resize folder images (None: keep / median size)
    # pretrained / external image backbones (encoder=hf:PATH, timm:NAME): start, freeze, slow down the encoder
    pretrained: str | None = None            # a state dict file (.pt/.pth/.bin/.safetensors) loaded into the encoder
    freeze_encoder: bool = False             # the encoder is not trained: no gradients, always in eval mode
    backbone_lr: float = 1.0                 # the encoder's learning rate is lr x backbone_lr (heads: lr)
    # monitoring and the run directory
    log_every: int = 10
    monitor_every: int = 0                   # steps between online kNN + snapshots; 0: <= 20 per run, <= 5% of time
    probe_size: int = 1000
    monitor_bank: int = 3000
    checkpoint_every: int = 0                # steps; 0: only by time
    checkpoint_minutes: float = 2.0
    threads: int = 0                         # torch threads; 0: torch's default
    # images on disk: stream (decode on demand) or load; DataLoader workers that decode the next batches
    stream: bool | None = None               # None: stream folder/shards/hf images only when they would not fit
    workers: int | None = None               # None: one per core (at most 8); 0: decode in the training process
    # scale: the batch is global (split over processes); micro_batch > 0 caches gradients (GradCache)
    micro_batch: int = 0                     # examples per encoder pass on each process; 0: the whole batch
    precision: str = "auto"                  # auto | fp32 | bf16 | fp16 (auto: bf16 on GPUs that have it, else fp32)
    device: str = "auto"                     # auto | cpu | cuda | cuda:N | mps (auto: this process's GPU, else CPU)
    compile: bool = False                    # torch.compile the method
    final_eval: bool = True
    # tracking tools (`contrastlab.train.tracking`): "tensorboard", "mlflow"; settable as "tensorboard,mlflow"
    log: tuple[str, ...] = ()
    mlflow_uri: str | None = None            # None: MLFLOW_TRACKING_URI, else a local store RUN/mlflow/mlflow.db
    hyperparameters: dict = field(default_factory=dict)   # the method's own (temperature, queue_size, ...)

    def __post_init__(self):
        def need(cond, name, rule):
            if not cond:
                raise ValueError(f"`{name}` must be {rule}, got {getattr(self, name)!r}")

        def number(name, rule):                  # None, or a finite number obeying `rule` ("> 0" or ">= 0")
            v = getattr(self, name)
            if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v)):
                raise ValueError(f"`{name}` must be a finite number {rule}, got {v!r}")
            need(v is None or (v > 0 if rule == "> 0" else v >= 0), name, rule)
        budgets = [k for k in ("epochs", "steps", "minutes") if getattr(self, k) is not None]
        if len(budgets) != 1:
            raise ValueError(f"give exactly one budget of `epochs`, `steps` or `minutes`, got {budgets or 'none'}")
        number("epochs", "> 0")
        need(self.steps is None or (isinstance(self.steps, int) and self.steps > 0), "steps", "a positive int")
        number("minutes", "> 0")
        need(isinstance(self.batch_size, int) and self.batch_size >= 2, "batch_size", "an int >= 2")
        need(self.optimizer in OPTIMIZER_DEFAULTS, "optimizer", f"one of {sorted(OPTIMIZER_DEFAULTS)}")
        number("lr", "> 0")
        number("weight_decay", ">= 0")
        need(0 <= self.optimizer_momentum < 1, "optimizer_momentum", "in [0, 1)")
        need(0 <= self.warmup < 1, "warmup", "a fraction in [0, 1)")
        from .schedule import SCHEDULES
        need(self.schedule in SCHEDULES, "schedule", f"one of {sorted(SCHEDULES)}")
        number("max_grad_norm", "> 0")
        need(0 <= self.strength <= 2, "strength", "in [0, 2]")
        if self.image_size is not None:
            from ..data.limits import MAX_IMAGE_SIZE
            need(isinstance(self.image_size, int) and 4 <= self.image_size <= MAX_IMAGE_SIZE, "image_size",
                 f"an int in [4, {MAX_IMAGE_SIZE}]")
        from ..models.pretrained import PRETRAINED_SUFFIXES
        need(self.pretrained is None or (isinstance(self.pretrained, str) and self.pretrained.strip() != ""
                                         and self.pretrained.lower().endswith(PRETRAINED_SUFFIXES)), "pretrained",
             f"none or the path of a {', '.join(PRETRAINED_SUFFIXES)} state dict file")
        need(isinstance(self.freeze_encoder, bool), "freeze_encoder", "true or false")
        number("backbone_lr", "> 0")
        need(self.backbone_lr is not None, "backbone_lr", "a finite number > 0 (1.0: the encoder at `lr`)")
        need(not (self.freeze_encoder and self.backbone_lr != 1.0), "backbone_lr",
             "1.0 when `freeze_encoder` is true (a frozen encoder is not trained)")
        if self.pretrained is not None or self.freeze_encoder:
            from ..methods import METHODS
            kinds = getattr(METHODS.get(self.method), "modalities", ("image",))
            need(bool({"image", "sequence"} & set(kinds)), "pretrained" if self.pretrained is not None
                 else "freeze_encoder", f"unset for method {self.method!r} ({' or '.join(kinds)} data): it applies "
                 f"to the encoders of image and sequence methods (clip: lock=image freezes the image tower)")
        for name in ("log_every", "probe_size", "monitor_bank"):
            need(isinstance(getattr(self, name), int) and getattr(self, name) >= 1, name, "a positive int")
        need(isinstance(self.seed, int) and not isinstance(self.seed, bool) and 0 <= self.seed <= 2 ** 63 - 1,
             "seed", "an int in [0, 2**63-1]")
        for name in ("monitor_every", "checkpoint_every", "threads", "micro_batch"):
            need(isinstance(getattr(self, name), int) and getattr(self, name) >= 0, name, "an int >= 0")
        number("checkpoint_minutes", "> 0")
        need(self.stream is None or isinstance(self.stream, bool), "stream", "true, false or none (stream when the "
             "images would not fit in memory)")
        need(self.workers is None or (isinstance(self.workers, int) and not isinstance(self.workers, bool)
                                      and 0 <= self.workers <= 64), "workers", "an int in [0, 64] or none (auto)")
        need(self.precision in ("auto", "fp32", "bf16", "fp16"), "precision", "one of auto, fp32, bf16, fp16")
        from .. import devices
        need(isinstance(self.device, str) and devices.is_device_setting(self.device), "device",
             f"one of {', '.join(devices.DEVICES)}")     # whether it exists here is checked when training starts
        need(isinstance(self.compile, bool), "compile", "true or false")
        need(self.tokenizer in ("auto", "bpe", "words"), "tokenizer", "one of auto, bpe, words")
        need(isinstance(self.vocab_size, int) and 10 <= self.vocab_size <= 1_000_000, "vocab_size",
             "an int in [10, 1000000]")     # the tokenizers library aborts the process on absurd sizes
        need(self.max_length is None or (isinstance(self.max_length, int) and not isinstance(self.max_length, bool)
                                         and self.max_length >= 1), "max_length", "a positive int or none")
        need(isinstance(self.mine_count, int) and self.mine_count >= 1, "mine_count", "a positive int")
        from .tracking import parse_trackers
        self.log = parse_trackers(self.log)
        need(self.mlflow_uri is None or (isinstance(self.mlflow_uri, str) and self.mlflow_uri.strip()
                                         and "mlflow" in self.log), "mlflow_uri",
             "a tracking URI (e.g. http://host:5000) given with `log` including 'mlflow'")

    def budget(self) -> tuple[str, float]:
        return next((k, getattr(self, k)) for k in ("epochs", "steps", "minutes") if getattr(self, k) is not None)

    def base_lr(self) -> float:
        return self.lr if self.lr is not None else OPTIMIZER_DEFAULTS[self.optimizer][0] * self.batch_size / 256

    def base_weight_decay(self) -> float:
        return self.weight_decay if self.weight_decay is not None else OPTIMIZER_DEFAULTS[self.optimizer][1]

    def to_dict(self) -> dict:
        return {**dataclasses.asdict(self), "log": list(self.log)}     # as JSON holds it (config.json = checkpoint)

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"config has unknown keys {unknown}; known keys: {sorted(known)}")
        return cls(**d)


_SETTABLE_TYPES = {f.name: f.type for f in fields(TrainConfig)
                   if f.name not in ("method", "data", "hyperparameters", "encoder_options", "data_options")}


def _convert(key: str, text: str, kind):
    kind = str(kind)
    if text.lower() in ("none", "null") and "None" in kind:
        return None
    try:
        if kind.startswith("bool") or kind == "<class 'bool'>":
            low = text.lower()
            if low not in ("true", "false", "1", "0", "yes", "no"):
                raise ValueError
            return low in ("true", "1", "yes")
        if kind.startswith("int") or kind == "<class 'int'>":
            return int(text)
        if kind.startswith("float") or kind == "<class 'float'>":
            return float(text)
    except ValueError:
        raise ValueError(f"--set {key}={text}: expected a value of type {kind.split(' |')[0]}") from None
    return text


def parse_overrides(pairs: list[str], *, method_keys: dict[str, object]) -> tuple[dict, dict]:
    """Split `key=value` strings into trainer settings and method hyperparameters, typed by their defaults."""
    trainer, method = {}, {}
    for item in pairs:
        if "=" not in item:
            raise ValueError(f"--set expects key=value, got {item!r}")
        key, text = item.split("=", 1)
        key = key.strip()
        if key in _SETTABLE_TYPES:
            trainer[key] = _convert(key, text.strip(), _SETTABLE_TYPES[key])
        elif key in method_keys:
            default = method_keys[key]
            kind = type(default).__name__ if default is not None else "str"
            method[key] = _convert(key, text.strip(), kind)
        else:
            raise ValueError(f"--set {key}: unknown key. Trainer keys: {sorted(_SETTABLE_TYPES)}; "
                             f"method keys: {sorted(method_keys)}")
    return trainer, method
