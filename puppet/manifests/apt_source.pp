# @summary Writes the signed APT source of the microdeploy packages.
#
# Manages a deb822 source, `/etc/apt/sources.list.d/microdeploy.sources`,
# whose `Signed-By:` names a keyring file that this class also manages, and
# refreshes the package lists of that one source (not the host's other
# sources, which may be unreachable) whenever either file is newer than its
# last successful refresh (`/var/lib/microdeploy/apt-source.refreshed`), and
# whenever a version a service pins is not in the lists yet (a release
# published after the last refresh). Only core resource types are used, so
# the module needs no Forge module.
#
# The `microdeploy` class declares it when `manage_apt_source` is true: set
# the `microdeploy::apt_*` parameters instead of declaring it yourself.
#
# @api private
#
# @example Declared by the main class
#   class { 'microdeploy':
#     manage_apt_source => true,
#     apt_location      => 'https://apt.example.com/microdeploy',
#     apt_key_content   => file('profile/microdeploy-archive-keyring.asc'),
#   }
#
# @param location
#   The repository URI.
# @param suite
#   The suite; a value ending in `/` names a flat repository (no components).
#   By default the host's codename fact, the suite its release's builds are
#   published in.
# @param components
#   The space-separated components.
# @param key_source
#   The `source` of the public signing key (exclusive with `key_content`).
# @param key_content
#   The ASCII-armored public signing key (exclusive with `key_source`).
# @param keyring
#   The keyring file: `.asc` for an ASCII-armored key, `.gpg` for a binary one.
# @param versions
#   The exact versions the services pin, by package name. When apt does not
#   know one of them, the lists of this source are refreshed before any
#   package is installed.
class microdeploy::apt_source (
  Pattern[/\A[a-z][a-z0-9+.-]*:\S+\z/] $location,
  Optional[Pattern[/\A\S+\z/]] $suite = undef,
  Pattern[/\A\S+(?: \S+)*\z/] $components = 'main',
  Optional[String[1]] $key_source = undef,
  Optional[String[1]] $key_content = undef,
  Microdeploy::Absolutepath $keyring = '/etc/apt/keyrings/microdeploy-archive-keyring.asc',
  Hash[Microdeploy::Name, Microdeploy::Version] $versions = {},
) {
  if ($key_source =~ Undef) == ($key_content =~ Undef) {
    fail(@(MSG/L))
      microdeploy: the APT source needs exactly one of apt_key_source and \
      apt_key_content; set one to the repository's public signing key
      | MSG
  }
  unless $keyring =~ /\.(?:asc|gpg)\z/ {
    fail("microdeploy: apt_keyring '${keyring}' must end in .asc (ASCII-armored) or .gpg (binary): apt picks the format by extension")
  }

  $sources_path = '/etc/apt/sources.list.d/microdeploy.sources'
  # The repository has a suite per Debian release (`microdeploy publish` puts
  # each build into its release's); a dist-upgraded host switches with its fact.
  $effective_suite = $suite.lest || { $facts.dig('os', 'distro', 'codename') }
  if $effective_suite =~ Undef {
    fail('microdeploy: the host reports no os.distro.codename fact; set microdeploy::apt_suite to its release (e.g. trixie)')
  }

  file { $keyring:
    ensure  => file,
    owner   => 'root',
    group   => 'root',
    # apt verifies as the unprivileged _apt user, which must read the keyring.
    mode    => '0644',
    source  => $key_source,
    content => $key_content,
  }

  file { $sources_path:
    ensure  => file,
    owner   => 'root',
    group   => 'root',
    mode    => '0644',
    content => epp('microdeploy/microdeploy.sources.epp', {
        'location'   => $location,
        'suite'      => $effective_suite,
        'components' => $components,
        'keyring'    => $keyring,
    }),
    require => File[$keyring],
  }

  # Only this source is refreshed: a host whose other mirrors are unreachable
  # still gets our package lists. apt-get update exits 0 when a source cannot
  # be fetched (it keeps the old lists); --error-on=any makes an unreachable
  # repository fail here, by its URL, not later as a version apt cannot find.
  $update_lists = [
    '/usr/bin/apt-get update --error-on=any',
    "-o Dir::Etc::SourceList=${sources_path} -o Dir::Etc::SourceParts=- -o APT::Get::List-Cleanup=0",
  ].join(' ')
  # apt-get update does not wait for the lists' lock, which the host's own
  # apt-daily holds for a while after each boot: try again while apt's
  # message names the lock (its path is in every translation), up to 300 s.
  $update = [
    "for try in \$(seq 150); do out=\$(${update_lists} 2>&1); status=\$?;",
    'case "$out" in */var/lib/apt/lists/lock*) sleep 2 ;; *) break ;; esac; done;',
    'printf "%s\n" "$out"; exit $status',
  ].join(' ')

  # A refresh that fails (the repository unreachable) is tried again at the
  # next run, not only when a file changes again: the stamp is written when
  # it succeeds, and the refresh runs while the source or key is newer.
  $stamp_dir = '/var/lib/microdeploy'
  $stamp = "${stamp_dir}/apt-source.refreshed"
  file { $stamp_dir:
    ensure => directory,
    owner  => 'root',
    group  => 'root',
    mode   => '0755',
  }

  exec { 'microdeploy-apt-update':
    command   => "(${update}) && /usr/bin/touch ${stamp}",
    unless    => "/usr/bin/test ${stamp} -nt ${sources_path} && /usr/bin/test ${stamp} -nt ${keyring}",
    provider  => 'shell',
    timeout   => 900,
    logoutput => 'on_failure',
    require   => File[$stamp_dir, $keyring, $sources_path],
  }

  # The package provider installs NAME=VERSION from the lists as they are; a
  # version published since the last refresh needs one more refresh first.
  # Names and versions are type-checked, so they are safe in a shell command.
  unless $versions.empty {
    $all_known = $versions.keys.sort.map |$name| {
      "/usr/bin/apt-cache show --no-all-versions ${name}=${versions[$name]} 2>/dev/null | /bin/grep -q '^Package:'"
    }.join(' && ')

    exec { 'microdeploy-apt-update-for-versions':
      command   => $update,
      unless    => $all_known,
      provider  => 'shell',
      timeout   => 900,
      logoutput => 'on_failure',
      require   => Exec['microdeploy-apt-update'],
    }
  }
}
