# @summary The address a service listens on: an IPv4 or IPv6 address or a host name.
#
# IPv6 addresses are written without brackets; the service adds them when it
# joins address and port.
#
# @example
#   '127.0.0.1'
type Microdeploy::Bind = Pattern[/\A[A-Za-z0-9.:_-]+\z/]
