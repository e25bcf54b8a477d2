"""app.json `cron` (Dokku's shape: `[{"command": "...", "schedule": "*/5 * * * *"}]`), pure:
5-field cron expressions parsed and validated (numbers, `*`, ranges, steps, lists, month and
weekday names, `@hourly`-style macros), whether one is due at a minute (UTC; day of month and
day of week OR'ed when both are restricted, as in cron), and a tiny reader of the `cron` list
from the entries `appjson.py` parsed."""

from __future__ import annotations

import time
from dataclasses import dataclass

from .errors import InvalidValue

MACROS = {"@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *", "@monthly": "0 0 1 * *",
          "@weekly": "0 0 * * 0", "@daily": "0 0 * * *", "@midnight": "0 0 * * *",
          "@hourly": "0 * * * *"}
MONTHS = {n: i + 1 for i, n in enumerate(
    "jan feb mar apr may jun jul aug sep oct nov dec".split())}
DAYS = {n: i for i, n in enumerate("sun mon tue wed thu fri sat".split())}
# (name, lowest, highest, names)
FIELDS = (("minute", 0, 59, {}), ("hour", 0, 23, {}), ("day of month", 1, 31, {}),
          ("month", 1, 12, MONTHS), ("day of week", 0, 7, DAYS))


@dataclass(frozen=True)
class Schedule:
    text: str
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]  # 0 = Sunday (7 taken as 0)
    any_day: bool  # day of month was `*`
    any_weekday: bool  # day of week was `*`

    def due(self, at: float) -> bool:
        """Whether the schedule fires in the (UTC) minute holding `at`."""
        t = time.gmtime(at)
        if t.tm_min not in self.minutes or t.tm_hour not in self.hours:
            return False
        if t.tm_mon not in self.months:
            return False
        day_ok = t.tm_mday in self.days
        weekday_ok = (t.tm_wday + 1) % 7 in self.weekdays  # tm_wday: Monday = 0
        if self.any_day or self.any_weekday:
            return day_ok and weekday_ok
        return day_ok or weekday_ok


@dataclass(frozen=True)
class CronEntry:
    command: str
    schedule: Schedule


def _number(text: str, name: str, low: int, high: int, words: dict[str, int]) -> int:
    value = words.get(text.lower()) if words else None
    if value is None:
        if not text.isdigit() or len(text) > 2:
            raise InvalidValue(f"{text!r} is not a valid {name}")
        value = int(text)
    if not low <= value <= high:
        raise InvalidValue(f"{name} {value} is out of range ({low}-{high})")
    return value


def _field(text: str, name: str, low: int, high: int, words: dict[str, int]) -> set[int]:
    found: set[int] = set()
    for item in text.split(","):
        base, slash, step_text = item.partition("/")
        step = 1
        if slash:
            if not step_text.isdigit() or not 1 <= int(step_text) <= high:
                raise InvalidValue(f"{step_text!r} is not a valid step for the {name}")
            step = int(step_text)
        if base == "*":
            first, last = low, high
        elif "-" in base:
            a, _, b = base.partition("-")
            first, last = (_number(a, name, low, high, words), _number(b, name, low, high, words))
            if first > last:
                raise InvalidValue(f"{base!r} is not a valid range for the {name}")
        else:
            first = _number(base, name, low, high, words)
            last = high if slash else first
        found.update(range(first, last + 1, step))
    return found


def parse_schedule(text: str) -> Schedule:
    """A cron expression (5 fields, or a macro); InvalidValue saying what is wrong."""
    if not isinstance(text, str) or len(text) > 200 or not text.isprintable():
        raise InvalidValue("A cron schedule must be a short line of text")
    expanded = MACROS.get(text.strip().lower(), text)
    parts = expanded.split()
    if len(parts) != 5:
        raise InvalidValue(f"Cron schedule {text!r} needs 5 fields (minute hour day-of-month "
                           "month day-of-week)")
    sets = [_field(part, *spec) for part, spec in zip(parts, FIELDS, strict=True)]
    weekdays = frozenset(0 if d == 7 else d for d in sets[4])
    return Schedule(text, frozenset(sets[0]), frozenset(sets[1]), frozenset(sets[2]),
                    frozenset(sets[3]), weekdays, parts[2] == "*", parts[4] == "*")
