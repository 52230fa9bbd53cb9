"""Loading the inventory file: every kind of mistake is reported, in words, with its path and line."""

from __future__ import annotations

import os
import re
import textwrap
from pathlib import Path

import pytest

from bot.commands import CommandNames
from bot.config import ConfigError, ConfigIssue, load_inventory, redact_url
from bot.durations import format_duration, parse_duration

DATA = Path(__file__).parent / "data" / "config"

# A valid file; every case below is this with one mistake. Line numbers in the
# table count from the first line of each text.
BASE = """\
defaults: {username: lasthop, key_file: id_test, known_hosts: known_hosts}
routers:
  r1: {driver: frr, address: 198.18.0.11, lan: [192.0.2.0/27]}
hosts:
  web1: {address: 192.0.2.2}
  web2: {address: 192.0.2.3}
services:
  www-a: {prefix: 198.51.100.32/27, router: r1, hosts: [web1, web2], vips: [198.51.100.33]}
"""

PYDANTIC_NOISE = ("Traceback", "validation error", "For further information", "input_value", "pydantic")


def write(tmp_path: Path, text: str) -> Path:
    # The key and known_hosts files the texts name, relative to the config file.
    (tmp_path / "id_test").write_text("not a real key\n")
    (tmp_path / "known_hosts").write_text("")
    path = tmp_path / "lasthop.yaml"
    path.write_text(textwrap.dedent(text))
    return path


def load_error(path: Path | None, env: dict[str, str] | None = None) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        load_inventory(path, env or {})
    return info.value


