"""The greeting; the benchmark's app-only change rewrites this file."""

GREETING = "hello"
