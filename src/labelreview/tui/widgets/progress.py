"""One line of progress: reviewed / total, pace, time left, what git does not hold yet."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static


class ProgressLine(Static):
    _shown: Text | None = None
    def show(self, *, decided: int | None, total: int | None, per_minute: float, unsaved: int, image_pos: str,
             zoom: bool, color_hint: str | None = None) -> None:
        if decided is None or total is None:  # a big queue still loading in its thread
            self.update(Text.assemble((" counting the queue… ", "bold"), f"· {per_minute:.1f}/min · ",
                                      (f"{unsaved} not in git yet" if unsaved else "all in git",
                                       "yellow" if unsaved else "green"), f" · image {image_pos}"),
                        layout=False)
            return
        left = total - decided
        if per_minute > 0.05 and left:
            minutes = left / per_minute
            eta = f"~{minutes:.0f} min left" if minutes < 120 else f"~{minutes / 60:.1f} h left"
        else:
            eta = "—"
        pct = (100 * decided / total) if total else 100
        text = Text.assemble(
            (f" {decided}/{total} reviewed ", "bold"), (f"{pct:.0f}% ", "dim"),
            f"· {per_minute:.1f}/min · {eta} · ",
            (f"{unsaved} not in git yet" if unsaved else "all in git", "yellow" if unsaved else "green"),
            f" · image {image_pos}",
            (" · ZOOM" if zoom else "", "bold cyan"),
        )
        if color_hint:
            # The whole advice if it fits (the help screen has it too); else just the fact.
            room = self.size.width - text.cell_len
            text.append(f" · {color_hint}" if room >= len(color_hint) + 3 or not self.size.width
                        else " · 256 colours (?)", style="dim")
        if text != self._shown:  # (redrawn every few seconds for others' decisions: only if it changed)
            self._shown = text
            self.update(text, layout=False)  # one line, always
