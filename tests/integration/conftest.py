"""Integration tests run the real parts: they fail (never skip) when a part is missing."""

from __future__ import annotations

import os
import shutil

import pytest


@pytest.fixture(autouse=True, scope="session")
def real_parts() -> None:
    if os.geteuid() != 0:
        pytest.fail("integration tests need root (uids per app, mounts, cgroups): run "
                    "scripts/test as root", pytrace=False)
    missing = [tool for tool in ("bwrap", "nginx", "setpriv", "git") if not shutil.which(tool)]
    if missing:
        pytest.fail(f"missing {', '.join(missing)}: run scripts/test, which installs them",
                    pytrace=False)
