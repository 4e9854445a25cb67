"""Fixtures: a running sandbox on a free loopback port."""
