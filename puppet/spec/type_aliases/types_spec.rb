# frozen_string_literal: true

require 'spec_helper'

describe 'Microdeploy::Ensure' do
  it { is_expected.to allow_values('1.4.0-1', '1:2.0~rc1-3', '20251125.17', 'present', 'latest', 'absent', 'purged') }
  it { is_expected.not_to allow_values('v1.4', '', '1.4 0', 'running', 1, :undef) }
end

describe 'Microdeploy::Version' do
  it { is_expected.to allow_values('1.4.0-1', '2:1.0', '0.1+git20251125~1-1') }
  it { is_expected.not_to allow_values('present', 'v1', '1.0 1', '1;reboot', '') }
end

describe 'Microdeploy::Name' do
  it { is_expected.to allow_values('orders-api', 'a1', 'python3.11-app', 'g++x') }
  it { is_expected.not_to allow_values('Orders', 'a', '-orders', 'orders api', 'orders_api', '../etc') }
end

describe 'Microdeploy::Absolutepath' do
  it { is_expected.to allow_values('/etc/orders-api/config.ini', '/var/log/orders-api/', '/') }
  it { is_expected.not_to allow_values('etc/orders-api', '', 'C:\\x') }
end

describe 'Microdeploy::Setting' do
  it { is_expected.to allow_values('text with spaces', '', 8001, 1.5, false, sensitive('s3cret')) }
  it { is_expected.not_to allow_values("two\nlines", "cr\r", [1], { 'a' => 1 }, :undef, sensitive("a\nb")) }
end

describe 'Microdeploy::Settings' do
  it { is_expected.to allow_values({}, { 'app' => { 'debug' => false } }, { 'a.b-c_d' => { 'k.e-y_1' => 'v' } }) }
  it { is_expected.not_to allow_values({ 'app' => 'debug' }, { 'ap p' => {} }, { 'app' => { 'k=v' => 1 } }) }
end

describe 'Microdeploy::Environment' do
  it { is_expected.to allow_values({ 'LOG_LEVEL' => 'info', '_X1' => 2, 'S' => sensitive('x') }) }
  it { is_expected.not_to allow_values({ '1X' => 'a' }, { 'A-B' => 'a' }, { 'A' => ['a'] }) }
end

describe 'Microdeploy::ServiceParams' do
  it 'accepts the SPEC §7 entry' do
    is_expected.to allow_value(
      'ensure' => '1.4.0-1', 'config_path' => '/etc/orders-api/config.ini', 'log_dir' => '/var/log/orders-api',
      'user' => 'orders-api', 'port' => 8001, 'settings' => { 'app' => { 'debug' => false } }
    )
  end

  it { is_expected.to allow_values({}, { 'bind' => '::1', 'workers' => 4, 'environment' => { 'A' => 'b' } }) }
  it { is_expected.not_to allow_values({ 'port' => 0 }, { 'port' => '8001' }, { 'unknown' => 1 }, { 'bind' => '0.0.0.0 ' }) }
end