# (id, yaml text, expected path, expected line, fragment of the message)
MISTAKES: list[tuple[str, str, str, int | None, str]] = [
    (
        "unknown key with a suggestion",
        """\
        defaults: {username: lasthop, key_file: id_test, known_hosts: known_hosts}
        routers:
          r1: {driver: frr, address: 198.18.0.11, lan: [192.0.2.0/27]}
        hosts:
          web1: {address: 192.0.2.2}
          web2:
            address: 192.0.2.3
            tag: [rack1]
        services:
          www-a: {prefix: 198.51.100.32/27, router: r1, hosts: [web1, web2], vips: [198.51.100.33]}
        """,
        "hosts.web2", 8, "unknown key 'tag' (did you mean 'tags'?)",
    ),
    (
        "unknown top-level key",
        BASE + "polcy: {two_person_rule: false}\n",
        "", 9, "unknown key 'polcy' (did you mean 'policy'?)",
    ),
    (
        "missing required key",
        """\
        defaults: {username: lasthop, key_file: id_test, known_hosts: known_hosts}
        routers:
          r1: {driver: frr, address: 198.18.0.11, lan: [192.0.2.0/27]}
        hosts:
          web1: {address: 192.0.2.2}
          web2: {address: 192.0.2.3}
        services:
          www-a:
            router: r1
            hosts: [web1, web2]
            vips: [198.51.100.33]
        """,
        "services.www-a", 8, "missing required key 'prefix'",
    ),
    (
        "wrong type: text for a number",
        """\
        defaults: {username: lasthop, key_file: id_test, known_hosts: known_hosts}
        routers:
          r1:
            driver: frr
            address: 198.18.0.11
            port: twenty-two
            lan: [192.0.2.0/27]
        hosts:
          web1: {address: 192.0.2.2}
          web2: {address: 192.0.2.3}
        services:
          www-a: {prefix: 198.51.100.32/27, router: r1, hosts: [web1, web2], vips: [198.51.100.33]}
        """,
        "routers.r1.port", 6, "must be a whole number",
    ),
    (
        "wrong type: text for a list",
        """\
        defaults: {username: lasthop, key_file: id_test, known_hosts: known_hosts}
        routers:
          r1: {driver: frr, address: 198.18.0.11, lan: [192.0.2.0/27]}
        hosts:
          web1: {address: 192.0.2.2}
          web2: {address: 192.0.2.3}
        services:
          www-a:
            prefix: 198.51.100.32/27
            router: r1
            hosts: web1
            vips: [198.51.100.33]
        """,
        "services.www-a.hosts", 11, "must be a list",
    ),
    (
        "wrong type: not true or false",
        BASE.replace("vips: [198.51.100.33]}", "vips: [198.51.100.33], auto_failover: maybe}"),
        "services.www-a.auto_failover", 8, "must be true or false",
    ),
    (
        "unknown driver",
        BASE.replace("driver: frr", "driver: cisco"),
        "routers.r1.driver", 3,
        "must be one of arista_eos, cisco_ios, frr, juniper_junos, linux (did you mean 'cisco_ios'?)",
    ),
    (
        "bad duration",
        """\
        defaults:
          username: lasthop
          key_file: id_test
          known_hosts: known_hosts
          connect_timeout: 5 sec
        routers:
          r1: {driver: frr, address: 198.18.0.11, lan: [192.0.2.0/27]}
        hosts:
          web1: {address: 192.0.2.2}
          web2: {address: 192.0.2.3}
        services:
          www-a: {prefix: 198.51.100.32/27, router: r1, hosts: [web1, web2], vips: [198.51.100.33]}
        """,
        "defaults.connect_timeout", 5, "'5 sec' is not a duration: use e.g. 500ms, 5s",
    ),
    (
        "zero duration",
        BASE.replace("vips: [198.51.100.33]}", "vips: [198.51.100.33], check: {interval: 0}}"),
        "services.www-a.check.interval", 8, "must be greater than zero",
    ),
    (
        "bad IP address",
        BASE.replace("192.0.2.3}", "192.0.2.300}"),
        "hosts.web2.address", 6, "'192.0.2.300' is not an IPv4 address",
    ),
    (
        "IPv6 VIP",
        BASE.replace("vips: [198.51.100.33]", "vips: ['2001:db8::1']"),
        "services.www-a.vips[0]", 8, "2001:db8::1 is an IPv6 address: only IPv4 is supported",
    ),
    (
        "prefix with host bits set",
        BASE.replace("prefix: 198.51.100.32/27", "prefix: 198.51.100.33/27"),
        "services.www-a.prefix", 8, "198.51.100.33/27 has host bits set; did you mean 198.51.100.32/27?",
    ),
    (
        "VIP outside the prefix",
        """\
        defaults: {username: lasthop, key_file: id_test, known_hosts: known_hosts}
        routers:
          r1: {driver: frr, address: 198.18.0.11, lan: [192.0.2.0/27]}
        hosts:
          web1: {address: 192.0.2.2}
          web2: {address: 192.0.2.3}
        services:
          www-a:
            prefix: 198.51.100.32/27
            router: r1
            hosts: [web1, web2]
            vips:
              - 198.51.100.33
              - 198.51.100.99
        """,
        "services.www-a.vips[1]", 14, "198.51.100.99 is outside the prefix 198.51.100.32/27",
    ),
    (
        "VIPs missing for a /27",
        BASE.replace(", vips: [198.51.100.33]", ""),
        "services.www-a", 8, "missing required key 'vips' (only a /32 prefix may leave it out)",
    ),
    (
        "overlapping prefixes",
        BASE + "  www-b: {prefix: 198.51.100.48/28, router: r1, hosts: [web2, web1], vips: [198.51.100.49]}\n",
        "services.www-b.prefix", 9, "198.51.100.48/28 overlaps 198.51.100.32/27 of service www-a",
    ),
    (
        "unknown router",
        BASE.replace("router: r1", "router: r9"),
        "services.www-a.router", 8, "unknown router 'r9' (known: r1)",
    ),
    (
        "unknown host",
        """\
        defaults: {username: lasthop, key_file: id_test, known_hosts: known_hosts}
        routers:
          r1: {driver: frr, address: 198.18.0.11, lan: [192.0.2.0/27]}
        hosts:
          web1: {address: 192.0.2.2}
          web2: {address: 192.0.2.3}
        services:
          www-a:
            prefix: 198.51.100.32/27
            router: r1
            hosts:
              - web1
              - db1
            vips: [198.51.100.33]
        """,
        "services.www-a.hosts[1]", 13, "unknown host 'db1' (known: web1, web2)",
    ),
    (
        "host listed twice in a service",
        BASE.replace("hosts: [web1, web2]", "hosts: [web1, web2, web1]"),
        "services.www-a.hosts[2]", 8, "web1 is listed twice (also hosts[0])",
    ),
    (
        "duplicate YAML key",
        """\
        defaults: {username: lasthop, key_file: id_test, known_hosts: known_hosts}
        routers:
          r1: {driver: frr, address: 198.18.0.11, lan: [192.0.2.0/27]}
        hosts:
          web1:
            address: 192.0.2.2
            address: 192.0.2.4
          web2: {address: 192.0.2.3}
        services:
          www-a: {prefix: 198.51.100.32/27, router: r1, hosts: [web1, web2], vips: [198.51.100.33]}
        """,
        "hosts.web1", 7, "duplicate key 'address' (first at line 6)",
    ),
    (
        "two hosts with the same address",
        BASE.replace("192.0.2.3}", "192.0.2.2}"),
        "hosts.web2.address", 6, "192.0.2.2 is also the address of web1",
    ),
    (
        "plain password",
        BASE.replace("lan: [192.0.2.0/27]}", "lan: [192.0.2.0/27], password: hunter2}"),
        "routers.r1.password", 3, "plain secrets are not allowed in the config: use ${VAR} or password_file",
    ),
    (
        "password from a missing environment variable",
        BASE.replace("lan: [192.0.2.0/27]}", "lan: [192.0.2.0/27], password: '${R1_PASSWORD}'}"),
        "routers.r1.password", 3, "environment variable R1_PASSWORD is not set",
    ),
    (
        "password written inside state_url",
        "state_url: postgresql+psycopg://lasthop:hunter2@db.example.net/lasthop\n" + BASE,
        "state_url", 1, "a password written inside state_url is not allowed",
    ),
    (
        "check timeout not shorter than interval",
        BASE.replace("vips: [198.51.100.33]}", "vips: [198.51.100.33], check: {interval: 2s, timeout: 2s}}"),
        "services.www-a.check.timeout", 8, "timeout 2s must be shorter than interval 2s",
    ),
    (
        "fast_interval longer than interval",
        BASE.replace("vips: [198.51.100.33]}", "vips: [198.51.100.33], check: {fast_interval: 10s}}"),
        "services.www-a.check.fast_interval", 8, "fast_interval 10s must not be longer than interval 5s",
    ),
    (
        "next hop outside the router's lan",
        BASE.replace("192.0.2.3}", "192.0.2.40}"),
        "services.www-a.hosts[1]", 8,
        "next hop 192.0.2.40 of web2 is outside r1's lan 192.0.2.0/27: the router cannot reach it",
    ),
    (
        "revert_timer on an frr router",
        BASE.replace("lan: [192.0.2.0/27]}", "lan: [192.0.2.0/27], revert_timer: 5m}"),
        "routers.r1.revert_timer", 3, "revert_timer is only for arista_eos, cisco_ios, juniper_junos routers, not frr",
    ),
    (
        "revert_timer not in whole minutes",
        BASE.replace("driver: frr", "driver: cisco_ios").replace(
            "lan: [192.0.2.0/27]}", "lan: [192.0.2.0/27], revert_timer: 90s}"
        ),
        "routers.r1.revert_timer", 3, "must be a whole number of minutes from 1m to 120m",
    ),
    (
        # Junos' commit confirmed counts whole minutes.
        "revert_timer not in whole minutes on junos",
        BASE.replace("driver: frr", "driver: juniper_junos").replace(
            "lan: [192.0.2.0/27]}", "lan: [192.0.2.0/27], save_config: false, revert_timer: 90s}"
        ),
        "routers.r1.revert_timer", 3, "must be a whole number of minutes from 1m to 65535m",
    ),
    (
        # EOS's commit timer wraps at a day.
        "revert_timer of a day on eos",
        BASE.replace("driver: frr", "driver: arista_eos").replace(
            "lan: [192.0.2.0/27]}", "lan: [192.0.2.0/27], revert_timer: 24h}"
        ),
        "routers.r1.revert_timer", 3, "must be a whole number of seconds from 1s to 86399s",
    ),
    (
        # A Junos commit is already persistent: there is no configuration to save.
        "save_config on junos",
        BASE.replace("driver: frr", "driver: juniper_junos").replace(
            "lan: [192.0.2.0/27]}", "lan: [192.0.2.0/27], save_config: true}"
        ),
        "routers.r1.save_config", 3, "a juniper_junos router has no configuration to save",
    ),
    (
        "save_config on a linux router",
        BASE.replace("driver: frr", "driver: linux").replace(
            "lan: [192.0.2.0/27]}", "lan: [192.0.2.0/27], save_config: true}"
        ),
        "routers.r1.save_config", 3, "a linux router has no configuration to save: set save_config: false",
    ),
    (
        "bad name",
        BASE.replace("  web2: {address: 192.0.2.3}\n", "  web2: {address: 192.0.2.3}\n  Web_3: {address: 192.0.2.4}\n"),
        "hosts.Web_3", 7, "bad name 'Web_3': use 1-32 lowercase letters, digits, '-' or '_'",
    ),
    (
        "router without known_hosts",
        """\
        defaults: {username: lasthop, key_file: id_test}
        routers:
          r1: {driver: frr, address: 198.18.0.11, lan: [192.0.2.0/27]}
        hosts:
          web1: {address: 192.0.2.2, ssh: {known_hosts: known_hosts}}
          web2: {address: 192.0.2.3, ssh: {known_hosts: known_hosts}}
        services:
          www-a: {prefix: 198.51.100.32/27, router: r1, hosts: [web1, web2], vips: [198.51.100.33]}
        """,
        "routers.r1", 3, "no known_hosts: set it here or in defaults (host keys are always checked)",
    ),
    (
        "no credentials at all",
        """\
        defaults: {username: lasthop, known_hosts: known_hosts}
        routers:
          r1: {driver: frr, address: 198.18.0.11, lan: [192.0.2.0/27], key_file: id_test}
        hosts:
          web1: {address: 192.0.2.2, ssh: {key_file: id_test}}
          web2: {address: 192.0.2.3}
        services:
          www-a: {prefix: 198.51.100.32/27, router: r1, hosts: [web1, web2], vips: [198.51.100.33]}
        """,
        "hosts.web2", 6, "no key_file, password or password_file",
    ),
    (
        "known_hosts file that does not exist",
        BASE.replace("known_hosts: known_hosts", "known_hosts: /nonexistent/lasthop/known_hosts"),
        "defaults.known_hosts", 1, "known_hosts /nonexistent/lasthop/known_hosts does not exist",
    ),
    (
        "not YAML: a tab in the indentation",
        BASE.replace("  web2: {address", "\tweb2: {address"),
        "", 6, "not valid YAML: found character '\\t' that cannot start any token (indent with spaces",
    ),
    (
        "not YAML: bad indentation",
        """\
        routers:
          r1:
            driver: frr
           address: 198.18.0.11
        """,
        "", 4, "not valid YAML",
    ),
    (
        "top level is a list",
        "- routers\n- hosts\n",
        "", 1, "the top level must be a mapping (routers:, hosts:, services:), not a list",
    ),
    (
        "empty file",
        "# nothing here yet\n",
        "", 1, "the file is empty",
    ),
    (
        "a Slack built-in command name",
        BASE + "slack:\n  commands:\n    umbrella: /lasthop\n    status: /status\n",
        "slack.commands.status", 12,
        "bad command name '/status': /status is one of Slack's own commands, and Slack refuses an app that lists it",
    ),
    (
        "a command name Slack cannot install",
        BASE + "slack:\n  commands: {failover: /Fail-Over}\n",
        "slack.commands.failover", 10,
        "bad command name '/Fail-Over': use lowercase letters, digits, '-' or '_' after the '/'",
    ),
    (
        "a command name without its slash",
        BASE + "slack:\n  commands: {umbrella: lasthop}\n",
        "slack.commands.umbrella", 10, "bad command name 'lasthop': a command name starts with '/'",
    ),
    (
        "a command name that is not text",
        BASE + "slack:\n  commands:\n    status: [/vip-status]\n",
        "slack.commands.status", 11, "a command name is text like /lasthop",
    ),
    (
        "two commands with one name",
        BASE + "slack:\n  commands:\n    failover: /move\n    status: /move\n",
        "slack.commands.status", 12, "/move is also the failover command: each needs its own name",
    ),
    (
        "a command named like another's default",
        BASE + "slack:\n  commands:\n    umbrella: /failover\n",
        "slack.commands.umbrella", 11, "/failover is also the failover command: each needs its own name",
    ),
    (
        "an unknown command key",
        BASE + "slack:\n  commands:\n    maintenance: /maint\n",
        "slack.commands", 11, "unknown key 'maintenance'",
    ),
    (
        "empty section",
        BASE.replace("routers:\n  r1: {driver: frr, address: 198.18.0.11, lan: [192.0.2.0/27]}\n", "routers: {}\n")
        .replace("router: r1", "router: r1x"),
        "routers", 2, "must not be empty",
    ),
]


