"""`python -m contrastlab ...`: the `contrastlab` command (`contrastlab.cli.main`)."""
import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
