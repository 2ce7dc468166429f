# frozen_string_literal: true

# A minimal rspec-puppet setup for Debian's ruby-rspec-puppet: no
# puppetlabs_spec_helper, no Forge fixtures. The module is linked into a
# temporary module path at run time: the checkout stays free of symlinks,
# and rspec's spec/**/*_spec.rb glob never finds the specs twice through one.
require 'fileutils'
require 'tmpdir'
require 'rspec-puppet'

MODULE_ROOT = File.expand_path('..', __dir__)
FIXTURE_MODULES = Dir.mktmpdir('microdeploy-rspec-modules-')
File.symlink(MODULE_ROOT, File.join(FIXTURE_MODULES, 'microdeploy'))
at_exit { FileUtils.rm_rf(FIXTURE_MODULES) }

# Debian 12 as Facter 4 reports it (legacy facts included for old code paths).
DEBIAN12_FACTS = {
  'os' => {
    'family' => 'Debian',
    'name' => 'Debian',
    'architecture' => 'amd64',
    'hardware' => 'x86_64',
    'release' => { 'full' => '12.8', 'major' => '12', 'minor' => '8' },
    'distro' => {
      'codename' => 'bookworm',
      'id' => 'Debian',
      'release' => { 'full' => '12.8', 'major' => '12', 'minor' => '8' },
    },
    'selinux' => { 'enabled' => false },
  },
  'osfamily' => 'Debian',
  'operatingsystem' => 'Debian',
  'operatingsystemmajrelease' => '12',
  'kernel' => 'Linux',
  'networking' => { 'fqdn' => 'app1.example.com', 'hostname' => 'app1', 'domain' => 'example.com' },
  'path' => '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
  'service_provider' => 'systemd',
}.freeze

RSpec.configure do |c|
  # rspec-puppet would otherwise create spec/fixtures/ (and a symlink to the
  # module inside it) in the checkout; the temporary module path replaces it.
  c.setup_fixtures = false
  c.module_path = FIXTURE_MODULES
  c.default_facts = DEBIAN12_FACTS
  c.strict_variables = true
  # rspec-puppet gives every example a temporary vardir and /dev/null as
  # confdir, so nothing is read from or written to the machine's Puppet dirs.
end
