"""app.json formation `size` (Heroku's dyno sizes) sets the type's memory limit: the push
says so, `resource:report` shows it, the dyno's cgroup has it; an unknown size fails the push
with one line naming the sizes, and the running release keeps serving."""

from __future__ import annotations

import json

from ..polling import wait_until
from .harness import PushdUnderTest, python_app
from .test_resources import MB, MEMORY, report, running_dyno, setting

APP = "release-sized"


def test_formation_size_is_the_types_memory_limit(pushd: PushdUnderTest):
    sized = {"formation": {"web": {"quantity": 1, "size": "Standard-2X"}}}
    repo = pushd.new_app_repo(APP, python_app("sized", {"app.json": json.dumps(sized)}))
    pushed = pushd.push(repo)
    assert pushed.returncode == 0, pushed.stderr
    assert "web dynos are standard-2x: 1g of memory each" in pushed.stderr
    assert report(pushd, APP)[2] == "web   1g (set)  unlimited (default)"
    web = wait_until(lambda: running_dyno(pushd, APP, "web", "app.py"), timeout=60)
    assert setting(MEMORY / web.name, "memory.limit_in_bytes") == str(1024 * MB)

    pushd.commit(repo, {"app.json": json.dumps({"formation": {"web": {"size": "huge-9x"}}}),
                        "app.py": python_app("not this one")["app.py"]})
    refused = pushd.push(repo)
    assert refused.returncode != 0
    said = [line.rstrip() for line in refused.stderr.splitlines() if "app.json" in line]
    assert said == ["remote:  !     app.json: formation.web.size must be one of eco, basic, "
                    "standard-1x, standard-2x, performance-m, performance-l"], refused.stderr
    assert pushd.http(APP).body.startswith("sized")
