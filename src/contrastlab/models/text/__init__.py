"""Text encoders: the interface, a corpus-trained tokenizer, trainable encoders, frozen baselines, your own models."""
from .base import TextEncoder, encode_texts
from .tokenizer import TOKENIZER_KINDS, TextTokenizer
from .encoders import (TEXT_ENCODERS, BagOfEmbeddings, TextCNN, TinyTransformer, create_text_encoder,
                       list_text_encoders)

__all__ = ["TextEncoder", "encode_texts", "TextTokenizer", "TOKENIZER_KINDS", "TEXT_ENCODERS", "BagOfEmbeddings",
           "TextCNN", "TinyTransformer", "create_text_encoder", "list_text_encoders"]
from .external import (POOLINGS, TEXT_ENCODER_LOADERS, HFTextEncoder, SentenceTransformerEncoder, WordLlamaEncoder,
                       cls_pool, load_text_encoder_from, mean_pool)

__all__ += ["WordLlamaEncoder", "HFTextEncoder", "SentenceTransformerEncoder", "load_text_encoder_from",
            "TEXT_ENCODER_LOADERS", "POOLINGS", "mean_pool", "cls_pool"]
