"""Encoders, projection heads, momentum encoders and negative queues."""
from .encoders import (ENCODERS, ResNet18, SmallCNN, Standardize, create_encoder, feature_dim, list_encoders,
                       register_encoder)
from .heads import ProjectionHead
from .momentum import MomentumEncoder, cosine_momentum, ema_update
from .queue import NegativeQueue

__all__ = ["ENCODERS", "ResNet18", "SmallCNN", "Standardize", "create_encoder", "feature_dim", "list_encoders",
           "register_encoder", "ProjectionHead", "MomentumEncoder", "cosine_momentum", "ema_update",
           "NegativeQueue"]
