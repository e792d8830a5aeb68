"""Review logic, no UI: the queue a reviewer walks and the decisions they make."""

from .queue import Queue
from .session import ReviewSession

__all__ = ["Queue", "ReviewSession"]
