# frozen_string_literal: true

require 'spec_helper'

describe 'microdeploy::apt_source' do
  let(:sources) { '/etc/apt/sources.list.d/microdeploy.sources' }
  let(:keyring) { '/etc/apt/keyrings/microdeploy-archive-keyring.asc' }
  # This source alone, failing when it cannot be fetched, tried again while the lists' lock is held.
  let(:update) do
    'for try in $(seq 150); do out=$(/usr/bin/apt-get update --error-on=any ' \
      "-o Dir::Etc::SourceList=#{sources} -o Dir::Etc::SourceParts=- -o APT::Get::List-Cleanup=0 2>&1); " \
      'status=$?; case "$out" in */var/lib/apt/lists/lock*) sleep 2 ;; *) break ;; esac; done; ' \
      'printf "%s\n" "$out"; exit $status'
  end

  context 'with a location and an armored key' do
    let(:params) { { location: 'https://apt.example.com/microdeploy', key_content: "ARMORED KEY\n" } }

    it { is_expected.to compile.with_all_deps }

    it 'manages the keyring, readable by apt' do
      is_expected.to contain_file(keyring).with(
        ensure: 'file', owner: 'root', group: 'root', mode: '0644', content: "ARMORED KEY\n",
      )
    end

    it 'writes a deb822 source signed by that keyring' do
      is_expected.to contain_file(sources).with(owner: 'root', group: 'root', mode: '0644').with_content(<<~SOURCES)
        # Managed by Puppet (microdeploy::apt_source); local changes are overwritten.
        Types: deb
        URIs: https://apt.example.com/microdeploy
        Suites: bookworm
        Components: main
        Signed-By: #{keyring}
      SOURCES
      is_expected.to contain_file(sources).that_requires("File[#{keyring}]")
    end

    it 'refreshes the package lists of this source only, until a refresh after the last change of a file succeeds' do
      is_expected.to contain_exec('microdeploy-apt-update').with(
        command: "(#{update}) && /usr/bin/touch /var/lib/microdeploy/apt-source.refreshed",
        unless: "/usr/bin/test /var/lib/microdeploy/apt-source.refreshed -nt #{sources} && " \
                "/usr/bin/test /var/lib/microdeploy/apt-source.refreshed -nt #{keyring}",
        provider: 'shell',
      ).that_requires(["File[#{keyring}]", "File[#{sources}]", 'File[/var/lib/microdeploy]'])
      is_expected.not_to contain_exec('microdeploy-apt-update').with_refreshonly(true)
    end
  end

  context 'with the versions the services pin' do
    let(:params) do
      {
        location: 'https://apt.example.com/microdeploy',
        key_content: 'K',
        versions: { 'orders-api' => '1.4.0-1', 'billing-api' => '1:2.0~rc1-3' },
      }
    end

    it { is_expected.to compile.with_all_deps }

    it 'refreshes this source when apt does not know one of them yet' do
      is_expected.to contain_exec('microdeploy-apt-update-for-versions').with(
        command: update,
        provider: 'shell',
        unless: "/usr/bin/apt-cache show --no-all-versions billing-api=1:2.0~rc1-3 2>/dev/null | /bin/grep -q '^Package:' && " \
                "/usr/bin/apt-cache show --no-all-versions orders-api=1.4.0-1 2>/dev/null | /bin/grep -q '^Package:'",
      ).that_requires('Exec[microdeploy-apt-update]')
      is_expected.not_to contain_exec('microdeploy-apt-update-for-versions').with_refreshonly(true)
    end
  end

  context 'with no pinned versions' do
    let(:params) { { location: 'https://apt.example.com/microdeploy', key_content: 'K' } }

    it { is_expected.not_to contain_exec('microdeploy-apt-update-for-versions') }
  end

  context 'with a version that is not a Debian version' do
    let(:params) { { location: 'https://apt.example.com/m', key_content: 'K', versions: { 'orders-api' => '1; rm -rf /' } } }

    it { is_expected.to compile.and_raise_error(/expects/) }
  end

  context 'with a key source, a binary keyring and a flat repository' do
    let(:params) do
      {
        location: 'file:/srv/microdeploy-repo',
        suite: './',
        key_source: 'puppet:///modules/profile/microdeploy.gpg',
        keyring: '/usr/share/keyrings/microdeploy-archive-keyring.gpg',
      }
    end

    it { is_expected.to compile.with_all_deps }

    it do
      is_expected.to contain_file('/usr/share/keyrings/microdeploy-archive-keyring.gpg')
        .with_source('puppet:///modules/profile/microdeploy.gpg')
    end

    it 'omits Components, which a flat repository has none of' do
      is_expected.to contain_file(sources)
        .with_content(%r{^Suites: \./\nSigned-By: /usr/share/keyrings/microdeploy-archive-keyring\.gpg\n\z})
      is_expected.not_to contain_file(sources).with_content(/^Components:/)
    end
  end

  context 'with several components and another suite' do
    let(:params) { { location: 'https://apt.example.com/m', suite: 'stable', components: 'main extra', key_content: 'K' } }

    it { is_expected.to contain_file(sources).with_content(/^Suites: stable\nComponents: main extra\n/) }
  end

  context 'without a key' do
    let(:params) { { location: 'https://apt.example.com/microdeploy' } }

    it { is_expected.to compile.and_raise_error(/exactly one of apt_key_source and apt_key_content/) }
  end

  context 'with both a key source and key content' do
    let(:params) { { location: 'https://apt.example.com/m', key_source: '/root/k.asc', key_content: 'K' } }

    it { is_expected.to compile.and_raise_error(/exactly one of/) }
  end

  context 'with a keyring whose format apt cannot tell' do
    let(:params) { { location: 'https://apt.example.com/m', key_content: 'K', keyring: '/etc/apt/keyrings/m.key' } }

    it { is_expected.to compile.and_raise_error(/must end in \.asc .* or \.gpg/) }
  end

  context 'with a location that is not a URI' do
    let(:params) { { location: 'apt.example.com/m', key_content: 'K' } }

    it { is_expected.to compile.and_raise_error(/expects/) }
  end

  context 'on a trixie host' do
    let(:facts) do
      distro = DEBIAN12_FACTS['os']['distro'].merge('codename' => 'trixie')
      DEBIAN12_FACTS.merge('os' => DEBIAN12_FACTS['os'].merge('distro' => distro))
    end
    let(:params) { { location: 'https://apt.example.com/microdeploy', key_content: 'K' } }

    it 'names the suite of the host release, from its codename fact' do
      is_expected.to contain_file(sources).with_content(/^Suites: trixie$/)
    end
  end

  context 'with a suite set' do
    let(:params) { { location: 'https://apt.example.com/microdeploy', key_content: 'K', suite: 'trixie' } }

    it 'uses it whatever the host runs' do
      is_expected.to contain_file(sources).with_content(/^Suites: trixie$/)
    end
  end

  context 'on a host without a codename fact' do
    let(:facts) { DEBIAN12_FACTS.merge('os' => DEBIAN12_FACTS['os'].reject { |key, _| key == 'distro' }) }
    let(:params) { { location: 'https://apt.example.com/microdeploy', key_content: 'K' } }

    it { is_expected.to compile.and_raise_error(/no os.distro.codename fact; set microdeploy::apt_suite/) }
  end
end
