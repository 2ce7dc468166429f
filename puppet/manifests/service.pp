# @summary One microdeploy service: its package, site config, environment, logs and unit.
#
# Puppet owns `/etc/NAME/`; the package owns the code, the unit, the
# defaults and the restart on upgrade (its maintainer scripts restart the
# service). So the service is restarted when `config.ini` or `environment`
# change, and never because the package changed: there is deliberately no
# `Package ~> Service`, and an upgrade never restarts twice.
#
# The package creates the runtime user and group, so the files that belong
# to that group are written after the package is installed. On a first
# install the package starts the service with its defaults and Puppet then
# restarts it once with the site config.
#
# microdeploy builds one package per Debian release, its revision ending in
# the release's `+debN` (`1.4.0-1+deb12`, `1.4.0-1+deb13`). An exact version
# without that suffix names the same build for every release: each host gets
# its own release's (`+deb` and `os.release.major`), so one pin in Hiera
# serves a fleet of bookworm and trixie hosts. A version with a suffix is
# installed as it is.
#
# An exact version is also written to an apt preferences file,
# `/etc/apt/preferences.d/microdeploy-NAME.pref`, with priority 1001, so
# `apt-get upgrade` (or unattended-upgrades) between Puppet runs keeps the
# package at the pin; the file follows the pin, so bumping `ensure` in Hiera
# still upgrades or downgrades on the next run. For a pin without `+debN` the
# file names every release's build of it (`1.4.0-1+deb*`), so a dist-upgrade
# moves to the new release's build. Any other `ensure` removes the file.
#
# `ensure => absent` removes the package (as `apt-get remove` does) and
# leaves `/etc/NAME/` and the logs in place, so an administrator's config
# survives a removal. `ensure => purged` purges the package and deletes
# `/etc/NAME/` (and `config_path` if it lies elsewhere); logs are left to the
# package's purge.
#
# @example A pinned service with site settings
#   microdeploy::service { 'orders-api':
#     ensure   => '1.4.0-1',
#     port     => 8001,
#     workers  => 4,
#     settings => {
#       'app'      => { 'debug' => false },
#       'database' => { 'password' => Sensitive('s3cret') },
#     },
#   }
#
# @example Removing a service
#   microdeploy::service { 'legacy-api':
#     ensure => absent,
#   }
#
# @param ensure
#   The package: an exact Debian version such as `'1.4.0-1'` (installed,
#   upgraded or downgraded to; without a `+debN` suffix, the build of the
#   host's Debian release, `1.4.0-1+deb12` on Debian 12), `present`/`installed`,
#   `latest`, `absent` or `purged`.
# @param config_path
#   The site config file, read by the service at start.
# @param log_dir
#   The log directory (app log and access log), owned by `user` and group
#   `adm`, mode `2750`, as the package creates it.
# @param user
#   The runtime user and group, created by the package.
# @param port
#   The TCP port, written as `port` in the `[server]` section. Unset keeps the
#   packaged default. A port below 1024 (here or in `settings`) also gets a
#   unit drop-in granting `CAP_NET_BIND_SERVICE`, which the package's unit
#   never has.
# @param bind
#   The listen address, written as `bind` in the `[server]` section. Unset
#   keeps the packaged default.
# @param workers
#   The number of worker processes, written as `workers` in the `[server]`
#   section. Unset keeps the packaged default.
# @param settings
#   The site config: a hash of INI sections, each a hash of keys to scalar
#   values (`Sensitive` allowed). `port`, `bind` and `workers`, when set,
#   override the same keys of a `server` section here.
# @param environment
#   Environment variables written to `/etc/NAME/environment`, the unit's
#   `EnvironmentFile` (values may be `Sensitive`).
# @param service_ensure
#   Whether the service should be `running` or `stopped`.
# @param enable
#   Whether the service starts at boot.
define microdeploy::service (
  Microdeploy::Ensure $ensure = 'present',
  Microdeploy::Absolutepath $config_path = "/etc/${title}/config.ini",
  Microdeploy::Absolutepath $log_dir = "/var/log/${title}",
  Microdeploy::User $user = $title,
  Optional[Integer[1, 65535]] $port = undef,
  Optional[Microdeploy::Bind] $bind = undef,
  Optional[Integer[1]] $workers = undef,
  Microdeploy::Settings $settings = {},
  Microdeploy::Environment $environment = {},
  Enum['running', 'stopped'] $service_ensure = 'running',
  Boolean $enable = true,
) {
  unless $title =~ Microdeploy::Name {
    fail("microdeploy::service: '${title}' is not a valid service name; use a Debian package name such as 'orders-api'")
  }

  $config_dir = "/etc/${title}"
  $environment_path = "${config_dir}/environment"
  $port_dropin = "/etc/systemd/system/${title}.service.d/microdeploy-port.conf"
  # apt skips preferences files whose names hold anything but letters, digits, '_', '-' and '.'.
  $preferences_path = "/etc/apt/preferences.d/microdeploy-${title.regsubst(/\+/, '_', 'G')}.pref"

  if $ensure =~ Microdeploy::Version {
    $package_ensure = microdeploy::package_version($ensure)
    # Every release's build of a version named without its release.
    $pinned = $package_ensure == $ensure ? { true => $ensure, default => "${ensure}+deb*" }
  } else {
    $package_ensure = $ensure
  }

  # Written before the package, so the pin and the installed version never disagree for long.
  if $ensure =~ Microdeploy::Version {
    file { $preferences_path:
      ensure  => file,
      owner   => 'root',
      group   => 'root',
      mode    => '0644',
      content => epp('microdeploy/apt_preferences.epp', { 'service' => $title, 'version' => $pinned }),
      before  => Package[$title],
    }
  } else {
    file { $preferences_path:
      ensure => absent,
    }
  }

  # apt-get fails at once on dpkg's lock unless told to wait, and the host's
  # unattended-upgrades holds it daily. Puppet's apt provider passes these
  # options to installs only, not to removals.
  package { $title:
    ensure          => $package_ensure,
    install_options => ['-o', 'DPkg::Lock::Timeout=300'],
  }

  if $ensure in ['absent', 'purged'] {
    file { $port_dropin:
      ensure => absent,
    }
    if $ensure == 'purged' {
      file { $config_dir:
        ensure  => absent,
        force   => true,
        require => Package[$title],
      }
      unless $config_path.index("${config_dir}/") == 0 {
        file { $config_path:
          ensure  => absent,
          require => Package[$title],
        }
      }
    }
  } else {
    # Explicit parameters win over a [server] section given in settings.
    $server_params = { 'bind' => $bind, 'port' => $port, 'workers' => $workers }.filter |$key, $value| { $value =~ NotUndef }
    $sections = $server_params.empty ? {
      true    => $settings,
      default => $settings + { 'server' => $settings.dig('server').lest || { {} } + $server_params },
    }

    file { $config_dir:
      ensure  => directory,
      owner   => 'root',
      group   => $user,
      mode    => '0750',
      require => Package[$title],
    }

    # The text is Sensitive so that neither diffs nor reports show secrets;
    # show_diff guards the file even if a caller unwraps a value early.
    file { $config_path:
      ensure    => file,
      owner     => 'root',
      group     => $user,
      mode      => '0640',
      show_diff => false,
      content   => Sensitive(epp('microdeploy/config.ini.epp', {
            'service'  => $title,
            'sections' => $sections,
      })),
      require   => Package[$title],
    }

    file { $environment_path:
      ensure    => file,
      owner     => 'root',
      group     => $user,
      mode      => '0640',
      show_diff => false,
      content   => Sensitive(epp('microdeploy/environment.epp', {
            'service'   => $title,
            'variables' => $environment,
      })),
      require   => File[$config_dir],
    }

    # The port is the site config's (the host's config.ini owns it): a port
    # below 1024 needs the capability, granted here rather than by the
    # package, whose build cannot know the port a host will use.
    $port_value = $sections.dig('server', 'port')
    $effective_port = $port_value ? {
      Integer                => $port_value,
      Pattern[/\A[0-9]+\z/] => Integer($port_value, 10),
      default                => undef,
    }
    if $effective_port =~ Integer and $effective_port < 1024 {
      file { "/etc/systemd/system/${title}.service.d":
        ensure => directory,
        owner  => 'root',
        group  => 'root',
        mode   => '0755',
      }
      file { $port_dropin:
        ensure  => file,
        owner   => 'root',
        group   => 'root',
        mode    => '0644',
        content => epp('microdeploy/port.conf.epp', { 'service' => $title, 'port' => $effective_port }),
      }
    } else {
      file { $port_dropin:
        ensure => absent,
      }
    }

    # systemd reads a drop-in only at a daemon-reload. Puppet's systemd
    # provider reloads before a restart when systemd says it must
    # (NeedDaemonReload), but systemd does not say so for a drop-in directory
    # that did not exist at its last load: the first drop-in would wait for
    # the next reboot, and the service crash-loop on its privileged port.
    exec { "microdeploy-${title}-daemon-reload":
      command     => '/usr/bin/systemctl daemon-reload',
      refreshonly => true,
      logoutput   => 'on_failure',
      subscribe   => File[$port_dropin],
      before      => Service[$title],
    }

    # As the package's postinst makes it (Debian's convention: group adm reads
    # logs, setgid keeps new files in that group); any other owner, group or
    # mode would be flipped back and forth by Puppet and every upgrade.
    file { $log_dir:
      ensure  => directory,
      owner   => $user,
      group   => 'adm',
      mode    => '2750',
      require => Package[$title],
    }

    # Subscribed to the files Puppet owns, required (not subscribed) to the
    # package: the package's maintainer scripts restart it on upgrade. A
    # changed drop-in is read first (the daemon-reload above).
    service { $title:
      ensure    => $service_ensure,
      enable    => $enable,
      require   => [Package[$title], File[$log_dir]],
      subscribe => File[$config_path, $environment_path, $port_dropin],
    }
  }
}
