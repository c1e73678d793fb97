"""Training: configuration, the trainer, the run directory, and run-level evaluation."""
from .config import OPTIMIZER_DEFAULTS, TrainConfig, parse_overrides
from .evaluate import evaluate, evaluate_run
from .lars import LARS
from .rundir import RunDir
from .schedule import warmup_cosine
from .trainer import Trainer, TrainingDiverged

__all__ = ["OPTIMIZER_DEFAULTS", "TrainConfig", "parse_overrides", "evaluate", "evaluate_run", "LARS", "RunDir",
           "warmup_cosine", "Trainer", "TrainingDiverged"]
