"""npm-style semver ranges, enough to pick a Node.js version for `engines.node`.

Pure and standard-library only: the nodejs buildpack runs it with the stack's python3 in the
build sandbox (`python3 semver.py RANGE < versions`, one version a line or a JSON list;
prints the highest match or exits 1), and the unit tests import it. Supported: exact
versions, `=`, `v` prefixes,
`<`, `<=`, `>`, `>=`, `~`, `^`, x-ranges (`22`, `22.x`, `22.1.*`, `*`, ``), hyphen ranges
(`20 - 22.3`), comparator sets joined by spaces, and `||`. Pre-releases are never chosen.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterable

Version = tuple[int, int, int]
Comparator = tuple[str, Version]

_WILD = {"x", "X", "*"}
_PART = r"(?:0|[1-9]\d*|[xX*])"
_PARTIAL = re.compile(rf"^v?({_PART})(?:\.({_PART})(?:\.({_PART}))?)?"
                      r"(?:-[0-9A-Za-z.-]+)?(?:\+[0-9A-Za-z.-]+)?$")
_FULL = re.compile(r"^v?(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(-[0-9A-Za-z.-]+)?"
                   r"(?:\+[0-9A-Za-z.-]+)?$")
_OPERATOR = re.compile(r"^(<=|>=|<|>|=|~>|~|\^)?\s*(.*)$")
MAX_RANGE = 256


class RangeError(ValueError):
    """The text is not a semver range."""


def parse_version(text: str) -> tuple[Version, bool] | None:
    """(major, minor, patch) and whether it is a pre-release; None if not a full version."""
    match = _FULL.match(text.strip())
    if not match:
        return None
    major, minor, patch, pre = match.groups()
    return (int(major), int(minor), int(patch)), pre is not None


def _partial(text: str) -> list[int | None]:
    """`1.2` -> [1, 2, None]; wildcards and missing parts are None."""
    if text in ("", *_WILD):
        return [None, None, None]
    match = _PARTIAL.match(text)
    if not match:
        raise RangeError(f"not a version: {text!r}")
    parts = [None if p is None or p in _WILD else int(p) for p in match.groups()]
    for i in range(1, 3):  # after a wildcard everything is a wildcard: 1.x.3 is 1.x
        if parts[i - 1] is None:
            parts[i] = None
    return parts


def _floor(parts: list[int | None]) -> Version:
    return (parts[0] or 0, parts[1] or 0, parts[2] or 0)


def _bump(parts: list[int | None]) -> Version | None:
    """The first version above every match of a partial version (None: no ceiling)."""
    major, minor, _ = parts
    if major is None:
        return None
    if minor is None:
        return (major + 1, 0, 0)
    return (major, minor + 1, 0)


def _comparators(op: str, text: str) -> list[Comparator]:
    parts = _partial(text)
    major, minor, patch = parts
    floor = _floor(parts)
    exact = patch is not None
    if op in ("", "="):
        if exact:
            return [("=", floor)]
        ceiling = _bump(parts)
        return [(">=", floor)] + ([("<", ceiling)] if ceiling else [])
    if op in ("~", "~>"):
        if major is None:
            return [(">=", (0, 0, 0))]
        ceiling = (major + 1, 0, 0) if minor is None else (major, minor + 1, 0)
        return [(">=", floor), ("<", ceiling)]
    if op == "^":
        if major is None:
            return [(">=", (0, 0, 0))]
        if major > 0 or minor is None:
            ceiling = (major + 1, 0, 0)
        elif minor > 0 or patch is None:
            ceiling = (0, minor + 1, 0)
        else:
            ceiling = (0, 0, patch + 1)
        return [(">=", floor), ("<", ceiling)]
    if major is None:  # >* matches nothing, <* nothing, >=* and <=* everything
        return [(">=", (0, 0, 0))] if op in (">=", "<=") else [("<", (0, 0, 0))]
    if exact:
        return [(op, floor)]
    ceiling = _bump(parts)
    assert ceiling is not None
    if op == ">":
        return [(">=", ceiling)]
    if op == "<=":
        return [("<", ceiling)]
    return [(op, floor)]  # >= 1.2 is >= 1.2.0, < 1.2 is < 1.2.0


def _hyphen(low: str, high: str) -> list[Comparator]:
    result = [(">=", _floor(_partial(low)))]
    parts = _partial(high)
    if parts[2] is not None:
        result.append(("<=", _floor(parts)))
    else:
        ceiling = _bump(parts)
        if ceiling:
            result.append(("<", ceiling))
    return result


def parse_range(text: str) -> list[list[Comparator]]:
    """A range as alternatives (`||`), each a list of comparators that must all hold."""
    if len(text) > MAX_RANGE:
        raise RangeError("range too long")
    alternatives = []
    for alternative in text.split("||"):
        alternative = alternative.strip()
        hyphen = re.fullmatch(r"(\S+)\s+-\s+(\S+)", alternative)
        if hyphen:
            alternatives.append(_hyphen(*hyphen.groups()))
            continue
        # "> = 1.2" and ">= 1.2" mean ">=1.2": glue operators to their versions
        glued = re.sub(r"(<=|>=|<|>|=|~>|~|\^)\s+", r"\1", alternative)
        comparators: list[Comparator] = []
        for token in glued.split() or [""]:
            op, rest = _OPERATOR.match(token).groups()  # type: ignore[union-attr]
            comparators += _comparators(op or "", rest)
        alternatives.append(comparators)
    return alternatives


def _holds(version: Version, comparator: Comparator) -> bool:
    op, bound = comparator
    return {"=": version == bound, "<": version < bound, "<=": version <= bound,
            ">": version > bound, ">=": version >= bound}[op]


def satisfies(version: str, text: str) -> bool:
    parsed = parse_version(version)
    if parsed is None or parsed[1]:
        return False
    return any(all(_holds(parsed[0], c) for c in alternative)
               for alternative in parse_range(text))


def max_satisfying(versions: Iterable[str], text: str) -> str | None:
    """The highest release (never a pre-release) in `versions` that the range allows."""
    alternatives = parse_range(text)
    best: tuple[Version, str] | None = None
    for version in versions:
        parsed = parse_version(version)
        if parsed is None or parsed[1]:
            continue
        if any(all(_holds(parsed[0], c) for c in alt) for alt in alternatives):
            if best is None or parsed[0] > best[0]:
                best = (parsed[0], version.strip())
    return best[1] if best else None


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: semver.py RANGE < versions", file=sys.stderr)
        return 2
    try:
        text = sys.stdin.read()
        versions = json.loads(text) if text.lstrip().startswith("[") else text.split()
        found = max_satisfying([str(v) for v in versions], argv[1])
    except RangeError as err:
        print(f"invalid semver range {argv[1]!r}: {err}", file=sys.stderr)
        return 2
    if found is None:
        return 1
    print(found)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
