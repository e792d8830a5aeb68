"""The sharp inspect view: the selected annotation's surroundings in real pixels, full screen; any key closes.

A screen of its own, opaque and without toasts: nothing else repaints over the pixels while it is up.
"""

from __future__ import annotations

from collections.abc import Sequence

from rich.text import Text
from textual import events
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import ModalScreen
from textual.widgets import Static

from ..render import Overlay
from ..termgraphics import Graphics
from ..widgets.inspect_view import InspectView


class InspectScreen(ModalScreen[None]):
    DEFAULT_CSS = """
    InspectScreen { align: left top; background: black; }
    InspectScreen #inspect-caption { height: 1; width: 100%; background: $panel; }
    """
    # Any key closes (on_key); listed for the help screen and for remapping habits.
    BINDINGS = [Binding("escape,i,q", "close", "Close", id="inspect_close")]

    def __init__(self, graphics: Graphics, path: str | None, overlays: Sequence[Overlay], caption: Text,
                 orig_size: tuple[int, int] | None = None) -> None:
        super().__init__()
        self.graphics = graphics
        self.path = path
        self.overlays = tuple(overlays)
        self.caption = caption
        self.orig_size = orig_size
        self._leaving = False
        self._keys_after: list[str] = []  # typed while the view closes: they act on the review after

    def _extend_compose(self, widgets) -> None:
        """No toast rack on this screen (nor tooltip): a toast drew over the sixel picture (a CSS
        ``display: none`` does not hold, Textual shows the rack inline for every notification);
        notifications wait on the review screen."""

    @property
    def view(self) -> InspectView:
        return self.query_one(InspectView)

    def compose(self) -> ComposeResult:
        # The caption below the picture: a sixel picture that ended on the screen's last line
        # could scroll the whole screen up by a line.
        yield InspectView(self.graphics, self.path, self.overlays, self.orig_size, id="inspect-view")
        yield Static(self.caption, id="inspect-caption", markup=False)

    def on_key(self, event: events.Key) -> None:
        event.stop()
        event.prevent_default()
        if self._leaving:  # "look, close, accept": the a after escape is the review's
            self._keys_after.append(event.key)
            return
        self.action_close()

    def action_close(self) -> None:
        if self._leaving:
            return
        self._leaving = True
        # One more paint of this screen first: for kitty it takes the picture off the terminal
        # (a kitty picture stays over whatever text is drawn under it).
        self.view.close(then=self._dismiss)

    def _dismiss(self) -> None:
        self.dismiss(None)  # not returned: the caller would await it, from this screen's own handler
        for key in self._keys_after:  # (queued after the pop: the review screen gets them)
            self.app.simulate_key(key)
