# @summary A host that runs microdeploy services.
#
# A role is a business name for a host: it only includes profiles.
class role::microservice_host {
  include profile::microdeploy
}
