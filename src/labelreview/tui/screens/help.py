"""Every key of the review screen, as currently bound (remaps in labelreview.toml show here)."""

from __future__ import annotations

from rich.table import Table
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static


class HelpScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,q,question_mark", "close", "Close", id="help_close")]

    def __init__(self, rows: list[tuple[str, str]], help_keys: str = "", note: str | None = None):
        super().__init__()
        self.rows = rows
        self.note = note
        # The key that opened help closes it too, also when remapped (help = "h" in [keys]).
        self.help_keys = {k.strip() for k in help_keys.split(",") if k.strip()}

    def compose(self) -> ComposeResult:
        table = Table(title="labelreview keys", show_header=True, header_style="bold", expand=False)
        table.add_column("keys", style="bold cyan")
        table.add_column("action")
        for keys, description in self.rows:
            table.add_row(keys, description)
        with VerticalScroll(id="dialog"):
            yield Static(table)
            yield Static("Every decision is saved the moment it shows; q checkpoints to git and quits. "
                         "Remap keys in labelreview.toml under [keys] by binding id.", classes="hint",
                         markup=False)  # ([keys] is text here, not markup)
            if self.note:
                yield Static(self.note, classes="hint", markup=False)

    def on_key(self, event) -> None:
        if event.key in self.help_keys:
            event.stop()
            self.dismiss(None)

    def action_close(self) -> None:
        self.dismiss(None)
