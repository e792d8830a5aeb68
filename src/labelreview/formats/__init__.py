"""Import and export formats: each module converts a file format to and from the store model."""
