"""Benchmarks of microdeploy build against references (`make bench`)."""
