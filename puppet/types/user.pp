# @summary A system user (and group) name, as adduser accepts it for system users.
#
# @example
#   'orders-api'
type Microdeploy::User = Pattern[/\A[a-z_][a-z0-9_.-]*\z/]
