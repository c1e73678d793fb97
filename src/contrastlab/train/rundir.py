"""The run directory, as the trainer writes it: `contrastlab.rundir` (one `RunDir` for every reader and writer).

>>> from contrastlab.rundir import RunDir as TheOne
>>> RunDir is TheOne
True
"""
from ..rundir import RunDir, RunInUse

__all__ = ["RunDir", "RunInUse"]
