"""Widgets of the review screen, one per file."""
