"""Bundled architecture and energy-table YAML files."""
