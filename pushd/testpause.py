"""Pause points for the fault tests (tests/faults): with `test_hooks: true` in pushd.yaml
(never in production), a push waits at the step named in the state dir's `test-pause` file
until the file is removed, and says where it waits in `test-paused`, so a test can kill the
daemon or the pusher at exactly that step."""

from __future__ import annotations

import time

from .platform import Platform


def pause(platform: Platform, step: str) -> None:
    if not platform.settings.test_hooks:
        return
    control = platform.paths.root / "test-pause"
    try:
        if control.read_text().strip() != step:
            return
    except OSError:
        return
    (platform.paths.root / "test-paused").write_text(step)
    while control.exists():
        time.sleep(0.05)
