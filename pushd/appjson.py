"""A push's `app.json`, parsed into typed records: health checks (Dokku's shape), formation,
deploy scripts (Dokku's `scripts.dokku.predeploy`/`postdeploy`, Heroku's
`scripts.postdeploy`) and cron entries. Pure and bounded: the file is the tenant's, so every
value is checked for type and range and a bad file is one line naming what is wrong (for
invalid JSON, the JSON error with its line and column). Unknown keys are ignored, as Heroku
and Dokku do.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from . import names
from .cron import parse_schedule
from .errors import InvalidName, InvalidValue

MAX_BYTES = 256 * 1024
MAX_CHECKS = 10  # per process type
MAX_TEXT = 1024  # a path, a content string, a command
MAX_CRON = 50
CHECK_TYPES = ("startup", "liveness", "readiness")
# Heroku's dyno sizes -> memory per dyno (MB), the limit `sizes.py` gives a sized type
SIZES = {"eco": 512, "basic": 512, "standard-1x": 512, "standard-2x": 1024,
         "performance-m": 2560, "performance-l": 14336}


class AppJsonError(InvalidValue):
    """app.json is not what pushd can use: one line for the pusher."""


@dataclass(frozen=True)
class Check:
    """One check of a process type's dynos. A web check with `path` is an HTTP GET to the
    dyno's `$PORT`; a check without one (and any non-web check) asks that the dyno still
    runs `uptime` seconds after it started."""

    type: str = "startup"
    name: str = "default"
    path: str | None = "/"
    content: str | None = None  # the body must contain it
    statuses: tuple[int, ...] = ()  # accepted statuses; () = any below 500
    attempts: int = 3
    timeout: float = 5.0  # per attempt
    wait: float = 1.0  # between attempts
    initial_delay: float = 0.0
    uptime: float = 10.0  # for a check without a path

    def accepts(self, status: int, body: str) -> bool:
        ok = status in self.statuses if self.statuses else status < 500
        return ok and (self.content is None or self.content in body)

    def expected(self) -> str:
        want = ("status " + "/".join(map(str, self.statuses)) if self.statuses
                else "a status below 500")
        return want + (f" with {self.content!r} in the body" if self.content is not None else "")


DEFAULT_WEB = (Check(),)  # accepts on $PORT and answers / below 500


@dataclass(frozen=True)
class Formation:
    quantity: int
    size: str | None = None  # one of SIZES, lower case


@dataclass(frozen=True)
class CronEntry:
    """For the scheduler (`cron.py` runs them): parsed and bounded, not interpreted."""

    command: str
    schedule: str


@dataclass(frozen=True)
class AppJson:
    healthchecks: dict[str, tuple[Check, ...]] = field(default_factory=dict)
    formation: dict[str, Formation] = field(default_factory=dict)
    predeploy: str | None = None  # scripts.dokku.predeploy: before the release is cut
    postdeploy: str | None = None  # scripts.dokku.postdeploy, else scripts.postdeploy
    cron: tuple[CronEntry, ...] = ()

    def checks(self, process_type: str) -> tuple[Check, ...]:
        """The declared checks of a type, else the default (web: HTTP /; others: uptime)."""
        declared = self.healthchecks.get(process_type)
        if declared is not None:
            return declared
        return DEFAULT_WEB if process_type == "web" else (Check(path=None),)


EMPTY = AppJson()


def parse(data: bytes | None) -> AppJson:
    """The app.json's records (EMPTY without one); AppJsonError if it is unusable."""
    if data is None:
        return EMPTY
    if len(data) > MAX_BYTES:
        raise AppJsonError(f"app.json is larger than {MAX_BYTES // 1024} KB")
    try:
        doc = json.loads(data.decode("utf-8"))
    except UnicodeDecodeError:
        raise AppJsonError("app.json is not UTF-8 text") from None
    except json.JSONDecodeError as err:
        raise AppJsonError(f"app.json is not valid JSON: {err.msg} at line {err.lineno} "
                           f"column {err.colno}") from None
    except RecursionError:
        raise AppJsonError("app.json is nested too deeply") from None
    obj = _dict(doc, "app.json")
    scripts = _dict(obj.get("scripts", {}), "scripts")
    dokku = _dict(scripts.get("dokku", {}), "scripts.dokku")
    return AppJson(
        healthchecks=_healthchecks(_dict(obj.get("healthchecks", {}), "healthchecks")),
        formation=_formation(_dict(obj.get("formation", {}), "formation")),
        predeploy=_text(dokku.get("predeploy"), "scripts.dokku.predeploy"),
        postdeploy=(_text(dokku.get("postdeploy"), "scripts.dokku.postdeploy")
                    or _text(scripts.get("postdeploy"), "scripts.postdeploy")),
        cron=_cron(obj.get("cron", [])))


