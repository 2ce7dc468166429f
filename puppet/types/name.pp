# @summary The name of a microdeploy service.
#
# A service name is at once its Debian package, systemd unit, runtime user
# and directory name under /etc, /var/log and /opt/venvs, so it follows
# Debian's package name policy: lower-case letters, digits, `+`, `-` and `.`,
# at least two characters, starting with a letter or digit.
#
# @example
#   'orders-api'
type Microdeploy::Name = Pattern[/\A[a-z0-9][a-z0-9+.-]+\z/]
