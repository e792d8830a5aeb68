"""The relabel picker: type to filter, 1-9 or enter to choose, escape to cancel."""

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

#: Classes listed at most: the OptionList lays out every option it holds on each key typed in the
#: filter box (1,200 classes: ~140 ms per key even given all at once). Typing narrows to the rest.
SHOWN_AT_MOST = 100


class FilterInput(TextInput):
    """The picker's filter box: it leaves digits 1-9 to the picker (they choose), takes every other
    key; and a digit too once something is typed and the text with it still names a class ("class1"
    then "2" filters to "class12"), so numbered taxonomies can be typed."""

    def check_consume_key(self, key: str, character: str | None) -> bool:
        if character is not None and character in "123456789":
            at = self.cursor_position
            typed = self.value[:at] + character + self.value[at:]
            return bool(self.value.strip()) and isinstance(self.screen, ClassPicker) and self.screen.names(typed)
        return super().check_consume_key(key, character)


class ClassPicker(ModalScreen[str | None]):
    """Returns the chosen class name, or None. ``suggested`` (the model's other guesses) come first."""

    BINDINGS = [
        Binding("escape", "cancel", "Cancel", id="picker_cancel"),
        Binding("down", "cursor(1)", show=False, priority=True),
        Binding("up", "cursor(-1)", show=False, priority=True),
        *[Binding(str(n), f"pick_number({n})", show=False, priority=True) for n in range(1, 10)],
    ]

    def __init__(self, classes: list[str], current: str, suggested: list[tuple[str, float]] | None = None):
        super().__init__()
        scores = dict(suggested or [])
        first = [c for c, _ in sorted(scores.items(), key=lambda kv: -kv[1]) if c != current and c in classes]
        rest = [c for c in classes if c != current and c not in first]
        self.choices = first + rest  # not self.classes: Textual keeps the CSS classes there
        self._lowered = [c.lower() for c in self.choices]
        self.scores = scores
        self.current = current
        self.shown: list[str] = list(self.choices)
        self._filtered_by = ""

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Label(Content.assemble("Relabel ", (printable(self.current), "bold"),
                                         " as…  (type to filter · 1-9 or enter · esc)"))
            yield FilterInput(placeholder="class name", id="filter")
            yield OptionList(id="choices")

    def on_mount(self) -> None:
        self._refill("")
        self.query_one(Input).focus()

    def names(self, text: str) -> bool:
        """Whether filtering by ``text`` would leave any class."""
        text = text.strip().lower()
        return any(text in c for c in self._lowered)

    def _refill(self, text: str) -> None:
        self._filtered_by = text
        text = text.strip().lower()
        if text:
            starts = [c for c in self.choices if c.lower().startswith(text)]
            began = set(starts)  # (a list here made each key O(classes²): ~15 ms with 1,200)
            self.shown = starts + [c for c in self.choices if text in c.lower() and c not in began]
        else:
            self.shown = list(self.choices)
        options = self.query_one(OptionList)
        # All at once (one option at a time laid the whole list out again for each: 1,200 classes
        # took ~450 ms per key typed, and as long to open the picker), and not more than fit a look.
        listed = [self._option(n, c) for n, c in enumerate(self.shown[:SHOWN_AT_MOST])]
        if len(self.shown) > SHOWN_AT_MOST:
            listed.append(Option(Content.styled(f"  … {len(self.shown) - SHOWN_AT_MOST:,} more: type to narrow",
                                                "dim"), disabled=True))
        if not self.shown:
            # An empty list said nothing, and enter did nothing: a class the store does not know (a new
            # one), or a store of one class, left the reviewer with no way to tell why.
            listed.append(Option(Content.styled(self._none_message(text), "dim"), disabled=True))
        options.set_options(listed)
        if self.shown:
            options.highlighted = 0

    def _none_message(self, text: str) -> str:
        where = "add it to classes in labelreview.toml (the classes offered here are those and the imported ones)"
        if text and text == self.current.strip().lower():
            return f"{printable(self.current)!r} is the class it has. To relabel as another class, {where}"
        if text and self.choices:
            return f"No class matches {printable(text)!r}. To relabel as a new class, {where}"
        return f"No other class to relabel as. To add one, {where}"

    def _option(self, n: int, name: str) -> Option:
        key = f"{n + 1} " if n < 9 else "  "
        score = f"  (model {self.scores[name]:.2f})" if name in self.scores else ""
        # Content, not markup: a class named "[odd] box" lost "[odd]", and a "[/b]" in one broke it.
        return Option(Content(f"{key}{printable(name)}{score}"), id=f"c{n}")

    @on(Input.Changed, "#filter")
    def _changed(self, event: Input.Changed) -> None:
        self._refill(event.value)

    def _sync(self) -> None:
        """Filter by what the box holds now: Input.Changed messages may still be queued."""
        value = self.query_one(FilterInput).value
        if value != self._filtered_by:
            self._refill(value)

    @on(Input.Submitted, "#filter")
    def _submitted(self) -> None:
        self._sync()
        options = self.query_one(OptionList)
        if self.shown and options.highlighted is not None:
            self.dismiss(self.shown[options.highlighted])

    @on(OptionList.OptionSelected)
    def _selected(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(self.shown[event.option_index])

    def action_cursor(self, delta: int) -> None:
        options = self.query_one(OptionList)
        if self.shown:
            last = min(len(self.shown), SHOWN_AT_MOST) - 1
            options.highlighted = max(0, min(last, (options.highlighted or 0) + delta))

    def action_pick_number(self, n: int) -> None:
        self._sync()
        if n <= len(self.shown):
            self.dismiss(self.shown[n - 1])

    def action_cancel(self) -> None:
        self.dismiss(None)