def _healthchecks(section: dict) -> dict[str, tuple[Check, ...]]:
    out: dict[str, tuple[Check, ...]] = {}
    for kind, checks in section.items():
        where = f"healthchecks.{_kind(kind, 'healthchecks')}"
        if not isinstance(checks, list):
            raise AppJsonError(f"app.json: {where} must be a list of checks")
        if len(checks) > MAX_CHECKS:
            raise AppJsonError(f"app.json: {where} has more than {MAX_CHECKS} checks")
        out[kind] = tuple(_check(_dict(c, f"{where}[{i}]"), f"{where}[{i}]", kind)
                          for i, c in enumerate(checks))
    return out


def _check(c: dict, where: str, kind: str) -> Check:
    ctype = c.get("type", "startup")
    if ctype not in CHECK_TYPES:
        raise AppJsonError(f"app.json: {where}.type must be one of {', '.join(CHECK_TYPES)}")
    path = _text(c.get("path"), f"{where}.path")
    if path is not None and (not path.startswith("/") or not path.isascii()
                             or any(ch.isspace() or not ch.isprintable() for ch in path)):
        raise AppJsonError(f"app.json: {where}.path must be an absolute URL path")
    if path is None and kind == "web" and "uptime" not in c:
        path = "/"  # a web check is an HTTP check unless it only asks for uptime
    raw = c.get("status", c.get("expected"))
    statuses = tuple(_int(s, f"{where}.status", 100, 599)
                     for s in (raw if isinstance(raw, list) else [] if raw is None else [raw]))
    return Check(
        type=ctype, name=_text(c.get("name"), f"{where}.name") or f"{kind} check",
        path=path, content=_text(c.get("content"), f"{where}.content"), statuses=statuses,
        attempts=_int(c.get("attempts", 3), f"{where}.attempts", 1, 20),
        timeout=_num(c.get("timeout", 5), f"{where}.timeout", 1, 60),
        wait=_num(c.get("wait", 1), f"{where}.wait", 0, 60),
        initial_delay=_num(c.get("initialDelay", 0), f"{where}.initialDelay", 0, 600),
        uptime=_num(c.get("uptime", 10), f"{where}.uptime", 0, 600))


def _formation(section: dict) -> dict[str, Formation]:
    out = {}
    for kind, entry in section.items():
        where = f"formation.{_kind(kind, 'formation')}"
        entry = _dict(entry, where)
        size = _text(entry.get("size"), f"{where}.size")
        if size is not None and size.lower() not in SIZES:
            raise AppJsonError(f"app.json: {where}.size must be one of {', '.join(SIZES)}")
        out[kind] = Formation(_int(entry.get("quantity", 1), f"{where}.quantity", 0, 100),
                              size.lower() if size is not None else None)
    return out


def _cron(entries: object) -> tuple[CronEntry, ...]:
    if not isinstance(entries, list) or len(entries) > MAX_CRON:
        raise AppJsonError(f"app.json: cron must be a list of at most {MAX_CRON} entries")
    out = []
    for i, entry in enumerate(entries):
        e = _dict(entry, f"cron[{i}]")
        command = _text(e.get("command"), f"cron[{i}].command").strip()
        schedule = _text(e.get("schedule"), f"cron[{i}].schedule")
        if not command or not schedule:
            raise AppJsonError(f"app.json: cron[{i}] needs a command and a schedule")
        try:
            parse_schedule(schedule)  # a schedule that can never run fails the push
        except InvalidValue as err:
            raise AppJsonError(f"app.json: cron[{i}].schedule: {err}") from None
        out.append(CronEntry(command, schedule))
    return tuple(out)


def _kind(kind: str, where: str) -> str:
    try:
        return names.process_type(kind)
    except InvalidName:
        raise AppJsonError(f"app.json: {where} names an invalid process type") from None


def _dict(value: object, where: str) -> dict:
    if not isinstance(value, dict):
        raise AppJsonError(f"app.json: {where} must be an object")
    return value


def _text(value: object, where: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > MAX_TEXT or "\x00" in value:
        raise AppJsonError(f"app.json: {where} must be a string of at most {MAX_TEXT} "
                           "characters")
    return value


def _num(value: object, where: str, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise AppJsonError(f"app.json: {where} must be a number from {low:g} to {high:g}")
    return float(value)


def _int(value: object, where: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise AppJsonError(f"app.json: {where} must be a whole number from {low} to {high}")
    return value
