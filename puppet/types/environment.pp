# @summary Environment variables for a service's systemd `EnvironmentFile`.
#
# Names are shell variable names; values are strings, numbers or booleans,
# optionally `Sensitive`. Values are double-quoted and escaped in the file,
# so any string is safe.
#
# @example
#   { 'SENTRY_DSN' => 'https://key@sentry.example.com/1', 'LOG_LEVEL' => 'info' }
type Microdeploy::Environment = Hash[
  Pattern[/\A[A-Za-z_][A-Za-z0-9_]*\z/],
  Variant[String, Integer, Float, Boolean, Sensitive[Variant[String, Integer, Float, Boolean]]],
]
