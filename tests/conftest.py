"""Shared fixtures of the whole suite live in tests/testbed/ (booted hosts) and here."""