@pytest.mark.parametrize(
    ("text", "path", "line", "fragment"),
    [pytest.param(text, path, line, fragment, id=name) for name, text, path, line, fragment in MISTAKES],
)
def test_each_mistake_is_reported_with_path_and_line(
    tmp_path: Path, text: str, path: str, line: int | None, fragment: str
) -> None:
    error = load_error(write(tmp_path, text))
    matching = [i for i in error.errors if i.path == path and i.line == line and fragment in i.message]
    assert matching, f"expected {path!r} line {line} with {fragment!r}, got:\n{error}"
    issue = matching[0]
    where = f"lasthop.yaml:{line}:" + (f" {path}:" if path else "")
    assert f"{where} {issue.message}" in str(error).splitlines()
    assert len(str(error).splitlines()) == len(error.errors)
    for noise in PYDANTIC_NOISE:
        assert noise not in str(error)


def test_the_table_is_big_enough_and_each_case_has_only_its_own_mistake(tmp_path: Path) -> None:
    assert len(MISTAKES) >= 20
    for name, text, *_ in MISTAKES:
        case_dir = tmp_path / re.sub(r"[^a-z0-9]+", "_", name)
        case_dir.mkdir()
        if name == "empty section":
            continue  # an empty routers section also leaves the service's router unknown
        error = load_error(write(case_dir, text))
        assert len(error.errors) == 1, f"{name}:\n{error}"


def test_the_base_file_is_valid(tmp_path: Path) -> None:
    inv = load_inventory(write(tmp_path, BASE), {})
    assert list(inv.services) == ["www-a"]
    # Relative key paths are taken from the config file's directory.
    assert inv.routers["r1"].ssh.key_file == tmp_path / "id_test"


