"""The live dashboard: a playground where the library's own losses move points on the circle or the
sphere, and a live view of training runs (their run directories).

Example::

    >>> from contrastlab.dashboard import Playground
    >>> pg = Playground(points=64, batch_size=16)
    >>> pg.step(3) > 0
    True

Start it with ``contrastlab dashboard [RUN_DIR ...]`` or :func:`dashboard` / :func:`serve`.
"""

from .app import create_app
from .controls import CONTROLS, Control
from .playground import Frame, Playground
from .runs import RunView
from .server import dashboard, serve

__all__ = ["create_app", "serve", "dashboard", "Playground", "Frame", "RunView", "CONTROLS", "Control"]
