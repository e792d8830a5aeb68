"""The selected annotation and its history straight from the store: who did what, when, why."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

from ...model import Annotation
from .annotation_list import STATUS_STYLE


class Detail(Static):
    """One Text, not a Rich table: it is rebuilt on every key press and must stay cheap to lay out."""

    def show(self, ann: Annotation | None, history: list[dict], why: list | None = None,
             conflicts: list[dict] | None = None) -> None:
        if ann is None:
            self.update(Text("no annotation selected", style="dim"))
            return
        t = Text(overflow="fold")
        t.append(f"#{ann.id} ", "bold")
        t.append(ann.category, "bold")
        t.append(f"  {ann.status}\n", STATUS_STYLE.get(ann.status, ""))

        def fact(name: str, value: str) -> None:
            t.append(f"{name:<9}", "dim")
            t.append(f"{value}\n")

        if ann.proposed_category and ann.proposed_category != ann.category:
            fact("proposed", ann.proposed_category)
        fact("score", "—" if ann.score is None else f"{ann.score:.3f}")
        fact("source", f"{ann.source} (id {ann.source_id})")
        if ann.bbox:
            x, y, w, h = ann.bbox
            fact("box", f"{x:.0f},{y:.0f} {w:.0f}×{h:.0f}")
        fact("kind", ann.kind)
        if ann.reason or ann.comment:
            fact("why", " — ".join(v for v in (ann.reason, ann.comment) if v))
        if ann.scores:
            top = sorted(ann.scores.items(), key=lambda kv: -kv[1])[:3]
            fact("model", ", ".join(f"{k} {v:.2f}" for k, v in top))
        if why:
            fact("why here", "; ".join(_signal(s) for s in why[:4]))
        if conflicts:
            t.append("conflict: competing decisions (1-9 picks one; a, r, f, x decide anew)\n", "bold red")
            for n, ev in enumerate(conflicts[:9], start=1):
                who = ev["author"].split(" <")[0]
                now = " (now)" if ev.get("current") else ""
                reason = f" — {ev['reason']}" if ev.get("reason") else ""
                comment = f" “{ev['comment']}”" if ev.get("comment") else ""
                t.append(f" {n} ", "bold reverse")
                t.append(f" {who} {ev['ts'][:16].replace('T', ' ')} {ev['action']} ")
                t.append(f"{ev['new']['category']}/{ev['new']['status']}", "bold")
                t.append(f"{now}{reason}{comment}\n")
        if history:
            t.append("history\n", "bold dim")
            for ev in history[-6:]:
                who = ev["author"].split(" <")[0]
                change = (f"{ev['old']['category']}/{ev['old']['status']} → "
                          f"{ev['new']['category']}/{ev['new']['status']}")
                reason = f" ({ev['reason']})" if ev.get("reason") else ""
                t.append(f"{ev['ts'][5:16].replace('T', ' ')} {who}: {ev['action']} {change}{reason}\n")
        else:
            t.append("no decisions yet", "dim")
        self.update(t)


def _signal(s) -> str:
    if isinstance(s, dict):
        name = s.get("signal", "?")
        rest = ", ".join(f"{k} {v:.2f}" if isinstance(v, float) else f"{k} {v}"
                         for k, v in s.items() if k != "signal")
        return f"{name} ({rest})" if rest else name
    return str(s)
