# @summary Installs, configures and runs microdeploy services from Hiera data.
#
# Each entry of `services` becomes a `microdeploy::service`: its Debian
# package pinned to a version, `/etc/NAME/config.ini` and
# `/etc/NAME/environment`, its log directory, and its systemd service.
# `microdeploy puppet-data` writes the `microdeploy::services` hash; the
# module's own Hiera data deep-merges it across hierarchy levels, so a
# service defined in `common.yaml` and tuned in a node's file combine.
#
# With `manage_apt_source`, the class also writes the signed APT source the
# packages come from (see `microdeploy::apt_source`), and every service's
# resources wait for it.
#
# @example Hiera data (automatic parameter lookup), with `include microdeploy` in a profile
#   microdeploy::manage_apt_source: true
#   microdeploy::apt_location: 'https://apt.example.com/microdeploy'
#   microdeploy::apt_key_source: 'puppet:///modules/profile/microdeploy-archive-keyring.asc'
#   microdeploy::services:
#     orders-api:
#       ensure: '1.4.0-1'
#       config_path: /etc/orders-api/config.ini
#       log_dir: /var/log/orders-api
#       user: orders-api
#       port: 8001
#       settings:
#         app:
#           debug: false
#
# @example Declared directly
#   class { 'microdeploy':
#     services => {
#       'orders-api' => { 'ensure' => '1.4.0-1', 'port' => 8001 },
#     },
#   }
#
# @param services
#   The services to manage, keyed by service name (the Debian package, unit
#   and user name). Each value holds the parameters of `microdeploy::service`
#   (SPEC §7 keys: `ensure`, `config_path`, `log_dir`, `user`, `port`,
#   `settings`, and optionally `bind`, `workers`, `environment`,
#   `service_ensure`, `enable`). Hiera merges this key deeply.
# @param manage_apt_source
#   Whether to manage the APT source and its keyring. When true,
#   `apt_location` and one of `apt_key_source`/`apt_key_content` are required.
# @param apt_location
#   The repository URI, e.g. `https://apt.example.com/microdeploy` or
#   `file:/srv/microdeploy-repo`.
# @param apt_suite
#   The suite (distribution) of the repository. A value ending in `/` names a
#   flat repository, which has no components. By default the host's own
#   codename (`os.distro.codename`: bookworm, trixie), so each host gets the
#   builds for its release and follows a dist-upgrade by itself.
# @param apt_components
#   The space-separated components of the repository.
# @param apt_key_source
#   Where the repository's public signing key comes from: any `source` a
#   file resource accepts (`puppet:///`, a local path, `https://`).
#   Mutually exclusive with `apt_key_content`.
# @param apt_key_content
#   The repository's public signing key itself, ASCII-armored.
#   Mutually exclusive with `apt_key_source`.
# @param apt_keyring
#   The keyring file the source's `Signed-By:` names. apt reads it as
#   ASCII-armored when it ends in `.asc` and as a binary keyring when it
#   ends in `.gpg`; the default is in `/etc/apt/keyrings`, where
#   sources.list(5) puts keyrings managed by the system operator.
class microdeploy (
  Hash[Microdeploy::Name, Microdeploy::ServiceParams] $services = {},
  Boolean $manage_apt_source = false,
  Optional[Pattern[/\A[a-z][a-z0-9+.-]*:\S+\z/]] $apt_location = undef,
  Optional[Pattern[/\A\S+\z/]] $apt_suite = undef,
  Pattern[/\A\S+(?: \S+)*\z/] $apt_components = 'main',
  Optional[String[1]] $apt_key_source = undef,
  Optional[String[1]] $apt_key_content = undef,
  Microdeploy::Absolutepath $apt_keyring = '/etc/apt/keyrings/microdeploy-archive-keyring.asc',
) {
  if $manage_apt_source {
    if $apt_location =~ Undef {
      fail('microdeploy: manage_apt_source is true but apt_location is not set; set microdeploy::apt_location to the repository URI')
    }

    # The exact versions the services pin (this host's release's builds): the
    # source is refreshed when apt does not know one yet.
    $pinned_versions = $services
      .filter |$service_name, $service_params| { $service_params['ensure'] =~ Microdeploy::Version }
      .map |$service_name, $service_params| {
        [$service_name, microdeploy::package_version($service_params['ensure'])]
      }
      .convert_to(Hash)

    class { 'microdeploy::apt_source':
      location    => $apt_location,
      suite       => $apt_suite,
      components  => $apt_components,
      key_source  => $apt_key_source,
      key_content => $apt_key_content,
      keyring     => $apt_keyring,
      versions    => $pinned_versions,
    }
    contain microdeploy::apt_source

    $service_require = Class['microdeploy::apt_source']
  } else {
    $service_require = undef
  }

  $services.each |Microdeploy::Name $service_name, Microdeploy::ServiceParams $service_params| {
    microdeploy::service { $service_name:
      *       => $service_params,
      require => $service_require,
    }
  }
}
