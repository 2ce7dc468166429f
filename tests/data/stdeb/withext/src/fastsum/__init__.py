"""A library with a C extension: the stdeb backend refuses it."""
