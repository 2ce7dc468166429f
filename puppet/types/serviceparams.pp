# @summary One entry of the `microdeploy::services` hash (SPEC §7 Hiera data).
#
# The keys are the parameters of `microdeploy::service`; every key is
# optional and defaults as that define documents. `microdeploy puppet-data`
# writes `ensure`, `config_path`, `log_dir`, `user`, `port`, `bind`, `workers`
# and `settings` into a service's own data file, and only `ensure` into the
# environment and node levels.
#
# @example
#   {
#     'ensure'      => '1.4.0-1',
#     'config_path' => '/etc/orders-api/config.ini',
#     'log_dir'     => '/var/log/orders-api',
#     'user'        => 'orders-api',
#     'port'        => 8001,
#     'settings'    => { 'app' => { 'debug' => false } },
#   }
type Microdeploy::ServiceParams = Struct[{
  Optional[ensure]         => Microdeploy::Ensure,
  Optional[config_path]    => Microdeploy::Absolutepath,
  Optional[log_dir]        => Microdeploy::Absolutepath,
  Optional[user]           => Microdeploy::User,
  Optional[port]           => Integer[1, 65535],
  Optional[bind]           => Microdeploy::Bind,
  Optional[workers]        => Integer[1],
  Optional[settings]       => Microdeploy::Settings,
  Optional[environment]    => Microdeploy::Environment,
  Optional[service_ensure] => Enum['running', 'stopped'],
  Optional[enable]         => Boolean,
}]
