"""Text encoders: the interface, trainable encoders, frozen baselines and bring-your-own models."""
from .base import TextEncoder, encode_texts

__all__ = ["TextEncoder", "encode_texts"]
