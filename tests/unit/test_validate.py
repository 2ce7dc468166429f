"""Unit tests of microdeploy.validate: the one place of input rules."""

from __future__ import annotations

import pytest

from microdeploy import validate
from microdeploy.errors import EXIT_BAD_INPUT, MicrodeployError

# What every rule must refuse, whatever it otherwise allows.
HOSTILE_SUFFIXES = ["\n", "\r", "\x00", "\x1b[31m", "\t", "\x7f", "\u2028", "\u202e"]

GOOD = {
    validate.SERVICE_NAME: "orders-api",
    validate.PACKAGE_NAME: "python3-orders.api+x",
    validate.DEBIAN_VERSION: "1:1.4.0~rc1-2+deb12",
    validate.DEBIAN_REVISION: "42",
    validate.UPSTREAM_VERSION: "1.4.0rc1",
    validate.DEBIAN_RELATION: "nginx (>= 1.22)",
    validate.ARCHITECTURE: "amd64",
    validate.SUITE: "bookworm",
    validate.COMPONENT: "main",
    validate.HOSTNAME: "app1.example.org",
    validate.CERTNAME: "app1.example.org",
    validate.ENVIRONMENT: "production",
    validate.GIT_REF: "release/1.x",
    validate.MAINTAINER: "Jane Doe <jane@example.org>",
    validate.PYTHON: "python3.11",
    validate.HEALTH_PATH: "/health",
    validate.SETTING_KEY: "log_level",
    validate.USER: "deploy",
}


@pytest.mark.parametrize("spec", list(GOOD), ids=lambda spec: spec.pattern.pattern[:20])
def test_every_rule_accepts_its_example(spec: validate.Rule) -> None:
    """Each rule accepts a typical good value unchanged."""
    assert validate.check(spec, "key", GOOD[spec], "test") == GOOD[spec]


@pytest.mark.parametrize("suffix", HOSTILE_SUFFIXES, ids=repr)
@pytest.mark.parametrize("spec", list(GOOD), ids=lambda spec: spec.pattern.pattern[:20])
def test_every_rule_refuses_control_characters(spec: validate.Rule, suffix: str) -> None:
    """A good value with a control or line-breaking character appended is bad input (exit 2)."""
    with pytest.raises(MicrodeployError) as info:
        validate.check(spec, "key", GOOD[spec] + suffix, "test")
    assert info.value.exit_code == EXIT_BAD_INPUT
    assert "control character" in info.value.message


@pytest.mark.parametrize("spec", list(GOOD), ids=lambda spec: spec.pattern.pattern[:20])
def test_every_rule_refuses_very_long_values(spec: validate.Rule) -> None:
    """A value of 100,000 characters is refused and shown cut short."""
    with pytest.raises(MicrodeployError) as info:
        validate.check(spec, "key", "a" * 100_000, "test")
    assert len(info.value.message) < 300
    assert "100000 characters" in info.value.message


@pytest.mark.parametrize(("spec", "value"), [
    (validate.SERVICE_NAME, "Orders"), (validate.SERVICE_NAME, "a" * 33), (validate.SERVICE_NAME, "1api"),
    (validate.SERVICE_NAME, "api-"), (validate.DEBIAN_VERSION, "1.0-"), (validate.DEBIAN_VERSION, "v1.0"),
    (validate.DEBIAN_VERSION, "${binary:Version}"), (validate.DEBIAN_REVISION, "1-2"),
    (validate.UPSTREAM_VERSION, "1.0 "), (validate.UPSTREAM_VERSION, "banana"),
    (validate.DEBIAN_RELATION, "libpq5, evil"), (validate.DEBIAN_RELATION, "${shlibs:Depends}"),
    (validate.HOSTNAME, "-oProxyCommand=x"), (validate.HOSTNAME, "a..b"), (validate.CERTNAME, "App1"),
    (validate.ENVIRONMENT, "production/x"), (validate.GIT_REF, "-main"), (validate.GIT_REF, "a..b"),
    (validate.GIT_REF, "x.lock"), (validate.GIT_REF, "a/.b"), (validate.GIT_REF, "@{-1}x"),
    (validate.MAINTAINER, "${x} <a@b.c>"), (validate.MAINTAINER, 'A "B" <a@b.c>'), (validate.PYTHON, "python2"),
    (validate.HEALTH_PATH, "health"), (validate.HEALTH_PATH, "/h?x=1"), (validate.SUITE, "bookworm/updates"),
    (validate.COMPONENT, "Main"), (validate.USER, "Root"),
])  # fmt: skip
def test_rules_refuse_what_they_do_not_allow(spec: validate.Rule, value: str) -> None:
    """Values outside a rule are refused with the rule's description in the hint."""
    with pytest.raises(MicrodeployError) as info:
        validate.check(spec, "key", value, "test")
    assert info.value.exit_code == EXIT_BAD_INPUT
    assert info.value.hint == f"Use {spec.allowed}"


