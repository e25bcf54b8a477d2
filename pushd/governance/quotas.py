"""Per-user quotas: what `quotas:set` accepts, and whether an action stays within a user's
limits. Pure: limits and usage come in as values (the store and the state dir supply them,
see `enforce.py`), nothing here does I/O.

Every quota counts what the apps a user *owns* use, whoever acts on them (a collaborator
scaling alice's app spends alice's quota). A kind without a limit is unlimited; 0 allows none.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from ..errors import Refused, UsageError

# in the order `quotas` shows them
KINDS = ("apps", "dynos", "memory", "oneoffs", "builds", "addons")
DESCRIPTIONS = {
    "apps": "apps owned",
    "dynos": "dynos in the formations of those apps",
    "memory": "memory of those dynos (each type's memory size)",
    "oneoffs": "one-off dynos running at once",
    "builds": "builds running at once",
    "addons": "add-ons (not enforced yet: add-ons do not exist)",
}
UNLIMITED = "unlimited"
MEMORY_RE = re.compile(r"([0-9]{1,9})([mg]?)b?", re.IGNORECASE)
COUNT_RE = re.compile(r"[0-9]{1,9}")


@dataclass(frozen=True)
class Usage:
    """What a user's apps use now; memory in MB."""

    apps: int = 0
    dynos: int = 0
    memory: int = 0
    oneoffs: int = 0
    builds: int = 0
    addons: int = 0

    def of(self, kind: str) -> int:
        return int(getattr(self, kind))


def parse_limit(kind: str, text: str) -> int | None:
    """A limit as `quotas:set` takes it: a count, memory in MB (`512`, `512m`, `4g`), or
    `unlimited` (None: the limit is removed)."""
    if kind not in KINDS:
        raise UsageError(f"Unknown quota {kind!r}: expected one of {', '.join(KINDS)}")
    value = text.strip()
    if value.lower() == UNLIMITED:
        return None
    if kind == "memory":
        match = MEMORY_RE.fullmatch(value)
        if not match:
            raise UsageError(f"memory={value!r}: expected a size like 512m or 4g, or unlimited")
        number, unit = int(match.group(1)), match.group(2).lower()
        return number * 1024 if unit == "g" else number
    if not COUNT_RE.fullmatch(value):
        raise UsageError(f"{kind}={value!r}: expected a number (0 allows none) or unlimited")
    return int(value)


def parse_assignments(args: list[str]) -> dict[str, int | None]:
    """`apps=10 dynos=20 memory=4g` -> {"apps": 10, "dynos": 20, "memory": 4096}."""
    if not args:
        raise UsageError("quotas:set needs at least one KIND=LIMIT")
    found: dict[str, int | None] = {}
    for item in args:
        kind, sep, value = item.partition("=")
        if not sep:
            raise UsageError(f"{item!r} is not KIND=LIMIT")
        found[kind.strip().lower()] = parse_limit(kind.strip().lower(), value)
    return found


def amount(kind: str, value: int) -> str:
    if kind == "memory":
        return f"{value // 1024} GB" if value and value % 1024 == 0 else f"{value} MB"
    return str(value)


def limit_text(kind: str, limit: int | None) -> str:
    return UNLIMITED if limit is None else amount(kind, limit)


def check(user: str, kind: str, limits: Mapping[str, int], used: int, more: int) -> None:
    """Refuse (Refused) when `more` on top of `used` would pass the user's limit of `kind`.
    Giving back (more <= 0) is always allowed, even above a limit lowered since."""
    limit = limits.get(kind)
    if limit is None or more <= 0 or used + more <= limit:
        return
    asked = "" if used >= limit else f", {amount(kind, more)} more asked"
    raise Refused(f"Quota exceeded: {kind} {amount(kind, used)} of {amount(kind, limit)} in use"
                  f"{asked} (quotas:set {user} {kind}=N to raise)")


def formation_cost(formation: Mapping[str, int], memory_for: Callable[[str], int]
                   ) -> tuple[int, int]:
    """(dynos, memory in MB) of one app's formation; `memory_for(type)` is a dyno's size."""
    dynos = sum(max(q, 0) for q in formation.values())
    memory = sum(max(q, 0) * memory_for(t) for t, q in formation.items())
    return dynos, memory


def check_formation(user: str, limits: Mapping[str, int], usage: Usage,
                    old: tuple[int, int], new: tuple[int, int]) -> None:
    """One app's formation going from `old` to `new` (dynos, memory) within the owner's
    dynos and memory quotas; `usage` counts `old` already."""
    check(user, "dynos", limits, usage.dynos, new[0] - old[0])
    check(user, "memory", limits, usage.memory, new[1] - old[1])