@pytest.mark.parametrize(
    ("driver", "timer", "seconds", "saves"),
    [("juniper_junos", "5m", 300, False), ("arista_eos", "90s", 90, True), ("arista_eos", "5m", 300, True)],
)
def test_junos_and_eos_routers_load_with_a_revert_timer(
    tmp_path: Path, driver: str, timer: str, seconds: int, saves: bool
) -> None:
    text = BASE.replace("driver: frr", f"driver: {driver}").replace(
        "lan: [192.0.2.0/27]}", f"lan: [192.0.2.0/27], revert_timer: {timer}}}"
    )
    router = load_inventory(write(tmp_path, text), {}).routers["r1"]
    assert router.driver == driver
    assert router.revert_seconds == seconds
    assert router.save_config is saves  # unset, it follows the driver: EOS saves, Junos has nothing to


def test_slack_command_names_load_and_default(tmp_path: Path) -> None:
    assert load_inventory(write(tmp_path, BASE), {}).slack.commands == CommandNames()
    text = BASE + "slack:\n  commands: {umbrella: /lh, status: /who-serves}\n"
    commands = load_inventory(write(tmp_path, text), {}).slack.commands
    assert commands == CommandNames(umbrella="/lh", failover="/failover", status="/who-serves")
    # config/example.yaml says its commands are the defaults.
    example = load_inventory(Path(__file__).parents[2] / "config" / "example.yaml", {"LASTHOP_EDGE_PASSWORD": "x"},
                             check_files=False)
    assert example.slack.commands == CommandNames()


def test_missing_file(tmp_path: Path) -> None:
    error = load_error(tmp_path / "nope.yaml")
    assert error.errors == [ConfigIssue("", None, f"{tmp_path / 'nope.yaml'} does not exist "
                                                   "(pass the file's path or set LASTHOP_CONFIG)")]
    assert str(error).startswith("nope.yaml: ")
    assert "Traceback" not in str(error)


def test_a_directory_is_not_a_file(tmp_path: Path) -> None:
    error = load_error(tmp_path)
    assert "is a directory" in str(error)


def test_zero_byte_file(tmp_path: Path) -> None:
    path = tmp_path / "lasthop.yaml"
    path.write_text("")
    assert "the file is empty" in str(load_error(path))


def test_many_mistakes_are_all_reported_in_line_order(tmp_path: Path) -> None:
    text = """\
    defaults: {username: lasthop, key_file: id_test, known_hosts: known_hosts, command_timeout: soon}
    routers:
      r1: {driver: frr, address: 198.18.0.11, lan: [192.0.2.0/27], revert_timer: 5m}
      r2: {driver: linux, adress: 198.18.0.12, lan: [192.0.2.0/27]}
    hosts:
      web1: {address: 192.0.2.2}
      web2: {address: 192.0.2.40}
      web3: {address: 192.0.2.2}
    services:
      www-a: {prefix: 198.51.100.33/27, router: r1, hosts: [web1, web2], vips: [198.51.100.33]}
      www-b: {prefix: 198.51.100.64/27, router: r3, hosts: [web1, web1], vips: [198.51.100.99]}
      www-c: {prefix: 198.51.100.96/27, router: r1, hosts: [web3, web4], vips: [198.51.100.97]}
    """
    error = load_error(write(tmp_path, text))
    got = {(i.path, i.line) for i in error.errors}
    expected = {
        ("defaults.command_timeout", 1),
        ("routers.r1.revert_timer", 3),
        ("routers.r2", 4),  # unknown key 'adress'
        ("hosts.web3.address", 8),
        ("services.www-a.prefix", 10),
        ("services.www-a.hosts[1]", 10),  # web2 is outside r1's lan
        ("services.www-b.router", 11),
        ("services.www-b.hosts[1]", 11),
        ("services.www-b.vips[0]", 11),
        ("services.www-c.hosts[1]", 12),
    }
    assert expected <= got, str(error)
    lines = [i.line or 0 for i in error.errors]
    assert lines == sorted(lines)
    assert len(str(error).splitlines()) == len(error.errors)
    assert "missing required key 'address'" in str(error)
    assert "unknown key 'adress' (did you mean 'address'?)" in str(error)


def test_one_host_is_a_warning_not_an_error(tmp_path: Path) -> None:
    inv = load_inventory(write(tmp_path, BASE.replace("hosts: [web1, web2]", "hosts: [web1]")), {})
    assert [(w.path, w.line) for w in inv.warnings] == [("services.www-a.hosts", 8)]
    assert "nowhere to fail over to" in inv.warnings[0].message
    assert "nowhere to fail over to" in inv.describe()


def test_warnings_travel_with_errors(tmp_path: Path) -> None:
    text = BASE.replace("hosts: [web1, web2]", "hosts: [web1]").replace("router: r1", "router: r9")
    error = load_error(write(tmp_path, text))
    assert [w.path for w in error.warnings] == ["services.www-a.hosts"]


def test_merge_keys_may_override_without_being_duplicates(tmp_path: Path) -> None:
    text = BASE + textwrap.indent(textwrap.dedent("""\
        www-b:
          <<: {router: r1, hosts: [web2, web1], check: {kind: http, port: 80}}
          prefix: 198.51.100.64/27
          vips: [198.51.100.65]
          hosts: [web1, web2]
        """), "  ")
    inv = load_inventory(write(tmp_path, text), {})
    assert inv.services["www-b"].hosts == ("web1", "web2")
    assert inv.services["www-b"].router == "r1"


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("500ms", 0.5), ("5s", 5.0), ("1m", 60.0), ("15m", 900.0), ("1h", 3600.0), ("1h30m", 5400.0),
     ("2.5s", 2.5), (7, 7.0), (0.25, 0.25), ("10", 10.0)],
)
def test_durations(text: object, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["5 sec", "", "-5s", "1d", True, None, float("nan"), [5], "m5"])
def test_bad_durations(text: object) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(text)


