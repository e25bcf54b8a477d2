from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest

from .harness import PushdUnderTest


@pytest.fixture(scope="session")
def pushd(tmp_path_factory: pytest.TempPathFactory):
    """One real pushd daemon for the end-to-end tests, with short timeouts."""
    # not under pytest's 0700 tmp dirs (the apps' uids must reach their slugs), nor under /tmp,
    # which every sandbox hides behind its own: isolation tests must see a real leak
    root = Path(tempfile.mkdtemp(prefix="pushd-e2e-", dir="/var/tmp"))
    root.chmod(0o711)
    platform = PushdUnderTest(root, settings={
        "boot_timeout": 8, "stop_timeout": 5, "drain_seconds": 0.5,
        "crash_backoff_base": 0.5, "crash_backoff_max": 4, "build_timeout": 300,
        "ssh_auth_timeout": 5, "router_header_timeout": 5, "cpu_shares": 700,
        "dyno_disk_mb": 64})
    platform.start()
    yield platform
    platform.stop(everything=True)
    shutil.rmtree(root, ignore_errors=True)
