"""The selected annotation and its history straight from the store: who did what, when, why."""

from __future__ import annotations

from rich.segment import Segment
from rich.text import Text
from textual.strip import Strip
from textual.widget import Widget

from ...display import printable, score_text, why_line
from ...model import Annotation, shape_of
from .finished import FinishedLines
from .annotation_list import STATUS_STYLE


class Detail(FinishedLines, Widget):
    """One Text, not a Rich table: it is rebuilt on every key press and must stay cheap to lay out.

    Drawn through the Line API from lines Rich wraps once per ``show`` (a Static took ~7 ms of CPU
    per key press in Textual's styles cache for these ~25 lines; this takes ~1 ms), handed to the
    compositor as they are, like the annotation list.
    """

    DEFAULT_CSS = "Detail { height: 1fr; }"
    can_focus = False

    def __init__(self, *, id: str | None = None):
        super().__init__(id=id)
        self._text = Text()
        #: How to settle a conflict, with the keys as labelreview.toml's [keys] left them.
        self.conflict_keys = "1-9 picks one; a, r, f, x decide anew"
        self._lines: list[Strip] | None = None  # for the current text, width and style
        self._made_for: tuple = ()

    def update(self, text: Text, layout: bool = False) -> None:
        self._text = text
        self._lines = None
        self.refresh(layout=layout)

    @property
    def text(self) -> str:
        """What the panel says (plain)."""
        return self._text.plain

    def _strips(self) -> list[Strip]:
        width, height = self.size
        base = self.rich_style
        if self._lines is not None and self._made_for == (width, height, base):
            return self._lines
        pad_left = pad_right = 1 if width > 2 else 0
        inner = max(1, width - pad_left - pad_right)
        console = self.app.console
        options = console.options.update(width=inner, height=None, no_wrap=False, overflow="fold")
        rows = console.render_lines(self._text, options, style=base, pad=True, new_lines=False)
        edge_l, edge_r = Segment(" " * pad_left, base), Segment(" " * pad_right, base)
        lines = [Strip([edge_l, *row, edge_r], width) for row in rows[:height]]
        lines += [Strip.blank(width, base)] * (height - len(lines))
        self._lines, self._made_for = lines, (width, height, base)
        return lines

    def finished_lines(self, ys: range) -> list[Strip]:
        strips = self._strips()
        return [strips[y] for y in ys if y < len(strips)]

    def render_line(self, y: int) -> Strip:
        strips = self._strips()
        return strips[y] if y < len(strips) else Strip.blank(self.size.width, self.rich_style)

    def show(self, ann: Annotation | None, history: list[dict], why: list | None = None,
             conflicts: list[dict] | None = None) -> None:
        if ann is None:
            self.update(Text("no annotation selected", style="dim"))
            return
        t = Text(overflow="fold")
        t.append(f"#{ann.id} ", "bold")
        t.append(printable(ann.category), "bold")
        t.append(f"  {ann.status}\n", STATUS_STYLE.get(ann.status, ""))

        def fact(name: str, value: str) -> None:
            t.append(f"{name:<9}", "dim")
            t.append(f"{printable(value)}\n")  # (names, reasons, comments: from the store)

        if ann.proposed_category and ann.proposed_category != ann.category:
            fact("proposed", ann.proposed_category)
        fact("score", "—" if ann.score is None else score_text(ann.score, 3))
        fact("source", ann.source if ann.source_id is None else f"{ann.source} (id {ann.source_id})")
        if ann.bbox and (ann.bbox[2] or ann.bbox[3]):  # (a single point's "box" says nothing)
            x, y, w, h = ann.bbox
            fact("box", f"{x:.0f},{y:.0f} {w:.0f}×{h:.0f}")
        fact("kind", shape_of(ann.kind, ann.extra))
        if ann.reason or ann.comment:
            fact("why", why_line(ann.reason, ann.comment))
        if ann.scores:
            top = sorted(ann.scores.items(), key=lambda kv: -kv[1])[:3]
            fact("model", ", ".join(f"{k} {v:.2f}" for k, v in top))
        if why:
            fact("why here", "; ".join(_signal(s) for s in why[:4]))
        if conflicts:
            t.append(f"conflict: competing decisions ({self.conflict_keys})\n", "bold red")
            for n, ev in enumerate(conflicts[:9], start=1):
                who = printable(ev["author"].split(" <")[0])
                now = " (now)" if ev.get("current") else ""
                reason = f" — {printable(ev['reason'])}" if ev.get("reason") else ""
                comment = f" “{printable(ev['comment'])}”" if ev.get("comment") else ""
                t.append(f" {n} ", "bold reverse")
                t.append(f" {who} {ev['ts'][:16].replace('T', ' ')} {ev['action']} ")
                t.append(f"{printable(ev['new']['category'])}/{ev['new']['status']}", "bold")
                t.append(f"{now}{reason}{comment}\n")
        if history:
            t.append("history\n", "bold dim")
            for ev in history[-6:]:
                who = printable(ev["author"].split(" <")[0])
                change = printable(f"{ev['old']['category']}/{ev['old']['status']} → "
                                   f"{ev['new']['category']}/{ev['new']['status']}")
                why = why_line(ev.get("reason"), ev.get("comment"))  # as log and blame say it
                reason = f" ({printable(why)})" if why else ""
                t.append(f"{ev['ts'][5:16].replace('T', ' ')} {who}: {ev['action']} {change}{reason}\n")
        else:
            t.append("no decisions yet", "dim")
        self.update(t)  # its size is set by the layout, not by its text: no layout pass


def _signal(s) -> str:
    if isinstance(s, dict):
        name = s.get("signal", "?")
        rest = ", ".join(f"{k} {v:.2f}" if isinstance(v, float) else f"{k} {v}"
                         for k, v in s.items() if k != "signal")
        return f"{name} ({rest})" if rest else name
    return str(s)