@pytest.mark.parametrize(("seconds", "text"), [(0.5, "500ms"), (5, "5s"), (900, "15m"), (3600, "1h"), (90, "1m30s")])
def test_format_duration_reads_back(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text
    assert parse_duration(text) == seconds


def test_negative_and_zero_durations(tmp_path: Path) -> None:
    text = BASE.replace("vips: [198.51.100.33]}", "vips: [198.51.100.33], check: {timeout: -1}}")
    error = load_error(write(tmp_path, text))
    assert [(i.path, i.message) for i in error.errors] == [
        ("services.www-a.check.timeout", "must be greater than zero")
    ]
    # A hold-down of zero means none; that one may be zero.
    inv = load_inventory(write(tmp_path, BASE + "policy: {auto_failover: {hold_down: 0}}\n"), {})
    assert inv.policy.auto_failover.hold_down == 0.0


def test_flapping_needs_two_changes_and_a_window(tmp_path: Path) -> None:
    error = load_error(write(tmp_path, BASE + "policy: {flapping: {changes: 1, window: 0}}\n"))
    assert [(i.path, i.message) for i in error.errors] == [
        ("policy.flapping.changes", "must be at least 2"),
        ("policy.flapping.window", "must be greater than zero"),
    ]
    inv = load_inventory(write(tmp_path, BASE + "policy: {flapping: {changes: 8, window: 1m}}\n"), {})
    assert (inv.policy.flapping.changes, inv.policy.flapping.window) == (8, 60.0)


def test_path_comes_from_the_environment_then_the_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "elsewhere").mkdir()
    path = write(tmp_path / "elsewhere", BASE)
    inv = load_inventory(None, {"LASTHOP_CONFIG": str(path)})
    assert inv.source == path
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("lab.state.DEFAULT_STATE_ROOT", tmp_path / "no-lab")  # whatever labs this machine runs
    error = load_error(None, {})
    assert "config/lasthop.yaml (in " in str(error) and "no inventory found" in str(error)
    (tmp_path / "config").mkdir()
    write(tmp_path / "config", BASE)
    assert load_inventory(None, {}).source == Path("config/lasthop.yaml")


def test_check_files_false_skips_the_file_checks(tmp_path: Path) -> None:
    path = tmp_path / "lasthop.yaml"
    path.write_text(BASE)  # no key or known_hosts file next to it
    assert len(load_error(path).errors) == 2
    inv = load_inventory(path, {}, check_files=False)
    assert inv.hosts["web1"].ssh.known_hosts == tmp_path / "known_hosts"


# -- secrets --------------------------------------------------------------------------------------

ENV_SECRET = "Env-S3cret-Value!"
FILE_SECRET = "File-S3cret-Value"
DB_SECRET = "db/pa@ss:word"


def secret_text(tmp_path: Path) -> str:
    (tmp_path / "web2.pass").write_text(FILE_SECRET + "\n")
    return (
        "state_url: postgresql+psycopg://lasthop:${DB_PASSWORD}@db.example.net/lasthop\n"
        + BASE.replace("lan: [192.0.2.0/27]}", "lan: [192.0.2.0/27], password: '${R1_PASSWORD}'}")
        .replace("web2: {address: 192.0.2.3}", "web2: {address: 192.0.2.3, ssh: {password_file: web2.pass}}")
    )


def assert_no_secret(text: str) -> None:
    for secret in (ENV_SECRET, FILE_SECRET, DB_SECRET, "db%2Fpa%40ss%3Aword", "hunter2"):
        assert secret not in text


def test_secrets_are_resolved_and_never_shown(tmp_path: Path) -> None:
    env = {"R1_PASSWORD": ENV_SECRET, "DB_PASSWORD": DB_SECRET}
    inv = load_inventory(write(tmp_path, secret_text(tmp_path)), env)
    assert inv.routers["r1"].ssh.password == ENV_SECRET
    assert inv.hosts["web2"].ssh.password == FILE_SECRET  # trailing newline dropped
    # The password is percent-encoded so that '@', '/' and ':' in it keep the URL parseable.
    assert inv.state_url == "postgresql+psycopg://lasthop:db%2Fpa%40ss%3Aword@db.example.net/lasthop"
    assert inv.state_url_redacted == "postgresql+psycopg://lasthop:***@db.example.net/lasthop"
    for shown in (repr(inv), str(inv), inv.describe(), repr(inv.routers["r1"]), repr(inv.hosts["web2"])):
        assert_no_secret(shown)


def test_secrets_never_appear_in_errors(tmp_path: Path) -> None:
    env = {"R1_PASSWORD": ENV_SECRET, "DB_PASSWORD": DB_SECRET}
    text = secret_text(tmp_path).replace("router: r1", "router: r9") + "  www-b: {prefix: 198.51.100.64/33}\n"
    text = text.replace("web1: {address: 192.0.2.2}", "web1: {address: 192.0.2.2, ssh: {password: hunter2}}")
    error = load_error(write(tmp_path, text), env)
    assert len(error.errors) >= 3
    assert any("plain secrets are not allowed" in i.message for i in error.errors)
    for shown in (str(error), repr(error), *map(str, error.errors), *map(repr, error.errors)):
        assert_no_secret(shown)


def test_a_plain_password_in_state_url_is_not_echoed(tmp_path: Path) -> None:
    text = "state_url: postgresql://lasthop:hunter2@db.example.net/lasthop\n" + BASE
    assert_no_secret(str(load_error(write(tmp_path, text))))
    text = "state_url: postgresql://lasthop@db.example.net/lasthop?password=hunter2\n" + BASE
    assert_no_secret(str(load_error(write(tmp_path, text))))


def test_a_whole_state_url_may_come_from_the_environment(tmp_path: Path) -> None:
    env = {"DATABASE_URL": f"postgresql://lasthop:{ENV_SECRET}@db.example.net/lasthop"}
    inv = load_inventory(write(tmp_path, "state_url: ${DATABASE_URL}\n" + BASE), env)
    assert inv.state_url == env["DATABASE_URL"]
    assert inv.state_url_redacted == "postgresql://lasthop:***@db.example.net/lasthop"
    assert_no_secret(repr(inv) + inv.describe())


def test_a_state_url_that_is_not_a_database(tmp_path: Path) -> None:
    error = load_error(write(tmp_path, "state_url: http://db.example.net/\n" + BASE))
    assert [(i.path, i.line) for i in error.errors] == [("state_url", 1)]


def test_empty_environment_variable_and_empty_password_file(tmp_path: Path) -> None:
    text = secret_text(tmp_path).replace("lasthop:${DB_PASSWORD}@", "lasthop@")
    (tmp_path / "web2.pass").write_text("\n")
    error = load_error(write(tmp_path, text), {"R1_PASSWORD": ""})
    assert sorted(i.message for i in error.errors) == [
        "environment variable R1_PASSWORD is empty",
        f"password_file {tmp_path / 'web2.pass'} is empty",
    ]


