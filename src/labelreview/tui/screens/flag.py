"""Flag or reject with a reason: 1-9 or enter picks a reason, then an optional comment."""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import Input, Label, OptionList
from textual.widgets.option_list import Option

from ...display import printable
from ..widgets.text_input import TextInput


class ReasonDialog(ModalScreen[tuple[str, str | None] | None]):
    """Returns (reason, comment or None), or None when cancelled."""

    BINDINGS = [
        Binding("escape", "cancel", "Cancel", id="reason_cancel"),
        *[Binding(str(n), f"pick_number({n})", show=False) for n in range(1, 10)],
    ]

    def __init__(self, title: str, reasons: list[str], optional: bool = False):
        super().__init__()
        self.title_text = title
        self.reasons = list(reasons) + (["(no reason)"] if optional else [])
        self.optional = optional
        self.reason: str | None = None

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            # Content, not markup: the title holds a class name ("a [/b] b" crashed f and x).
            yield Label(Content(f"{printable(self.title_text)}  (1-9 or enter · esc)"), id="prompt")
            yield OptionList(*[Option(Content(f"{n + 1 if n < 9 else ' '} {printable(r)}"))
                               for n, r in enumerate(self.reasons)], id="reasons")
            yield TextInput(placeholder="comment (optional) — enter to save", id="comment")

    def on_mount(self) -> None:
        self.query_one("#comment").display = False
        self.query_one(OptionList).focus()

    def _choose(self, index: int) -> None:
        if not 0 <= index < len(self.reasons) or self.reason is not None:
            return
        chosen = self.reasons[index]
        self.reason = "" if chosen == "(no reason)" else chosen
        self.query_one(OptionList).display = False
        self.query_one("#prompt", Label).update(Content.assemble(
            f"{printable(self.title_text)}: ", (printable(self.reason or "no reason"), "bold"),
            " — comment? (enter to save · esc)"))
        comment = self.query_one("#comment", Input)
        comment.display = True
        comment.focus()

    @on(OptionList.OptionSelected)
    def _selected(self, event: OptionList.OptionSelected) -> None:
        self._choose(event.option_index)

    def action_pick_number(self, n: int) -> None:
        if self.reason is None:
            self._choose(n - 1)

    @on(Input.Submitted, "#comment")
    def _submitted(self, event: Input.Submitted) -> None:
        self.dismiss((self.reason or "", event.value.strip() or None))

    def action_cancel(self) -> None:
        self.dismiss(None)
