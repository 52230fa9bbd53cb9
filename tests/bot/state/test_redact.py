"""redact(): registered secrets and recognisable credentials become ***. Pure text, no database."""

from __future__ import annotations

import uuid

import pytest

from bot.state import redact, register_secret


def unique(prefix: str) -> str:
    # Registered secrets live for the whole process: unique values keep tests independent.
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def test_registered_secrets_are_masked_everywhere() -> None:
    secret = unique("hunter2")
    register_secret(secret)
    assert redact(f"login as ops with {secret}, then {secret}") == "login as ops with ***, then ***"
    assert secret not in redact(f"x{secret}y")


def test_a_longer_secret_containing_a_shorter_one_is_masked_whole() -> None:
    short = unique("abcd")
    long = f"{short}-and-more"
    register_secret(short)
    register_secret(long)
    assert redact(f"[{long}]") == "[***]"


def test_very_short_values_are_not_registered() -> None:
    register_secret("7")
    register_secret("abc")
    assert redact("route 7 via abc") == "route 7 via abc"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("connect failed: password=s3cr3t! user=ops", "connect failed: password=*** user=ops"),
        ('{"password": "two words", "user": "ops"}', '{"password": ***, "user": "ops"}'),
        ("api_key: abc123 token=xyz", "api_key: *** token=***"),
        ("PASSWD = 'quoted value' rest", "PASSWD = *** rest"),
        (
            "postgresql://lasthop:db-pass@db.example:5432/state",
            "postgresql://lasthop:***@db.example:5432/state",
        ),
        ("postgresql+psycopg://u:p%40ss@h/db ok", "postgresql+psycopg://u:***@h/db ok"),
        ("username ops privilege 15 secret 5 $1$abc$xyz", "username ops privilege 15 secret 5 ***"),
        ("Authorization: Bearer eyJhbGciOi.x.y", "Authorization: Bearer ***"),
        ("SLACK_BOT_TOKEN xoxb-1234-5678-abcdef", "SLACK_BOT_TOKEN ***"),
        ("show ip route 198.51.100.32/27", "show ip route 198.51.100.32/27"),
        ("http://web1.example/health returned 200", "http://web1.example/health returned 200"),
        ("", ""),
    ],
)
def test_credential_patterns(text: str, expected: str) -> None:
    assert redact(text) == expected


def test_private_key_blocks_are_masked_even_when_cut_off() -> None:
    key = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\nAAAA\n-----END OPENSSH PRIVATE KEY-----"
    out = redact(f"before\n{key}\nafter")
    assert "b3BlbnNzaC1rZXktdjEAAAAA" not in out
    assert out.startswith("before\n-----BEGIN OPENSSH PRIVATE KEY-----***") and out.endswith("\nafter")

    cut = "key: -----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA7"
    assert redact(cut) == "key: -----BEGIN RSA PRIVATE KEY-----***"
    public = "-----BEGIN PUBLIC KEY-----\nMFkwEw\n-----END PUBLIC KEY-----"
    assert redact(public) == public
