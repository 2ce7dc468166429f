"""hello-api: the service the benchmark packages."""
