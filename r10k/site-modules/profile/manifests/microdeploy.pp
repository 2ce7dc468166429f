# @summary The microdeploy services of this host, from Hiera.
#
# The `microdeploy::*` keys (`microdeploy puppet-data` writes them) configure
# the class by automatic parameter lookup.
class profile::microdeploy {
  include microdeploy
}
