from __future__ import annotations

from pathlib import Path

import pytest

from .harness import PushdUnderTest


@pytest.fixture(scope="session")
def pushd(tmp_path_factory: pytest.TempPathFactory):
    """One real pushd daemon for the end-to-end tests, with short timeouts."""
    root = Path(tmp_path_factory.mktemp("pushd"))
    platform = PushdUnderTest(root, settings={
        "boot_timeout": 8, "stop_timeout": 5, "drain_seconds": 0.5,
        "crash_backoff_base": 0.5, "crash_backoff_max": 4, "build_timeout": 300})
    platform.start()
    yield platform
    platform.stop(everything=True)
