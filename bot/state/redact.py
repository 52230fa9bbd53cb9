"""Scrub secrets out of text before it is stored or shown.

Two layers: exact values the process knows are secret (device passwords, tokens;
registered at start-up from the config) and patterns for secrets nobody registered
(a `password=` in an error, credentials in a database URL, a private key in a
transcript). Over-redacting a little is fine; storing a secret is not.
"""

from __future__ import annotations

import re
import threading

MASK = "***"

# Shorter values would mask ordinary words and digits all over every transcript.
_MIN_SECRET_LEN = 4

_lock = threading.Lock()
_secrets: set[str] = set()
# Longest first, so a secret containing a shorter one is masked whole, not in pieces.
_ordered: tuple[str, ...] = ()

_PEM = re.compile(
    r"(-----BEGIN (?P<kind>[A-Z0-9 ]*)PRIVATE KEY-----)"
    # A transcript cut off mid-key has no END line; mask to the end rather than leak the rest.
    r".*?(?:-----END (?P=kind)PRIVATE KEY-----|\Z)",
    re.DOTALL,
)
_URL_PASSWORD = re.compile(r"(\b[a-zA-Z][a-zA-Z0-9+.\-]*://[^\s:/@]*:)[^\s@/]+(@)")
_KEY_VALUE = re.compile(
    r"""(?ix)
    (\b(?:password|passwd|pwd|passphrase|secret|client_secret|token|api[_-]?key|signing[_-]?secret)
       ["']?\s*[=:]\s*)
    ("[^"]*"|'[^']*'|[^\s"']+)
    """
)
# IOS config lines: `enable secret 5 $1$...`, `username x password 7 0822...`, `key 7 ...`.
_IOS_SECRET = re.compile(r"(?i)(\b(?:secret|password|key)\s+[0-9]\s+)\S+")
_BEARER = re.compile(r"(?i)(\bbearer\s+)[A-Za-z0-9._~+/=\-]+")
_SLACK_TOKEN = re.compile(r"\bxox[a-z]-[A-Za-z0-9\-]+")


def register_secret(value: str) -> None:
    """Mask `value` wherever it appears from now on, in this process."""
    global _ordered
    if len(value) < _MIN_SECRET_LEN:
        return
    with _lock:
        if value in _secrets:
            return
        _secrets.add(value)
        _ordered = tuple(sorted(_secrets, key=len, reverse=True))


def redact(text: str) -> str:
    """`text` with every registered secret and every recognisable credential replaced by ***."""
    if not text:
        return text
    for secret in _ordered:
        if secret in text:
            text = text.replace(secret, MASK)
    text = _PEM.sub(lambda m: f"{m.group(1)}{MASK}", text)
    text = _URL_PASSWORD.sub(rf"\1{MASK}\2", text)
    text = _KEY_VALUE.sub(rf"\1{MASK}", text)
    text = _IOS_SECRET.sub(rf"\1{MASK}", text)
    text = _BEARER.sub(rf"\1{MASK}", text)
    return _SLACK_TOKEN.sub(MASK, text)
