"""Release phase: the last buildpack's bin/release YAML and the app's Procfile give the
process types of the slug."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from ..errors import BuildError
from ..names import PROCESS_TYPE_RE
from ..procfile import parse_procfile
from .detect import STDOUT_ONLY, Runner
from .process import Collected
from .sandbox import APP_DIR, buildpack_mount
from .steps import read_small


@dataclass(frozen=True)
class ReleaseInfo:
    default_process_types: dict[str, str] = field(default_factory=dict)
    addons: list[str] = field(default_factory=list)


def parse_release(text: str) -> ReleaseInfo:
    """bin/release output: YAML with `default_process_types` (map) and `addons` (list);
    the deprecated `config_vars` is ignored. Empty output means nothing to declare."""
    try:
        data = yaml.safe_load(text) if text.strip() else {}
    except yaml.YAMLError as err:
        raise BuildError(f"bin/release printed invalid YAML: {err}".splitlines()[0],
                         phase="release") from None
    data = data or {}
    if not isinstance(data, dict):
        raise BuildError("bin/release must print a YAML mapping", phase="release")
    types = data.get("default_process_types") or {}
    addons = data.get("addons") or []
    if not isinstance(types, dict) or not isinstance(addons, list):
        raise BuildError("bin/release: default_process_types must be a map and addons a list",
                         phase="release")
    clean: dict[str, str] = {}
    for name, command in types.items():
        if not PROCESS_TYPE_RE.fullmatch(str(name)) or command is None:
            raise BuildError(f"bin/release: invalid process type {str(name)[:30]!r}",
                             phase="release")
        clean[str(name)] = str(command)
    return ReleaseInfo(clean, [str(addon) for addon in addons])


def run_release(run: Runner, index: int) -> ReleaseInfo:
    lines = Collected()
    status = run([*STDOUT_ONLY, f"{buildpack_mount(index)}/bin/release", APP_DIR], {},
                 lines.append)
    if status != 0:
        raise BuildError(f"bin/release failed with status {status}", phase="release")
    if lines.overflow:
        raise BuildError(f"bin/release printed more than {lines.limit // 1024} KB",
                         phase="release")
    return parse_release("".join(lines.lines))


def process_types(build_dir: Path, release: ReleaseInfo,
                  out: Callable[[str], None]) -> dict[str, str]:
    """Procfile entries override the buildpack's defaults, type by type, as on Heroku."""
    out("-----> Discovering process types\n")
    text = read_small(build_dir / "Procfile")
    declared: dict[str, str] = {}
    if text is not None:
        declared = parse_procfile(text)
        out(f"       Procfile declares types -> {', '.join(declared) or '(none)'}\n")
    defaults = {k: v for k, v in release.default_process_types.items() if k not in declared}
    if defaults:
        out(f"       Default types for buildpack -> {', '.join(defaults)}\n")
    return {**release.default_process_types, **declared}