def test_a_password_file_that_is_no_plain_file_or_far_too_big_is_refused_unread(tmp_path: Path) -> None:
    """A FIFO would block the loader and /dev/zero would never end: neither is read."""
    text = secret_text(tmp_path).replace("lasthop:${DB_PASSWORD}@", "lasthop@")
    pass_file = tmp_path / "web2.pass"
    pass_file.unlink()
    os.mkfifo(pass_file)  # nobody writes to it: reading it would wait forever
    error = load_error(write(tmp_path, text), {"R1_PASSWORD": "x"})
    assert [i.message for i in error.errors] == [f"password_file {pass_file} is not a file"]
    pass_file.unlink()
    pass_file.write_bytes(b"x" * 5000)
    error = load_error(write(tmp_path, text), {"R1_PASSWORD": "x"})
    assert [i.message for i in error.errors] == [
        f"password_file {pass_file} is larger than 4096 bytes: it should hold the password alone"]
    pass_file.write_text("s3cret\n")
    assert load_inventory(write(tmp_path, text), {"R1_PASSWORD": "x"}).hosts


def test_redact_url() -> None:
    assert redact_url("sqlite:///state/lasthop.db") == "sqlite:///state/lasthop.db"
    assert redact_url("postgresql://u:p@h/db?sslmode=require&password=x") == (
        "postgresql://u:***@h/db?sslmode=require&password=***"
    )


def test_the_error_lists_every_issue_one_per_line(tmp_path: Path) -> None:
    error = load_error(write(tmp_path, BASE.replace("router: r1", "router: r9").replace("192.0.2.3}", "x}")))
    assert str(error).splitlines() == [issue.format("lasthop.yaml") for issue in error.errors]
    assert all("\n" not in line for line in map(str, error.errors))


def test_a_newline_in_a_key_stays_on_one_line(tmp_path: Path) -> None:
    error = load_error(write(tmp_path, BASE + '"bad\\nkey": 1\n'))
    assert len(str(error).splitlines()) == len(error.errors) == 1
    assert "unknown key 'bad\\nkey'" in str(error)


# -- which file: one rule -------------------------------------------------------------------------


def _demo_lab(root: Path, up: bool) -> Path:
    """What `lasthop lab up` leaves for the demo lab (prefix lh): its inventory, and lab.json while it is up."""
    folder = root / "lh"
    folder.mkdir(parents=True)
    (folder / "lasthop.yaml").write_text("routers: {}\n")
    if up:
        (folder / "lab.json").write_text('{"prefix": "lh", "slot": 0}')
    return folder / "lasthop.yaml"


def test_config_path_order_option_env_cwd_then_demo_lab(tmp_path: Path) -> None:
    from bot.config import config_path

    lab_inventory = _demo_lab(tmp_path / "run", up=True)
    cwd = tmp_path / "work"
    (cwd / "config").mkdir(parents=True)
    local = cwd / "config" / "lasthop.yaml"
    local.write_text("routers: {}\n")
    env = {"LASTHOP_CONFIG": "/etc/lasthop/from-env.yaml"}
    assert config_path("given.yaml", env, cwd=cwd, lab_root=tmp_path / "run") == Path("given.yaml")
    assert config_path(None, env, cwd=cwd, lab_root=tmp_path / "run") == Path("/etc/lasthop/from-env.yaml")
    assert config_path(None, {}, cwd=cwd, lab_root=tmp_path / "run") == local
    local.unlink()
    assert config_path(None, {"LASTHOP_CONFIG": " "}, cwd=cwd, lab_root=tmp_path / "run") == lab_inventory


def test_config_path_names_every_place_it_looked(tmp_path: Path) -> None:
    from bot.config import NoConfigError, config_path

    _demo_lab(tmp_path / "run", up=False)  # its inventory is left, but the lab is not up
    with pytest.raises(NoConfigError) as e:
        config_path(None, {}, cwd=tmp_path, lab_root=tmp_path / "run")
    text = str(e.value)
    assert "--config FILE: not given" in text
    assert "$LASTHOP_CONFIG: not set" in text
    assert f"config/lasthop.yaml (in {tmp_path.resolve()}): no such file" in text
    assert f"{tmp_path / 'run' / 'lh' / 'lasthop.yaml'}: the demo lab is not up" in text
    assert text.index("--config") < text.index("LASTHOP_CONFIG") < text.index("config/lasthop.yaml") < text.index(
        "/lh/lasthop.yaml")


def test_deferred_files_are_noted_not_fatal(tmp_path: Path) -> None:
    path = tmp_path / "lasthop.yaml"
    path.write_text(
        f"defaults: {{username: ops, key_file: {tmp_path}/missing_key, known_hosts: {tmp_path}/kh}}\n"
        "routers:\n  r1: {driver: frr, address: 198.18.7.11, lan: [198.51.100.0/27]}\n"
        "hosts:\n  web1: {address: 198.51.100.2}\n"
        "services:\n  www-a: {prefix: 198.51.100.32/27, router: r1, hosts: [web1], vips: [198.51.100.33]}\n"
    )
    (tmp_path / "kh").write_text("")
    with pytest.raises(ConfigError) as e:
        load_inventory(path, env={})
    assert "key_file" in str(e.value)
    inv = load_inventory(path, env={}, defer_files=True)
    assert [i.format(path.name) for i in inv.file_issues] == [
        f"lasthop.yaml:1: defaults.key_file: key_file {tmp_path}/missing_key does not exist"]


def test_the_demo_lab_place_is_the_one_lab_up_writes() -> None:
    from bot.config import CONFIG_ORDER, DEMO_LAB_PREFIX, demo_lab_inventory
    from lab.cli import DEFAULT_PREFIX
    from lab.state import DEFAULT_STATE_ROOT, StatePaths

    assert DEMO_LAB_PREFIX == DEFAULT_PREFIX
    where = StatePaths(DEFAULT_STATE_ROOT, DEFAULT_PREFIX).inventory
    assert demo_lab_inventory()[0] == where
    assert f"({where})" in CONFIG_ORDER


