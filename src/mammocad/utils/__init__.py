"""Lowest layer: errors, atomic file writes, image file I/O and the failure-tolerant worker pool."""
