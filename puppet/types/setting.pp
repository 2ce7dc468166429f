# @summary One value of the site config file: a scalar, or a Sensitive scalar.
#
# Strings cannot contain line breaks, so no value can add a key or a section
# to the INI file. A value wrapped in `Sensitive` (for example a secret
# decrypted by hiera-eyaml and converted with `lookup_options`) is unwrapped
# only inside the template.
#
# @example
#   'postgresql://db.example.com/orders'
type Microdeploy::Setting = Variant[
  Pattern[/\A[^\r\n]*\z/],
  Integer,
  Float,
  Boolean,
  Sensitive[Variant[Pattern[/\A[^\r\n]*\z/], Integer, Float, Boolean]],
]
