"""labelreview: keyboard-driven terminal review of proposed ML labels with a git-backed audit trail."""

__version__ = "0.1.0"
