"""The numeric list of the current image's annotations: review works even with no pixels at all.

A Line API widget rather than a DataTable: rebuilding a 30-row DataTable for each image cost
more than drawing the image itself (measured ~40-80 ms per key press in a real terminal).
"""

from __future__ import annotations

from rich.cells import cell_len, set_cell_size
from rich.segment import Segment
from rich.style import Style
from textual.strip import Strip
from textual.widget import Widget

from ...display import printable, score_text
from ...model import Annotation
from ..render import STATUS_MARK
from .finished import FinishedLines

STATUS_STYLE = {
    "pending": "bold yellow", "accepted": "bold green", "relabeled": "bold cyan",
    "flagged": "bold magenta", "rejected": "bold red",
}

_HEADER = Style(bold=True, reverse=True)
_SELECTED = Style(reverse=True)
_DIM = Style(dim=True)
_STATUS = {k: Style.parse(v) for k, v in STATUS_STYLE.items()}
_COLUMNS = (("id", 5), ("class", 11), ("score", 6), ("source", 9), ("status", 11))


def _cell(text: str, width: int) -> str:
    """``text`` in a column of ``width`` cells, cut with "…" so that one space always parts it from
    the next column ("person←coin" is 11 long: it ran into the score). Measured in cells, not
    characters: "東京の黒い猫" (two cells each) pushed the score and the status out of line."""
    room = width - 1
    if cell_len(text) > room:
        text = set_cell_size(text, room - 1).rstrip() + "…"  # (a wide character cut: no gap)
    return set_cell_size(text, width)


class AnnotationList(FinishedLines, Widget):
    """Rows: id, class (proposed class struck through when relabeled), score, source, status."""

    DEFAULT_CSS = "AnnotationList { height: 1fr; }"
    can_focus = False

    def __init__(self, *, id: str | None = None):
        super().__init__(id=id)
        self.rows: list[Annotation] = []
        self.selected: int | None = None
        self._in_queue: set[int] = set()
        self._top = 0
        self._strips: dict[tuple, Strip] = {}  # finished rows by what they show

    @property
    def row_ids(self) -> list[int]:
        return [a.id for a in self.rows]

    def show(self, annotations: list[Annotation], selected: int | None, in_queue: set[int]) -> None:
        self.rows, self.selected, self._in_queue = list(annotations), selected, in_queue
        self._scroll_to_selected()
        self.refresh()

    def on_resize(self) -> None:
        self._scroll_to_selected()

    def _scroll_to_selected(self) -> None:
        """Keep the selected row in sight (in the middle when it had gone out of it). Before the
        first layout the height is not known yet: the list starts at the top (it used to scroll
        to the selected row as if one row fitted, hiding the rows above it until a key press)."""
        if self.size.height < 2:
            self._top = 0
            return
        index = self.row_ids.index(self.selected) if self.selected in self.row_ids else 0
        visible = self.size.height - 1
        if index < self._top or index >= self._top + visible:
            self._top = max(0, index - visible // 2)
        elif self._top and self._top + visible > len(self.rows):  # grown: show as many as fit
            self._top = max(0, min(self._top, len(self.rows) - visible))

    def finished_lines(self, ys: range) -> list[Strip]:
        """Each row is built once per content and kept, with the widget's colours and width: a row
        that did not change costs nothing."""
        width, base = self.size.width, self.rich_style  # rich_style is computed per call: once here
        return [self._row(y, width, base) for y in ys]

    def render_line(self, y: int) -> Strip:
        return self._row(y, self.size.width, self.rich_style)

    def _row(self, y: int, width: int, base: Style) -> Strip:
        if y == 0:
            key: tuple = ("header", width, base)
        else:
            i = self._top + y - 1
            if i >= len(self.rows):
                key = ("blank", width, base)
            else:
                a = self.rows[i]
                look = "selected" if a.id == self.selected else ("in" if a.id in self._in_queue else "out")
                key = (a.id, a.category, a.proposed_category, a.score, a.source, a.status, look, width, base)
        strip = self._strips.get(key)
        if strip is None:
            if len(self._strips) > 4096:
                self._strips.clear()
            strip = self._strips[key] = self._make_row(key, width, base)
        return strip

    def _make_row(self, key: tuple, width: int, base: Style) -> Strip:
        if key[0] == "header":
            text = "".join(_cell(name, w) for name, w in _COLUMNS)
            return Strip([Segment(text, base + _HEADER)]).crop_extend(0, width, base + _HEADER)
        if key[0] == "blank":
            return Strip.blank(width, base)
        ann_id, category, proposed, score, source, status, look, _, _ = key
        row_style = base + {"selected": _SELECTED, "in": Style(), "out": _DIM}[look]
        cls = printable(category)
        if proposed and proposed != category:
            cls = f"{cls}←{printable(proposed)}"
        segments = [
            Segment("".join(_cell(text, w) for text, (_, w) in zip(
                (str(ann_id), cls, "" if score is None else score_text(score), printable(source)), _COLUMNS)),
                row_style),
            Segment(_cell(f"{STATUS_MARK.get(status, '')} {status}", 11), row_style + _STATUS.get(status, Style())),
        ]
        return Strip(segments).crop_extend(0, width, row_style)