# Values that once escaped the loader as Python exceptions (OverflowError, ValueError, RecursionError)
# or were taken as infinity; each is now a config error with its line.
HUGE = [
    ("a 401-digit duration", BASE.replace("vips: [198.51.100.33]}", "vips: [198.51.100.33], check: {interval: "
                                          + "9" * 401 + "}}"), 8, "far too long for a duration"),
    ("400 nines of seconds", BASE.replace("vips: [198.51.100.33]}", "vips: [198.51.100.33], check: {interval: "
                                          + "9" * 400 + "s}}"), 8, "far too long for a duration"),
    ("a duration of 1e20 s", BASE.replace("vips: [198.51.100.33]}", "vips: [198.51.100.33], check: {interval: "
                                          "100000000000000000000}}"), 8, "1e+20s is too long: at most 720h"),
    ("31 days of hold-down", BASE + "policy: {auto_failover: {hold_down: 31d}}\n", 9, "not a duration"),
    ("744h of hold-down", BASE + "policy: {auto_failover: {hold_down: 744h}}\n", 9, "744h is too long: at most 720h"),
    ("a port of 5000 digits", BASE.replace("lan: [192.0.2.0/27]}", "lan: [192.0.2.0/27], port: " + "1" * 5000 + "}"),
     3, "a number with far too many digits"),
    ("a control character", BASE.replace("\nhosts:", "\nhosts:\x07", 1), 4, "the control character '\\x07'"),
    ("nesting 2000 deep", BASE + "x: " + "[" * 2000 + "]" * 2000 + "\n", 9, "nested more than 32 levels deep"),
    # Once walked in full (hours, then memory exhausted) or recursed forever; now refused while composing.
    ("a billion laughs", BASE + "a0: &a0 [x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"a{k}: &a{k} [{', '.join([f'*a{k - 1}'] * 9)}]\n" for k in range(1, 10)), 14,
     "aliases expand to more than 100000 values"),
    ("an alias inside its own value", BASE + "x: &loop [*loop]\n", 9, "the alias *loop is inside the value it names"),
    ("nesting built by aliases", BASE + "a: &a " + "[" * 20 + "x" + "]" * 20 + "\nb: " + "[" * 20 + "*a" + "]" * 20
     + "\n", 10, "nested more than 32 levels deep through the alias *a"),
]


@pytest.mark.parametrize(("text", "line", "fragment"), [pytest.param(t, n, f, id=i) for i, t, n, f in HUGE])
def test_huge_and_hostile_values_are_config_errors_with_their_line(
    tmp_path: Path, text: str, line: int, fragment: str,
) -> None:
    error = load_error(write(tmp_path, text))
    assert any(i.line == line and fragment in i.message for i in error.errors), str(error)
    assert not any(noise in str(error) for noise in PYDANTIC_NOISE)


def test_the_longest_duration_allowed_loads_and_is_described(tmp_path: Path) -> None:
    longest = "policy: {auto_failover: {enabled: true, hold_down: 720h, window: 720h}}\n"
    inv = load_inventory(write(tmp_path, BASE + longest), {})
    assert inv.policy.auto_failover.hold_down == 720 * 3600
    assert "per 720h" in inv.describe()


# -- what a second fuzz run found -------------------------------------------------------------------
# Each once escaped as a Python exception, or was reported with a false message or a value echoed whole.

LONG_PATH = "/" + "d" * 5000 + "/key"


@pytest.mark.parametrize(("text", "path", "line"), [
    pytest.param(BASE.replace("key_file: id_test", f"key_file: {LONG_PATH}"), "defaults.key_file", 1, id="key_file"),
    pytest.param(BASE.replace("known_hosts: known_hosts", f"known_hosts: {LONG_PATH}"), "defaults.known_hosts", 1,
                 id="known_hosts"),
    pytest.param(BASE.replace("lan: [192.0.2.0/27]}", f"lan: [192.0.2.0/27], password_file: {LONG_PATH}}}"),
                 "routers.r1.password_file", 3, id="password_file"),
])
def test_a_path_too_long_for_the_system_is_a_config_error_with_its_line(
    tmp_path: Path, text: str, path: str, line: int,
) -> None:
    error = load_error(write(tmp_path, text))
    assert [(i.path, i.line) for i in error.errors] == [(path, line)], str(error)
    message = error.errors[0].message
    assert "File name too long" in message and "(5005 characters)" in message, message
    assert len(str(error)) < 250, str(error)
    # Deferred, it is a note for the commands that log in, not a refusal.
    inv = load_inventory(write(tmp_path, text), {}, defer_files=True)
    assert [(i.path, i.line) for i in inv.file_issues] == [(path, line)]


@pytest.mark.parametrize(("text", "path", "line"), [
    pytest.param(BASE.replace("key_file: id_test", "key_file: ~no-such-user-lasthop/key"), "defaults.key_file", 1,
                 id="key_file"),
    pytest.param(BASE.replace("lan: [192.0.2.0/27]}", "lan: [192.0.2.0/27], password_file: ~no-such-user-lasthop/pw}"),
                 "routers.r1.password_file", 3, id="password_file"),
])
def test_the_home_of_a_user_who_does_not_exist_is_a_config_error_with_its_line(
    tmp_path: Path, text: str, path: str, line: int,
) -> None:
    error = load_error(write(tmp_path, text))
    assert [(i.path, i.line) for i in error.errors] == [(path, line)], str(error)
    what = path.rpartition(".")[2]
    assert error.errors[0].message.startswith(f"{what} ~no-such-user-lasthop/")
    assert error.errors[0].message.endswith(": no user 'no-such-user-lasthop' for ~")
    # Written for another machine, where that user may exist: not looked at.
    inv = load_inventory(write(tmp_path, text), {}, check_files=False)
    assert inv.routers["r1"].ssh.key_file is not None


