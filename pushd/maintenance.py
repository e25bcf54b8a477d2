"""Per-app deploy settings kept as small files in the app's folder (no store table, read by
the supervisor each pass): the maintenance flag (`maintenance:on`: the router answers 503
with the maintenance page, H80, dynos keep running) and the `checks:*` settings."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field

from .errors import InvalidValue
from .files import replace_file
from .models import App
from .paths import Paths

FLAG = "maintenance"
CHECKS = "checks.json"


def is_on(paths: Paths, app_id: int) -> bool:
    return (paths.app_dir(app_id) / FLAG).exists()


def set_on(paths: Paths, app_id: int, on: bool) -> None:
    flag = paths.app_dir(app_id) / FLAG
    if on:
        replace_file(flag, "on\n", sync=True)
    else:
        flag.unlink(missing_ok=True)


def apps_in(paths: Paths, apps: dict[int, App] | Iterable[int]) -> frozenset[int]:
    """The ids of these apps in maintenance mode."""
    return frozenset(i for i in apps if is_on(paths, i))


@dataclass(frozen=True)
class CheckSettings:
    disabled: frozenset[str] = field(default_factory=frozenset)  # process types; "_all_"
    wait_to_retire: float | None = None  # old web dynos' drain after the switch (seconds)
    attempts: int | None = None  # overrides every check's attempts
    worker_overlap: bool = True  # new workers start while the old ones still run

    def skips(self, process_type: str) -> bool:
        return "_all_" in self.disabled or process_type in self.disabled


SETTABLE = {"wait-to-retire": (0, 600), "attempts": (1, 20), "worker-overlap": None}


def checks(paths: Paths, app_id: int) -> CheckSettings:
    try:
        data = json.loads((paths.app_dir(app_id) / CHECKS).read_text())
    except (OSError, ValueError):
        return CheckSettings()
    return CheckSettings(frozenset(data.get("disabled", [])), data.get("wait-to-retire"),
                         data.get("attempts"), bool(data.get("worker-overlap", True)))


def parse_setting(key: str, value: str) -> object:
    """A `checks:set` KEY=VALUE's value, checked; InvalidValue names the good ones."""
    if key not in SETTABLE:
        raise InvalidValue(f"Unknown checks setting {key!r} (use {', '.join(SETTABLE)})")
    if key == "worker-overlap":
        if value not in ("true", "false"):
            raise InvalidValue("worker-overlap must be true or false")
        return value == "true"
    low, high = SETTABLE[key]
    try:
        number = float(value) if key == "wait-to-retire" else int(value)
    except ValueError:
        number = None
    if number is None or not low <= number <= high:
        raise InvalidValue(f"{key} must be a number from {low} to {high}")
    return number


def update_checks(paths: Paths, app_id: int, **changes: object) -> CheckSettings:
    path = paths.app_dir(app_id) / CHECKS
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        data = {}
    data.update(changes)
    replace_file(path, json.dumps(data), sync=True)
    return checks(paths, app_id)
