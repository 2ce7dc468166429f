# @summary The package version an exact `ensure` stands for on this host.
#
# microdeploy builds one package per Debian release, its revision ending in
# the release's `+debN` (`1.4.0-1+deb12`, `1.4.0-1+deb13`). A version without
# that suffix names the same build for every release, and stands for the
# build of the host's release (`os.release.major`); a version with it stands
# for itself.
#
# @param version
#   An exact Debian version, with or without `+debN`.
# @return [String]
#   The version of the package to install on this host.
# @example On a Debian 13 host
#   microdeploy::package_version('1.4.0-1')  # => '1.4.0-1+deb13'
function microdeploy::package_version(Microdeploy::Version $version) >> String {
  if $version =~ /\+deb[0-9]+\z/ {
    $version
  } else {
    "${version}+deb${facts.dig('os', 'release', 'major')}"
  }
}
