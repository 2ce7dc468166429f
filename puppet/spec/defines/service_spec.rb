# frozen_string_literal: true

require 'spec_helper'

describe 'microdeploy::service' do
  let(:title) { 'orders-api' }

  context 'with the SPEC §7 keys' do
    let(:params) do
      {
        ensure: '1.4.0-1',
        config_path: '/etc/orders-api/config.ini',
        log_dir: '/var/log/orders-api',
        user: 'orders-api',
        port: 8001,
        settings: {
          'app' => { 'debug' => false, 'greeting' => 'hello world', 'ratio' => 1.5 },
          'database' => { 'url' => 'sqlite:////var/lib/orders-api/db.sqlite' },
        },
      }
    end

    it { is_expected.to compile.with_all_deps }

    it "pins the package to the version in Hiera, the host release's build of it" do
      is_expected.to contain_package('orders-api').with_ensure('1.4.0-1+deb12')
    end

    it 'keeps apt at the pinned version with a preferences file written before the package' do
      is_expected.to contain_file('/etc/apt/preferences.d/microdeploy-orders-api.pref').with(
        ensure: 'file', owner: 'root', group: 'root', mode: '0644',
      ).that_comes_before('Package[orders-api]')
      is_expected.to contain_file('/etc/apt/preferences.d/microdeploy-orders-api.pref').with_content(
        %r{^Package: orders-api\nPin: version 1\.4\.0-1\+deb\*\nPin-Priority: 1001\n\z},
      )
    end

    it 'makes /etc/NAME readable by the service group only' do
      is_expected.to contain_file('/etc/orders-api').with(
        ensure: 'directory', owner: 'root', group: 'orders-api', mode: '0750',
      ).that_requires('Package[orders-api]')
    end

    it 'writes config.ini owned by root, group NAME, mode 0640, without diffs' do
      is_expected.to contain_file('/etc/orders-api/config.ini').with(
        ensure: 'file', owner: 'root', group: 'orders-api', mode: '0640', show_diff: false,
      ).that_requires('Package[orders-api]')
    end

    it 'renders the settings as sorted INI sections, with a [server] section' do
      is_expected.to contain_file('/etc/orders-api/config.ini').with_content(sensitive(<<~INI))
        # Managed by Puppet (microdeploy::service[orders-api]); local changes are overwritten.
        # Site configuration: overrides the defaults shipped in the orders-api package.

        [app]
        debug = false
        greeting = hello world
        ratio = 1.5

        [database]
        url = sqlite:////var/lib/orders-api/db.sqlite

        [server]
        port = 8001
      INI
    end

    it 'writes an empty environment file with the same ownership' do
      is_expected.to contain_file('/etc/orders-api/environment').with(
        ensure: 'file', owner: 'root', group: 'orders-api', mode: '0640', show_diff: false,
      ).with_content(sensitive(/\A# Managed by Puppet.*\n# Read by systemd[^\n]*\n\z/m))
    end

    it 'gives the log directory to the service user and group adm, as the package does' do
      is_expected.to contain_file('/var/log/orders-api').with(
        ensure: 'directory', owner: 'orders-api', group: 'adm', mode: '2750',
      )
    end

    it 'runs the service, restarting it when its config or environment changes' do
      is_expected.to contain_service('orders-api').with(ensure: 'running', enable: true)
        .that_subscribes_to(['File[/etc/orders-api/config.ini]', 'File[/etc/orders-api/environment]'])
        .that_requires(['Package[orders-api]', 'File[/var/log/orders-api]'])
    end

    it 'does not restart the service when the package changes (its maintainer scripts do)' do
      is_expected.not_to contain_package('orders-api').that_notifies('Service[orders-api]')
      is_expected.not_to contain_service('orders-api').that_subscribes_to('Package[orders-api]')
      expect(catalogue.resource('Package', 'orders-api')[:notify]).to be_nil
      expect(Array(catalogue.resource('Service', 'orders-api')[:subscribe]).map(&:to_s))
        .not_to include('Package[orders-api]')
    end
  end

  context 'with defaults only' do
    it { is_expected.to compile.with_all_deps }
    it { is_expected.to contain_package('orders-api').with_ensure('present') }
    it { is_expected.to contain_file('/etc/orders-api/config.ini').with_group('orders-api') }
    it { is_expected.to contain_file('/var/log/orders-api').with_owner('orders-api') }
    it { is_expected.to contain_service('orders-api').with(ensure: 'running', enable: true) }

    it 'writes a config with no sections, so the packaged defaults apply' do
      is_expected.to contain_file('/etc/orders-api/config.ini')
        .with_content(sensitive(/\A(?:#[^\n]*\n)+\z/))
    end
  end

  context 'with bind, port and workers over a [server] section in settings' do
    let(:params) do
      {
        bind: '0.0.0.0',
        port: 9000,
        workers: 4,
        settings: { 'server' => { 'port' => 1, 'timeout' => 30 } },
      }
    end

    it 'lets the parameters win and keeps the other server keys' do
      is_expected.to contain_file('/etc/orders-api/config.ini').with_content(
        sensitive(/^\[server\]\nbind = 0\.0\.0\.0\nport = 9000\ntimeout = 30\nworkers = 4\n\z/),
      )
    end
  end

  context 'with Sensitive settings and environment values' do
    let(:params) do
      {
        settings: { 'database' => { 'password' => sensitive('s3cret') } },
        environment: {
          'API_TOKEN' => sensitive('t0ken'),
          'LOG_LEVEL' => 'info',
          'GREETING' => 'say "hi" to $USER `now` \\o/',
        },
      }
    end

    it { is_expected.to compile.with_all_deps }

    it 'unwraps the secret only in the rendered, still Sensitive, file content' do
      config = catalogue.resource('File', '/etc/orders-api/config.ini')
      expect(config.sensitive_parameters).to include(:content)
      expect(config[:content]).to include("[database]\npassword = s3cret\n")
    end

    it 'quotes and escapes environment values for systemd' do
      is_expected.to contain_file('/etc/orders-api/environment').with_content(sensitive(<<~ENV))
        # Managed by Puppet (microdeploy::service[orders-api]); local changes are overwritten.
        # Read by systemd as the EnvironmentFile of orders-api.service.
        API_TOKEN="t0ken"
        GREETING="say \\"hi\\" to \\$USER \\`now\\` \\\\o/"
        LOG_LEVEL="info"
      ENV
    end
  end

  context 'with another user, config path, log directory and a stopped service' do
    let(:params) do
      {
        user: 'orders',
        config_path: '/etc/orders-api/site.ini',
        log_dir: '/srv/log/orders',
        service_ensure: 'stopped',
        enable: false,
      }
    end

    it { is_expected.to contain_file('/etc/orders-api').with_group('orders') }
    it { is_expected.to contain_file('/etc/orders-api/site.ini').with(owner: 'root', group: 'orders') }
    it { is_expected.to contain_file('/srv/log/orders').with(owner: 'orders', group: 'adm') }

    it do
      is_expected.to contain_service('orders-api').with(ensure: 'stopped', enable: false)
        .that_subscribes_to('File[/etc/orders-api/site.ini]')
    end
  end

  context 'with an epoch in the version and a + in the name' do
    let(:title) { 'orders+api' }
    let(:params) { { ensure: '1:2.0~rc1-3', user: 'orders_api' } }

    it 'names the preferences file as apt reads it and pins the full version' do
      is_expected.to contain_file('/etc/apt/preferences.d/microdeploy-orders_api.pref').with_content(
        %r{^Package: orders\+api\nPin: version 1:2\.0~rc1-3\+deb\*\n},
      )
    end
  end

  context 'on a trixie host' do
    let(:facts) do
      release = { 'full' => '13.2', 'major' => '13', 'minor' => '2' }
      DEBIAN12_FACTS.merge('os' => DEBIAN12_FACTS['os'].merge('release' => release))
    end
    let(:params) { { ensure: '1.4.0-1' } }

    it { is_expected.to contain_package('orders-api').with_ensure('1.4.0-1+deb13') }
  end

  context "with a release's build named" do
    let(:params) { { ensure: '1.4.0-1+deb13' } }

    it 'installs and pins exactly that build' do
      is_expected.to contain_package('orders-api').with_ensure('1.4.0-1+deb13')
      is_expected.to contain_file('/etc/apt/preferences.d/microdeploy-orders-api.pref').with_content(
        /^Pin: version 1\.4\.0-1\+deb13\n/,
      )
    end
  end

  context 'with ensure => latest' do
    let(:params) { { ensure: 'latest' } }

    it 'removes the apt preferences pin' do
      is_expected.to contain_file('/etc/apt/preferences.d/microdeploy-orders-api.pref').with_ensure('absent')
    end

    it { is_expected.to contain_package('orders-api').with_ensure('latest') }
  end

  context 'with a port below 1024' do
    let(:params) { { port: 80 } }

    it { is_expected.to compile.with_all_deps }

    it 'grants CAP_NET_BIND_SERVICE by a unit drop-in, and restarts the service when it changes' do
      is_expected.to contain_file('/etc/systemd/system/orders-api.service.d/microdeploy-port.conf').with(
        ensure: 'file', owner: 'root', mode: '0644',
      ).with_content(/^\[Service\]\nCapabilityBoundingSet=CAP_NET_BIND_SERVICE\nAmbientCapabilities=CAP_NET_BIND_SERVICE\n/)
        .with_content(/^PrivateUsers=no$/)
      is_expected.to contain_service('orders-api')
        .that_subscribes_to('File[/etc/systemd/system/orders-api.service.d/microdeploy-port.conf]')
    end

    it 'has systemd read the drop-in before the service restarts' do
      is_expected.to contain_exec('microdeploy-orders-api-daemon-reload')
        .with(command: '/usr/bin/systemctl daemon-reload', refreshonly: true)
        .that_subscribes_to('File[/etc/systemd/system/orders-api.service.d/microdeploy-port.conf]')
        .that_comes_before('Service[orders-api]')
    end
  end

  context 'with a port below 1024 from the settings, as a string' do
    let(:params) { { settings: { 'server' => { 'port' => '443' } } } }

    it 'grants the capability too' do
      is_expected.to contain_file('/etc/systemd/system/orders-api.service.d/microdeploy-port.conf')
        .with_ensure('file').with_content(/port 443 is below 1024/)
    end
  end

  context 'with a port of 1024 or above' do
    let(:params) { { port: 8001 } }

    it 'removes a drop-in an earlier privileged port left' do
      is_expected.to contain_file('/etc/systemd/system/orders-api.service.d/microdeploy-port.conf')
        .with_ensure('absent')
    end
  end

  context 'with ensure => absent' do
    let(:params) { { ensure: 'absent' } }

    it { is_expected.to compile.with_all_deps }
    it { is_expected.to contain_package('orders-api').with_ensure('absent') }

    it 'leaves /etc/NAME, the logs and the unit alone' do
      is_expected.not_to contain_file('/etc/orders-api')
      is_expected.not_to contain_file('/etc/orders-api/config.ini')
      is_expected.not_to contain_file('/var/log/orders-api')
      is_expected.not_to contain_service('orders-api')
    end
  end

  context 'with ensure => purged' do
    let(:params) { { ensure: 'purged', config_path: '/srv/orders-api.ini' } }

    it { is_expected.to compile.with_all_deps }
    it { is_expected.to contain_package('orders-api').with_ensure('purged') }

    it 'removes /etc/NAME and a config file kept elsewhere, after the package' do
      is_expected.to contain_file('/etc/orders-api').with(ensure: 'absent', force: true)
        .that_requires('Package[orders-api]')
      is_expected.to contain_file('/srv/orders-api.ini').with_ensure('absent')
      is_expected.not_to contain_service('orders-api')
    end
  end

  context 'with invalid input' do
    {
      'a version that is not a Debian version' => { ensure: 'v1.4' },
      'a relative config path' => { config_path: 'config.ini' },
      'a port out of range' => { port: 70_000 },
      'a port given as a string' => { port: '8001' },
      'zero workers' => { workers: 0 },
      'a value that would add an INI line' => { settings: { 'app' => { 'debug' => "false\n[evil]" } } },
      'a section name that would break the INI syntax' => { settings: { 'app]' => { 'x' => 1 } } },
      'a nested hash as a value' => { settings: { 'app' => { 'x' => { 'y' => 1 } } } },
      'an environment name that is not a variable name' => { environment: { 'BAD-NAME' => 'x' } },
      'an unknown service state' => { service_ensure: 'restarted' },
    }.each do |description, bad_params|
      context "(#{description})" do
        let(:params) { bad_params }

        it { is_expected.to compile.and_raise_error(/expects/) }
      end
    end

    context '(a title that is not a Debian package name)' do
      let(:title) { 'Orders_API' }
      let(:params) { { user: 'orders' } }

      it { is_expected.to compile.and_raise_error(/'Orders_API' is not a valid service name/) }
    end
  end
end
