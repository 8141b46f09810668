"""Helpers shared by the IMAGIO Slicer modules (no Qt widget of their own)."""
