# @summary What a service's package should be: an exact Debian version or a state.
#
# An exact version such as `'1.4.0-1'` (with an optional epoch, `'1:2.0-3'`)
# pins the package, and Puppet installs, upgrades or downgrades to it.
# `present`/`installed` install whatever the repository offers once,
# `latest` follows the repository, `absent` removes the package and
# `purged` purges it.
#
# @example A pinned version
#   '1.4.0-1'
type Microdeploy::Ensure = Variant[
  Enum['present', 'installed', 'latest', 'absent', 'purged'],
  Microdeploy::Version,
]
