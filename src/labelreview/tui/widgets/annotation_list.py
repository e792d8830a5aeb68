"""The numeric list of the current image's annotations: review works even with no pixels at all.

A Line API widget rather than a DataTable: rebuilding a 30-row DataTable for each image cost
more than drawing the image itself (measured ~40-80 ms per key press in a real terminal).
"""

from __future__ import annotations

from rich.segment import Segment
from rich.style import Style
from textual.strip import Strip
from textual.widget import Widget

from ...model import Annotation

STATUS_STYLE = {
    "pending": "bold yellow", "accepted": "bold green", "relabeled": "bold cyan",
    "flagged": "bold magenta", "rejected": "bold red",
}
STATUS_MARK = {"pending": "·", "accepted": "✓", "relabeled": "↻", "flagged": "⚑", "rejected": "✗"}

_HEADER = Style(bold=True, reverse=True)
_SELECTED = Style(reverse=True)
_DIM = Style(dim=True)
_STATUS = {k: Style.parse(v) for k, v in STATUS_STYLE.items()}
_COLUMNS = (("id", 5), ("class", 11), ("score", 6), ("source", 9), ("status", 11))


def _cell(text: str, width: int) -> str:
    return (text[: width - 1] + "…" if len(text) > width else text).ljust(width)


class AnnotationList(Widget):
    """Rows: id, class (proposed class struck through when relabeled), score, source, status."""

    DEFAULT_CSS = "AnnotationList { height: 1fr; }"
    can_focus = False

    def __init__(self, *, id: str | None = None):
        super().__init__(id=id)
        self.rows: list[Annotation] = []
        self.selected: int | None = None
        self._in_queue: set[int] = set()
        self._top = 0

    @property
    def row_ids(self) -> list[int]:
        return [a.id for a in self.rows]

    def show(self, annotations: list[Annotation], selected: int | None, in_queue: set[int]) -> None:
        self.rows, self.selected, self._in_queue = list(annotations), selected, in_queue
        index = self.row_ids.index(selected) if selected in self.row_ids else 0
        visible = max(1, self.size.height - 1)
        if index < self._top or index >= self._top + visible:
            self._top = max(0, index - visible // 2)
        self.refresh()

    def render_line(self, y: int) -> Strip:
        width = self.size.width
        if y == 0:
            text = "".join(_cell(name, w) for name, w in _COLUMNS)
            return Strip([Segment(text, _HEADER)]).crop_extend(0, width, _HEADER)
        i = self._top + y - 1
        if i >= len(self.rows):
            return Strip.blank(width)
        a = self.rows[i]
        row_style = _SELECTED if a.id == self.selected else (Style() if a.id in self._in_queue else _DIM)
        cls = a.category
        if a.proposed_category and a.proposed_category != a.category:
            cls = f"{a.category}←{a.proposed_category}"
        segments = [
            Segment("".join(_cell(text, w) for text, (_, w) in zip(
                (str(a.id), cls, "" if a.score is None else f"{a.score:.2f}", a.source or ""), _COLUMNS)),
                row_style),
            Segment(_cell(f"{STATUS_MARK.get(a.status, '')} {a.status}", 11),
                    row_style + _STATUS.get(a.status, Style())),
        ]
        return Strip(segments).crop_extend(0, width, row_style)
