"""Bundled sparse-training traces (.pstrace files)."""
