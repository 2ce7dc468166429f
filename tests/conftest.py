"""Shared fixtures: booted hosts come from tests/testbed/, built packages from tests/packages.py."""

pytest_plugins = ["tests.testbed.fixtures", "tests.packages"]
