"""The store: SQLite index, append-only event logs and git checkpoints. No UI here."""

from .identity import Identity, resolve_identity
from .store import CURRENT, Store, find_store

__all__ = ["CURRENT", "Identity", "Store", "find_store", "resolve_identity"]
