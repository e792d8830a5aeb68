"""KeyHints: the footer line of the keys shown for the screen, as the reviewer has mapped them."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual.binding import Binding
from textual.screen import Screen
from textual.widget import Widget


class KeyHints(Widget):
    """Each shown binding's key and description on one line, like Textual's ``Footer``.

    ``Footer`` mounts a widget per key (here 11, each with its own styles) and composes them again
    whenever the bindings change: measured at ~100 ms of the review screen's launch (of ~250 ms
    from the app's start to its first frame). One line of text does the same job for a keyboard
    app: same keys (after ``labelreview.toml``'s remapping: ``App.get_key_display`` on the
    screen's active bindings), the footer's colours, in the screen's order; cut at the edge.
    """

    ALLOW_SELECT = False
    COMPONENT_CLASSES: ClassVar[set[str]] = {"key-hints--key", "key-hints--description"}
    DEFAULT_CSS = """
    KeyHints {
        dock: bottom;
        height: 1;
        color: $footer-foreground;
        background: $footer-background;
        text-wrap: nowrap;
        text-overflow: clip;
        .key-hints--key {
            color: $footer-key-foreground;
            background: $footer-key-background;
            text-style: bold;
        }
        .key-hints--description {
            color: $footer-description-foreground;
            background: $footer-description-background;
        }
    }
    """

    def on_mount(self) -> None:
        self.screen.bindings_updated_signal.subscribe(self, self._bindings_changed)

    def on_unmount(self) -> None:
        self.screen.bindings_updated_signal.unsubscribe(self)

    def _bindings_changed(self, screen: Screen) -> None:
        if self.is_attached and screen is self.screen:
            self.refresh()

    def hints(self) -> list[tuple[str, str]]:
        """(key as shown, description) of each shown binding, one per action (its first key), in
        the order the screen declares them (a remapped key keeps its place)."""
        declared = {b.id: i for i, b in enumerate(getattr(self.screen, "BINDINGS", ()))
                    if isinstance(b, Binding) and b.id}
        seen: set[str] = set()
        shown = []
        for _node, binding, _enabled, _tooltip in self.screen.active_bindings.values():
            if binding.show and binding.action not in seen:
                seen.add(binding.action)
                shown.append(binding)
        shown.sort(key=lambda b: declared.get(b.id, len(declared)))
        return [(self.app.get_key_display(b), b.description) for b in shown]

    #: Kept when the line is too narrow for every hint: how to learn the rest, and how to leave.
    KEPT = ("Help", "Quit")

    def render(self) -> Text:
        key_style = self.get_component_rich_style("key-hints--key")
        description_style = self.get_component_rich_style("key-hints--description")
        hints = self.hints()
        width = self.size.width
        # Too narrow (80 columns): the hints before help and quit give way from the right, so
        # that those two stay on screen rather than being cut off the end.
        while width and sum(len(k) + len(d) + 3 for k, d in hints) > width:
            droppable = [i for i, (_, d) in enumerate(hints) if d not in self.KEPT]
            if not droppable:
                break
            del hints[droppable[-1]]
        text = Text(no_wrap=True, overflow="crop", end="")
        for key, description in hints:
            text.append(f" {key} ", key_style)
            text.append(f"{description} ", description_style)
        return text
