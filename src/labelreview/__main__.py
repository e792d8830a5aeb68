"""``python -m labelreview``: the same as the ``labelreview`` command (handy where a venv's scripts are
not on PATH, or to run a checkout with PYTHONPATH)."""

import sys

from .cli import main

if __name__ == "__main__":  # (importing the module, as tools that walk the package do, runs nothing)
    sys.exit(main())
