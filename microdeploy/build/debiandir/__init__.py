"""The debian/ directory of a service: its template context, and the build tree it is rendered into."""
