# @summary The site config: INI sections, each a hash of keys to values.
#
# Section and key names are restricted to letters, digits, `_`, `-` and `.`
# so that they cannot break the INI syntax.
#
# @example
#   { 'app' => { 'debug' => false }, 'database' => { 'url' => 'sqlite:////var/lib/orders-api/db.sqlite' } }
type Microdeploy::Settings = Hash[
  Pattern[/\A[A-Za-z0-9_.-]+\z/],
  Hash[Pattern[/\A[A-Za-z0-9_.-]+\z/], Microdeploy::Setting],
]