# (id, text, line): each echoes a value of 5000 characters or more.
LONG_ECHOES = [
    ("an environment variable's name", BASE.replace(
        "lan: [192.0.2.0/27]}", "lan: [192.0.2.0/27], password: '${" + "A" * 5000 + "}'}"), 3),
    ("an environment variable's name in state_url", BASE + "state_url: 'postgresql://u:${" + "A" * 5000 + "}@h/db'\n",
     9),
    ("an undefined alias", BASE + "x: *" + "a" * 5000 + "\n", 9),
    ("a tag", BASE + "x: !" + "t" * 5000 + " 1\n", 9),
    ("a tag handle", BASE + "x: !" + "t" * 5000 + "!x 1\n", 9),
    ("a duplicate anchor", BASE + "x: &" + "a" * 5000 + " [1]\ny: &" + "a" * 5000 + " [2]\n", 10),
    ("an unknown key", BASE + "? " + "k" * 5000 + "\n: 1\n", 9),
    ("a duplicate key", BASE + "? " + "k" * 5000 + "\n: 1\n? " + "k" * 5000 + "\n: 2\n", 11),
    ("a password_file", BASE.replace("lan: [192.0.2.0/27]}", "lan: [192.0.2.0/27], password_file: "
                                     + "p" * 200 + "/" + "p" * 200 + "}"), 3),
    ("a host listed twice while hosts is broken", BASE.replace(
        "hosts:\n  web1: {address: 192.0.2.2}\n  web2: {address: 192.0.2.3}\n", "hosts: []\n").replace(
        "hosts: [web1, web2]", "hosts: [" + "h" * 5000 + ", " + "h" * 5000 + "]"), 6),
    ("an IPv6 scope", BASE.replace("address: 192.0.2.2", "address: fe80::1%" + "e" * 5000), 5),
    ("an IPv6 scope of a management address", BASE.replace("198.18.0.11", "fe80::1%" + "e" * 5000), 3),
]


@pytest.mark.parametrize(("text", "line"), [pytest.param(t, n, id=i) for i, t, n in LONG_ECHOES])
def test_a_long_value_is_shortened_in_every_message(tmp_path: Path, text: str, line: int) -> None:
    error = load_error(write(tmp_path, text))
    assert any(i.line == line for i in error.errors), str(error)[:2000]
    lines = str(error).splitlines()
    assert all(len(shown) < 250 for shown in lines), str(error)[:2000]
    assert any("characters)" in shown for shown in lines), str(error)


def test_control_characters_in_an_echoed_value_are_made_visible(tmp_path: Path) -> None:
    error = load_error(write(tmp_path, BASE + '"\\e[31mred\\u202e": 1\n'))
    assert str(error) == "lasthop.yaml:9: unknown key '\\x1b[31mred\\u202e'"


def test_a_duplicate_anchor_names_both_lines(tmp_path: Path) -> None:
    error = load_error(write(tmp_path, BASE + "x: &a [1]\ny: &a [2]\nz: *a\n"))
    assert [(i.line, i.message) for i in error.errors] == [
        (10, "the anchor &a is defined twice (first at line 9): give each anchor its own name")]


def test_an_undefined_alias_says_so(tmp_path: Path) -> None:
    error = load_error(write(tmp_path, BASE + "x: *nope\n"))
    assert [(i.line, i.message) for i in error.errors] == [
        (9, "not valid YAML: the alias *nope refers to no anchor before it")]


def test_an_empty_lan_is_one_error_not_one_per_next_hop(tmp_path: Path) -> None:
    error = load_error(write(tmp_path, BASE.replace("lan: [192.0.2.0/27]", "lan: []")))
    assert [(i.path, i.line, i.message) for i in error.errors] == [
        ("routers.r1.lan", 3, "must not be empty: list the networks this router's next hops are in")]


@pytest.mark.parametrize(("key", "message"), [
    ("1", "unknown key '1'"),
    ("1.5", "unknown key '1.5'"),
    ("null", "unknown key 'null'"),
    ("~", "unknown key '~'"),
    ("true", "unknown key 'true'"),
    ("2026-12-03", "unknown key '2026-12-03'"),
    ("[a]", "a list cannot be a key: a key is a name"),
    ("{a: 1}", "a mapping cannot be a key: a key is a name"),
])
def test_a_key_that_is_not_text_is_shown_as_written(tmp_path: Path, key: str, message: str) -> None:
    error = load_error(write(tmp_path, BASE + f"{key}: x\n"))
    assert [(i.line, i.message) for i in error.errors] == [(9, message)], str(error)


def test_an_entry_whose_name_yaml_would_read_as_a_number_or_true(tmp_path: Path) -> None:
    text = BASE.replace("  web2: {address: 192.0.2.3}", "  web2: {address: 192.0.2.3}\n  7: {address: 192.0.2.4}")
    error = load_error(write(tmp_path, text))
    assert [(i.path, i.line) for i in error.errors] == [("hosts.7", 7)], str(error)
    assert error.errors[0].message.startswith("bad name '7'")
    # `on` is true to YAML 1.1, but as a key it is the name written.
    inv = load_inventory(write(tmp_path, BASE.replace("web2: {", "on: {").replace("web1, web2", "web1, 'on'")), {})
    assert list(inv.hosts) == ["web1", "on"] and inv.services["www-a"].hosts == ("web1", "on")


def test_a_value_that_is_not_text_is_not_shown_as_python_would_name_it(tmp_path: Path) -> None:
    error = load_error(write(tmp_path, BASE + "slack: {alert_channel: true, roles: {viewers: [null, 7]}}\n"))
    assert [(i.path, i.line) for i in error.errors] == [
        ("slack.alert_channel", 9), ("slack.roles.viewers[0]", 9), ("slack.roles.viewers[1]", 9)]
    assert all(i.message.startswith("a Slack ID is text: ") for i in error.errors), str(error)


@pytest.mark.parametrize("interval", ["1.0e-320", "'1e-320'", "0.0001", "0.5ms"])
def test_a_duration_below_a_millisecond_is_too_short(tmp_path: Path, interval: str) -> None:
    text = BASE.replace("vips: [198.51.100.33]}", f"vips: [198.51.100.33], check: {{interval: {interval}}}}}")
    error = load_error(write(tmp_path, text))
    assert [(i.path, i.line) for i in error.errors] == [("services.www-a.check.interval", 8)], str(error)
    assert error.errors[0].message.endswith("is too short: at least 1ms"), str(error)


def test_a_duration_of_a_millisecond_and_one_in_exponent_form_load(tmp_path: Path) -> None:
    text = BASE.replace("vips: [198.51.100.33]}", "vips: [198.51.100.33], check: {interval: 5e-1, timeout: 1ms, "
                        "fast_interval: 1.0e-1}}")
    check = load_inventory(write(tmp_path, text), {}).services["www-a"].check
    assert (check.interval, check.timeout, check.fast_interval) == (0.5, 0.001, 0.1)
    # A hold-down of zero still means none; above zero it is a duration like any other.
    error = load_error(write(tmp_path, BASE + "policy: {auto_failover: {hold_down: 1.0e-320}}\n"))
    assert [(i.path, i.message) for i in error.errors] == [
        ("policy.auto_failover.hold_down", "1e-320s is too short: at least 1ms, or 0 for none")]
