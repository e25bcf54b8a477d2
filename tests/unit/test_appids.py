"""A destroyed app's id (its uid) goes to a new app only once nothing of the old one remains."""

from __future__ import annotations

import os
from pathlib import Path

from pushd.appids import remains, running_uids
from pushd.paths import Paths


def test_each_kind_of_remains_holds_the_id(tmp_path: Path):
    paths = Paths(tmp_path / "state")
    paths.ensure()
    assert remains(paths, 7, 40007, set()) == []
    paths.app_dir(7).mkdir()
    (paths.dynos_dir / "7-web.1-v3-abcdef").mkdir()
    (paths.dynos_dir / "17-web.1-v3-abcdef").mkdir()  # another app's
    found = remains(paths, 7, 40007, {0, 40007})
    assert found == [f"folder {paths.app_dir(7)}", "dyno 7-web.1-v3-abcdef",
                     "processes of uid 40007"]
    assert remains(paths, 1, 40001, {0, 40007}) == []


def test_running_uids_sees_this_process():
    assert os.getuid() in running_uids()
