"""The review screen (Textual). Draws and dispatches keys; decisions go through labelreview.review."""
