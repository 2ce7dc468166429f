# Every node gets one role. The default is a microservice host; a node (or
# an environment) can name another role in Hiera with the `role` key.
node default {
  $role = lookup('role', Pattern[/\Arole::[a-z][a-z0-9_]*\z/], 'first', 'role::microservice_host')
  include $role
}
