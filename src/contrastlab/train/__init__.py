"""Training: configuration, the trainer, the run directory, and run-level evaluation."""
from .config import OPTIMIZER_DEFAULTS, TrainConfig, parse_overrides
from .evaluate import evaluate, evaluate_run
from .lars import LARS
from .rundir import RunDir
from .schedule import SCHEDULES, warmup_cosine, warmup_linear
from .trainer import Trainer, TrainingDiverged

__all__ = ["OPTIMIZER_DEFAULTS", "TrainConfig", "parse_overrides", "evaluate", "evaluate_run", "LARS", "RunDir",
           "warmup_cosine", "warmup_linear", "SCHEDULES", "Trainer", "TrainingDiverged"]
