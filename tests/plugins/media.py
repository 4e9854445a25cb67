"""Fixtures: lavfi-generated media, cached per session."""
