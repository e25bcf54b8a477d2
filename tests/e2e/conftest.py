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


@pytest.fixture(scope="session")
def addons_pushd(tmp_path_factory: pytest.TempPathFactory):
    """The daemon of the add-on tests, whose state dir holds the session's one postgres
    cluster. Its app uids lie apart from every other instance's (uid_base), so the rules of
    other pushd instances on a shared host (an older catch-all refusal of host addresses
    included) never apply to its dynos reaching their add-ons: its own table is what is
    tested."""
    yield from running(new_root("pushd-addons-"), {
        "boot_timeout": 20, "stop_timeout": 5, "drain_seconds": 0.5,
        "crash_backoff_base": 0.5, "crash_backoff_max": 4, "build_timeout": 300,
        "uid_base": 20000, "addon_port_range": [19000, 19999]})
