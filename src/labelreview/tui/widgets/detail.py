"""The selected annotation and its history straight from the store: who did what, when, why."""

from __future__ import annotations

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual.widgets import Static

from ...model import Annotation
from .annotation_list import STATUS_STYLE


class Detail(Static):
    def show(self, ann: Annotation | None, history: list[dict], why: list | None = None,
             conflicts: list[dict] | None = None) -> None:
        if ann is None:
            self.update(Text("no annotation selected", style="dim"))
            return
        head = Text.assemble(
            (f"#{ann.id} ", "bold"), (ann.category, "bold"),
            (f"  {ann.status}", STATUS_STYLE.get(ann.status, "")),
        )
        facts = Table.grid(padding=(0, 1))
        facts.add_column(style="dim")
        facts.add_column()
        if ann.proposed_category and ann.proposed_category != ann.category:
            facts.add_row("proposed", ann.proposed_category)
        facts.add_row("score", "—" if ann.score is None else f"{ann.score:.3f}")
        facts.add_row("source", f"{ann.source} (id {ann.source_id})")
        if ann.bbox:
            x, y, w, h = ann.bbox
            facts.add_row("box", f"{x:.0f},{y:.0f} {w:.0f}×{h:.0f}")
        facts.add_row("kind", ann.kind)
        if ann.reason or ann.comment:
            facts.add_row("why", " — ".join(v for v in (ann.reason, ann.comment) if v))
        if ann.scores:
            top = sorted(ann.scores.items(), key=lambda kv: -kv[1])[:3]
            facts.add_row("model", ", ".join(f"{k} {v:.2f}" for k, v in top))
        if why:
            facts.add_row("why here", "; ".join(_signal(s) for s in why[:4]))
        lines: list = [head, facts]
        if conflicts:
            lines.append(Text("conflict: competing decisions (1-9 picks one; a, r, f, x decide anew)",
                              style="bold red"))
            for n, ev in enumerate(conflicts[:9], start=1):
                who = ev["author"].split(" <")[0]
                now = " (now)" if ev.get("current") else ""
                reason = f" — {ev['reason']}" if ev.get("reason") else ""
                comment = f" “{ev['comment']}”" if ev.get("comment") else ""
                lines.append(Text.assemble(
                    (f" {n} ", "bold reverse"),
                    f" {who} {ev['ts'][:16].replace('T', ' ')} {ev['action']} ",
                    (f"{ev['new']['category']}/{ev['new']['status']}", "bold"),
                    f"{now}{reason}{comment}", overflow="fold"))
        if history:
            lines.append(Text("history", style="bold dim"))
            for ev in history[-6:]:
                who = ev["author"].split(" <")[0]
                change = f"{ev['old']['category']}/{ev['old']['status']} → {ev['new']['category']}/{ev['new']['status']}"
                reason = f" ({ev['reason']})" if ev.get("reason") else ""
                lines.append(Text(f"{ev['ts'][5:16].replace('T', ' ')} {who}: {ev['action']} {change}{reason}",
                                  overflow="fold"))
        else:
            lines.append(Text("no decisions yet", style="dim"))
        self.update(Group(*lines))


def _signal(s) -> str:
    if isinstance(s, dict):
        name = s.get("signal", "?")
        rest = ", ".join(f"{k} {v:.2f}" if isinstance(v, float) else f"{k} {v}"
                         for k, v in s.items() if k != "signal")
        return f"{name} ({rest})" if rest else name
    return str(s)
