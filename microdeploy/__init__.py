"""microdeploy: ship Flask microservices as production Debian packages."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("microdeploy")
except PackageNotFoundError:  # running from a checkout that was never installed
    __version__ = "0.0.0"
