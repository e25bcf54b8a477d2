from __future__ import annotations

import pytest

from .harness import new_root, running


@pytest.fixture(scope="session")
def pushd(tmp_path_factory: pytest.TempPathFactory):
    """One real pushd daemon for the end-to-end tests, with short timeouts."""
    yield from running(new_root("pushd-e2e-"), {
        "boot_timeout": 8, "stop_timeout": 5, "drain_seconds": 0.5,
        "crash_backoff_base": 0.5, "crash_backoff_max": 4, "build_timeout": 300,
        "ssh_auth_timeout": 5, "router_header_timeout": 5, "cpu_shares": 700,
        "dyno_disk_mb": 64})
