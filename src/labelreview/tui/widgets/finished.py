"""Line API widgets whose lines are finished: handed to the compositor as they are."""

from __future__ import annotations

from textual.geometry import Region
from textual.strip import Strip


class FinishedLines:
    """Mixin for a Widget whose lines carry its colours and are exactly its width.

    ``Widget.render_lines`` passes every line through Textual's styles cache, which builds a new
    strip of each and renders its segments to escape codes again on the UI thread at every refresh
    (measured in tmux: the largest part of a key press). A finished line needs none of that: the
    very strip goes to the compositor, and a strip keeps its rendered codes. With line filters
    (NO_COLOR, TEXTUAL_FILTERS=dim...) or when ``lines_finished`` says no, Textual's path applies.
    """

    def lines_finished(self) -> bool:
        return True

    def finished_lines(self, ys: range) -> list[Strip]:  # pragma: no cover - every user defines it
        raise NotImplementedError

    def render_lines(self, crop: Region) -> list[Strip]:
        if self.get_line_filters() or not self.lines_finished():  # type: ignore[attr-defined]
            return super().render_lines(crop)  # type: ignore[misc]
        lines = self.finished_lines(crop.line_range)
        if crop.x or crop.width != self.size.width:  # type: ignore[attr-defined]
            lines = [strip.crop(crop.x, crop.right) for strip in lines]  # a partial update: cut, as Textual would
        return lines
