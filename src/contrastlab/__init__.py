"""contrastlab: contrastive representation learning you can see."""
__version__ = "0.1.0"
