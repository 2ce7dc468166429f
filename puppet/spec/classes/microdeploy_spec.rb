# frozen_string_literal: true

require 'spec_helper'

describe 'microdeploy' do
  context 'with no parameters' do
    it { is_expected.to compile.with_all_deps }
    it { is_expected.not_to contain_class('microdeploy::apt_source') }
    it { is_expected.to have_microdeploy__service_resource_count(0) }
    it { is_expected.to have_package_resource_count(0) }
  end

  context 'with services (SPEC §7 keys)' do
    let(:params) do
      {
        services: {
          'orders-api' => {
            'ensure' => '1.4.0-1',
            'config_path' => '/etc/orders-api/config.ini',
            'log_dir' => '/var/log/orders-api',
            'user' => 'orders-api',
            'port' => 8001,
            'settings' => { 'app' => { 'debug' => false } },
          },
          'billing-api' => { 'ensure' => '2.0.1-3', 'bind' => '127.0.0.1', 'workers' => 2 },
        },
      }
    end

    it { is_expected.to compile.with_all_deps }
    it { is_expected.to have_microdeploy__service_resource_count(2) }

    it 'declares one microdeploy::service per entry, passing the keys through' do
      is_expected.to contain_microdeploy__service('orders-api').with(
        ensure: '1.4.0-1', port: 8001, user: 'orders-api', settings: { 'app' => { 'debug' => false } },
      )
      is_expected.to contain_microdeploy__service('billing-api').with(ensure: '2.0.1-3', workers: 2)
    end

    it 'installs the version waiting for dpkg\'s lock' do
      is_expected.to contain_package('orders-api').with(
        ensure: '1.4.0-1+deb12', install_options: ['-o', 'DPkg::Lock::Timeout=300'],
      )
    end
    it { is_expected.to contain_package('billing-api').with_ensure('2.0.1-3+deb12') }
    it { is_expected.to contain_service('billing-api').that_subscribes_to('File[/etc/billing-api/config.ini]') }
    it { is_expected.not_to contain_class('microdeploy::apt_source') }
  end

  context 'with a managed APT source' do
    let(:params) do
      {
        manage_apt_source: true,
        apt_location: 'http://10.231.1.1:8080/microdeploy',
        apt_key_content: "-----BEGIN PGP PUBLIC KEY BLOCK-----\n\nmDMEZ...\n-----END PGP PUBLIC KEY BLOCK-----\n",
        services: {
          'orders-api' => { 'ensure' => '1.4.0-1' },
          'billing-api' => { 'ensure' => 'latest' },
          'legacy-api' => { 'ensure' => 'absent' },
        },
      }
    end

    it { is_expected.to compile.with_all_deps }

    it 'tells the APT source which exact versions the services pin' do
      is_expected.to contain_class('microdeploy::apt_source').with_versions('orders-api' => '1.4.0-1+deb12')
      is_expected.to contain_exec('microdeploy-apt-update-for-versions').that_comes_before('Package[orders-api]')
    end

    it 'passes the apt_* parameters to the contained apt_source class' do
      is_expected.to contain_class('microdeploy::apt_source').with(
        location: 'http://10.231.1.1:8080/microdeploy',
        suite: nil,
        components: 'main',
        keyring: '/etc/apt/keyrings/microdeploy-archive-keyring.asc',
      )
    end

    it 'names the suite of the host release (its codename fact) in the source' do
      is_expected.to contain_file('/etc/apt/sources.list.d/microdeploy.sources').with_content(/^Suites: bookworm$/)
    end

    it 'installs the packages only after the source and the package lists are in place' do
      is_expected.to contain_package('orders-api').that_requires('Class[microdeploy::apt_source]')
      is_expected.to contain_exec('microdeploy-apt-update').that_comes_before('Package[orders-api]')
    end

    it { is_expected.to contain_file('/etc/apt/sources.list.d/microdeploy.sources').that_comes_before('Package[orders-api]') }
  end

  context 'with manage_apt_source but no location' do
    let(:params) { { manage_apt_source: true, apt_key_content: 'KEY' } }

    it { is_expected.to compile.and_raise_error(/apt_location is not set/) }
  end

  context 'with a service name that is not a Debian package name' do
    let(:params) { { services: { 'Orders API' => { 'ensure' => 'present' } } } }

    it { is_expected.to compile.and_raise_error(/services/) }
  end

  context 'with an unknown key in a service entry' do
    let(:params) { { services: { 'orders-api' => { 'ensure' => 'present', 'prot' => 8001 } } } }

    it { is_expected.to compile.and_raise_error(/unrecognized key 'prot'/) }
  end

  context 'with services from several Hiera levels (module lookup_options, deep merge)' do
    let(:node) { 'app1.example.com' }
    let(:hiera_config) { File.join(__dir__, '..', 'hieradata', 'hiera.yaml') }

    it { is_expected.to compile.with_all_deps }

    it 'combines services from the node and common levels' do
      is_expected.to contain_package('orders-api').with_ensure('1.4.0-1+deb12')
      is_expected.to contain_package('billing-api').with_ensure('2.0.1-3+deb12')
    end

    it 'merges the keys and settings of one service, the more specific level winning' do
      is_expected.to contain_microdeploy__service('orders-api').with(port: 8001, workers: 8)
      is_expected.to contain_file('/etc/orders-api/config.ini').with_content(
        sensitive(/^\[app\]\ndebug = false\ngreeting = bonjour\n\n\[server\]\nport = 8001\nworkers = 8\n\z/),
      )
    end
  end
end
