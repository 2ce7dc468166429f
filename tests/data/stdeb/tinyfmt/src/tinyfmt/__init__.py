"""Human-readable sizes: a small pure-Python library shared by services."""

from packaging.version import Version

__version__ = str(Version("1.2.0"))


def size(n: int) -> str:
    """1536 -> '1.5 KiB'."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{n} B"
        n /= 1024
    raise AssertionError("unreachable")
