"""Validation of every name that comes from outside, before it becomes a path, a user or a
container. Checked once, here, at the boundary; everything inside trusts validated names."""

from __future__ import annotations

import re

from .errors import InvalidName

APP_RE = re.compile(r"[a-z][a-z0-9-]{0,29}")
KEY_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}")
PROCESS_TYPE_RE = re.compile(r"[A-Za-z0-9_-]{1,30}")
CONFIG_KEY_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,255}")
DOMAIN_LABEL_RE = re.compile(r"(?!-)[a-z0-9-]{1,63}(?<!-)")
RELEASE_RE = re.compile(r"v?([1-9][0-9]{0,8})")


def _shown(value: str) -> str:
    text = value if len(value) <= 40 else value[:37] + "..."
    return repr(text)


def _matching(value: str, pattern: re.Pattern[str], what: str, rule: str) -> str:
    """`value` if it is a string `pattern` matches whole, else InvalidName naming `what`."""
    if not isinstance(value, str) or not pattern.fullmatch(value):
        raise InvalidName(f"Invalid {what} {_shown(value)}: {rule}")
    return value


def app_name(value: str) -> str:
    """Return `value` if it is a valid app name, else raise InvalidName."""
    return _matching(value, APP_RE, "app name", "use 1 to 30 characters, lowercase letters, "
                     "digits and dashes, starting with a letter")


def key_name(value: str) -> str:
    return _matching(value, KEY_RE, "key name",
                     "use up to 64 letters, digits, '_', '.', '@', '-'")


def process_type(value: str) -> str:
    return _matching(value, PROCESS_TYPE_RE, "process type", "use letters, digits, '_' and '-'")


def config_key(value: str) -> str:
    return _matching(value, CONFIG_KEY_RE, "config var name",
                     "use letters, digits and '_', not starting with a digit")


def domain(value: str) -> str:
    """A host name for the router: lowercase labels, dots, optional leading '*.' wildcard."""
    host = value.lower() if isinstance(value, str) else ""
    labels = host[2:].split(".") if host.startswith("*.") else host.split(".")
    ok = (
        0 < len(host) <= 253
        and len(labels) >= 2
        and all(DOMAIN_LABEL_RE.fullmatch(label) for label in labels)
        and not labels[-1].isdigit()  # 127.0.0.1 is an address, not a name to claim
    )
    if not ok:
        raise InvalidName(
            f"Invalid domain {_shown(value)}: expected a host name like www.example.com"
        )
    return host


def domains_overlap(first: str, second: str) -> bool:
    """Whether two valid domains can route the same host: equal, or one a wildcard (`*.S`,
    which in nginx matches every name ending in `.S`, however deep) that covers the other."""
    def scope(host: str) -> tuple[str, bool]:
        return (host[2:], True) if host.startswith("*.") else (host, False)

    (a, a_wild), (b, b_wild) = scope(first), scope(second)
    return ((a == b and a_wild == b_wild) or (a_wild and b.endswith("." + a))
            or (b_wild and a.endswith("." + b)))


def release_version(value: str) -> int:
    """`v3` or `3` -> 3."""
    match = RELEASE_RE.fullmatch(value or "")
    if not match:
        raise InvalidName(f"Invalid release {_shown(value)}: expected a version like v3")
    return int(match.group(1))
