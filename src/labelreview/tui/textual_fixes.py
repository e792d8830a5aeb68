"""Work-arounds for Textual bugs that a long review session runs into. Each says what and why.

Applied once, when the app module is imported (``apply()``); each checks that the code it mends is
still the code it was written for, and leaves a Textual that no longer has the bug alone.
"""

from __future__ import annotations

from functools import lru_cache


def apply() -> None:
    _free_dead_widgets_line_caches()


def _free_dead_widgets_line_caches() -> None:
    """``StylesCache.get_inner_outer`` is an instance method under ``functools.lru_cache(1024)``: its
    cache keys hold the ``StylesCache`` itself, so every widget that was ever drawn keeps its
    rendered lines alive until 1,024 newer keys push it out (Textualize/textual#6665, open in
    Textual 8.2). Here that was every inspect view, help screen, picker and toast: ~0.9 MB kept per
    look at an annotation through ``i``. Same cache, keyed by the two colours alone (all the
    method reads)."""
    from textual._styles_cache import StylesCache

    method = StylesCache.__dict__.get("get_inner_outer")
    if getattr(method, "labelreview_fix", False) or not hasattr(method, "cache_clear"):
        return  # applied already, or not the lru-cached method any more (fixed upstream)
    uncached = method.__wrapped__

    @lru_cache(1024)
    def inner_outer(base_background, background):
        return uncached(None, base_background, background)

    def get_inner_outer(self, base_background, background):
        return inner_outer(base_background, background)

    get_inner_outer.__doc__ = uncached.__doc__
    get_inner_outer.labelreview_fix = True
    StylesCache.get_inner_outer = get_inner_outer
