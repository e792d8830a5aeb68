"""The numeric list of the current image's annotations: review works even with no pixels at all."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import DataTable

from ...model import Annotation

STATUS_STYLE = {
    "pending": "bold yellow", "accepted": "bold green", "relabeled": "bold cyan",
    "flagged": "bold magenta", "rejected": "bold red",
}
STATUS_MARK = {"pending": "·", "accepted": "✓", "relabeled": "↻", "flagged": "⚑", "rejected": "✗"}


class AnnotationList(DataTable):
    """Rows: id, class, score, source, status. The screen moves the cursor; keys never land here."""

    can_focus = False

    def on_mount(self) -> None:
        self.cursor_type = "row"
        self.zebra_stripes = False
        self.add_column("id", key="id")
        self.add_column("class", key="class")
        self.add_column("score", key="score")
        self.add_column("source", key="source")
        self.add_column("status", key="status")

    def show(self, annotations: list[Annotation], selected: int | None, in_queue: set[int]) -> None:
        self.clear()
        for a in annotations:
            cls = Text(a.category)
            if a.proposed_category and a.proposed_category != a.category:
                cls = Text.assemble(a.category, (f" ({a.proposed_category})", "dim strike"))
            ident = Text(str(a.id), style="" if a.id in in_queue else "dim")
            self.add_row(
                ident, cls, "" if a.score is None else f"{a.score:.2f}", a.source,
                Text(f"{STATUS_MARK.get(a.status, '')} {a.status}", style=STATUS_STYLE.get(a.status, "")),
                key=str(a.id),
            )
        if selected is not None:
            try:
                self.move_cursor(row=self.get_row_index(str(selected)), animate=False)
            except Exception:  # the selected annotation is not on this image (empty queue)
                pass
