# @summary An absolute POSIX path (the module uses no stdlib, so it has its own).
#
# @example
#   '/etc/orders-api/config.ini'
type Microdeploy::Absolutepath = Pattern[/\A\/(?:[^\/\0]+\/*)*\z/]