def test_message_names_key_value_origin_and_reason() -> None:
    """The message shows the key, the value escaped, where it came from and why."""
    with pytest.raises(MicrodeployError) as info:
        validate.check(validate.GIT_REF, "--release-branch", "main\n", "the command line")
    assert info.value.message == ("invalid --release-branch 'main\\n' (from the command line): "
                                  "control character U+000A")


def test_non_strings_are_refused() -> None:
    """A number or list where a string belongs (from TOML) is bad input."""
    with pytest.raises(MicrodeployError, match="not a string"):
        validate.check(validate.SERVICE_NAME, "name", 42, "pyproject.toml")


@pytest.mark.parametrize("value", ["127.0.0.1", "0.0.0.0", "::1", "[::1]", "[2001:db8::1]", "localhost",
                                   "app1.example.org"])
def test_bind_address_accepts_addresses_and_host_names(value: str) -> None:
    """IPv4, IPv6 (bare or bracketed) and host names are bind addresses."""
    assert validate.bind_address("bind", value, "test") == value


@pytest.mark.parametrize("value", ["127.0.0.1\n", "300.1.1.1", "[127.0.0.1]", "fe80::1%eth0", "a b",
                                   "127.0.0.1:80", "", "[::1"])
def test_bind_address_refuses_the_rest(value: str) -> None:
    """Bad addresses, a trailing newline, a zone id or a port are refused."""
    with pytest.raises(MicrodeployError):
        validate.bind_address("bind", value, "test")


@pytest.mark.parametrize("value", ["x ${Newline}Pre-Depends: evil", "${x}", "a\nb", "é" * 81])
def test_free_text_refuses_substitutions_line_breaks_and_length(value: str) -> None:
    """Free text refuses dpkg's `${...}`, line breaks and overlong values."""
    with pytest.raises(MicrodeployError):
        validate.text("description", value, "test", 80)


def test_free_text_keeps_a_plain_dollar() -> None:
    """A `$` that starts no substitution (a price) is fine."""
    assert validate.text("description", "Costs $5 (or %{x})", "test", 80) == "Costs $5 (or %{x})"


@pytest.mark.parametrize(("value", "expected"), [("8000", 8000), (1, 1), (65535, 65535)])
def test_port_accepts_numbers_and_digit_strings(value: object, expected: int) -> None:
    """Ports come as ints (TOML, click) or digit strings (the environment)."""
    assert validate.port("port", value, "test") == expected


@pytest.mark.parametrize("value", [0, 70000, -1, True, "8000\n", "٨٠٠٠", 1.5])
def test_port_refuses_the_rest(value: object) -> None:
    """Out of range, booleans, non-ASCII digits and floats are refused."""
    with pytest.raises(MicrodeployError):
        validate.port("port", value, "test")


def test_relations_split_alternatives() -> None:
    """Each alternative of a relation is checked on its own."""
    assert validate.relations("depends", ["a1 | b2 (>= 1.0)"], "test") == ("a1 | b2 (>= 1.0)",)
    with pytest.raises(MicrodeployError):
        validate.relations("depends", ["a1 | ${evil}"], "test")
