# @summary An exact Debian package version: `[epoch:]upstream[-revision]`.
#
# @example
#   '1.4.0-1'
type Microdeploy::Version = Pattern[/\A(?:[0-9]+:)?[0-9][A-Za-z0-9.+~-]*\z/]
