"""``python -m labelreview``: the same as the ``labelreview`` command (handy where a venv's scripts are
not on PATH, or to run a checkout with PYTHONPATH)."""

import sys

from .cli import main

sys.exit(main())
