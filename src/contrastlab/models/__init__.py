"""Encoders (built-in, and from other libraries: "hf:PATH", "timm:NAME"), pretrained weights and frozen encoders,
projection heads, momentum encoders and negative queues."""
from .encoders import (ENCODERS, IMAGE_ENCODER_LOADERS, ResNet18, ResNet50, SmallCNN, Standardize, create_encoder,
                       feature_dim, list_encoders, register_encoder, register_encoder_loader)
from .backbones import HFImageEncoder, TimmEncoder
from .pretrained import FrozenEncoder, load_pretrained, read_state_dict
from .heads import ProjectionHead
from .momentum import MomentumEncoder, cosine_momentum, ema_update
from .queue import NegativeQueue

__all__ = ["ENCODERS", "IMAGE_ENCODER_LOADERS", "ResNet18", "ResNet50", "SmallCNN", "Standardize", "create_encoder",
           "feature_dim", "list_encoders", "register_encoder", "register_encoder_loader", "HFImageEncoder",
           "TimmEncoder", "FrozenEncoder", "load_pretrained", "read_state_dict", "ProjectionHead", "MomentumEncoder",
           "cosine_momentum", "ema_update", "NegativeQueue"]

from .sequence import DilatedCNN, GRUEncoder

__all__ += ["DilatedCNN", "GRUEncoder"]
