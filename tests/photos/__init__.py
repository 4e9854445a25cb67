"""Tests of the photos package (images generated with Pillow in the tests; no binary fixtures)."""
