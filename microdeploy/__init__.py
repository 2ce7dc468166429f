"""microdeploy: ship Flask microservices as production Debian packages."""

__version__ = "0.1.0"
