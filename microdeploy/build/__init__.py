"""`microdeploy build`: a Debian package of a service."""
