"""Training methods behind one interface (`Method`): simclr, moco, supcon, triplet, multi_instance, supervised; pairs, simcse (text); clip (image-text); ts2vec, cpc (sequences)."""
from .base import METHODS, Method, StepOutput, create_method, list_methods, method_hyperparameters, register_method
from .clip import CLIP, TwoTowers
from .contrastive import MultiInstance, SimCLR, SupCon
from .metric import Triplet
from .moco import MoCo
from .supervised import Supervised
from .text import InBatchPairs, SimCSE
from .sequence import CPC, TS2Vec

__all__ = ["METHODS", "Method", "StepOutput", "create_method", "list_methods", "method_hyperparameters",
           "register_method", "SimCLR", "SupCon", "MultiInstance", "Triplet", "MoCo", "Supervised",
           "InBatchPairs", "SimCSE", "CLIP", "TwoTowers", "CPC", "TS2Vec"]
