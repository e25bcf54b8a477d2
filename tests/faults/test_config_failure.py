"""A config change whose release fails (issue 8): the value stays in `config`, marked
[not live], while the serving release keeps running without it; the change says so when it
fails, and the mark goes once a release with the value comes up."""

from __future__ import annotations

from ..e2e.harness import PushdUnderTest, python_app

START = '''\
import os
import sys

if os.environ.get("MOOD") == "broken":
    print("refusing to start: MOOD is broken", flush=True)
    sys.exit(3)
os.execvp("python3", ["python3", "app.py"])
'''


def test_a_failed_config_release_leaves_the_value_marked_not_live(platform: PushdUnderTest):
    files = python_app("moody", {"start.py": START, "Procfile": "web: python3 start.py\n"})
    platform.deploy("faults-config", files)
    platform.wait_for("faults-config", "moody")
    assert platform.ssh("config:set", "faults-config", "MOOD=calm").returncode == 0
    platform.wait_for("faults-config", "calm", path="/env/MOOD")

    failed = platform.ssh("config:set", "faults-config", "MOOD=broken")
    assert failed.returncode != 0
    said = failed.stderr.splitlines()
    assert said[0].startswith(" !    Release v3 failed: web.1 exited with status 3"), said
    assert said[0].endswith("; the previous release keeps serving. MOOD stays set in `config`, "
                            "marked [not live] until a release with the change comes up"), said
    assert platform.http("faults-config", path="/env/MOOD").body == "calm"  # v2 serves on

    shown = platform.ssh("config", "faults-config").stdout.splitlines()
    assert shown == ["=== faults-config Config Vars",
                     "MOOD: broken  [not live]",
                     " !    Not live in the serving release v2: the release that carried them "
                     "failed (see `releases`); they go live with the next release"]
    assert platform.ssh("config:get", "faults-config", "MOOD").stdout == "broken\n"

    assert platform.ssh("config:set", "faults-config", "MOOD=sunny").returncode == 0
    platform.wait_for("faults-config", "sunny", path="/env/MOOD")
    assert platform.ssh("config", "faults-config").stdout.splitlines() == [
        "=== faults-config Config Vars", "MOOD: sunny"]
