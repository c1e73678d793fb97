"""Training methods behind one interface (`Method`): simclr, moco, supcon, triplet, multi_instance, supervised."""
from .base import METHODS, Method, StepOutput, create_method, list_methods, method_hyperparameters, register_method
from .contrastive import MultiInstance, SimCLR, SupCon
from .metric import Triplet
from .moco import MoCo
from .supervised import Supervised

__all__ = ["METHODS", "Method", "StepOutput", "create_method", "list_methods", "method_hyperparameters",
           "register_method", "SimCLR", "SupCon", "MultiInstance", "Triplet", "MoCo", "Supervised"]
