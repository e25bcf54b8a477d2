"""Per-dyno limits a noisy app cannot escape: processes (a fork bomb stays in its dyno)."""

from __future__ import annotations

from .harness import PushdUnderTest, python_app

SPAWNER = '''\
import subprocess
children = []
try:
    for _ in range(400):
        children.append(subprocess.Popen(["sleep", "30"]))
except OSError as err:
    print("refused after", len(children), type(err).__name__)
else:
    print("started all", len(children))
for child in children:
    child.kill()
'''


def test_a_dyno_cannot_start_more_than_its_process_limit(pushd: PushdUnderTest):
    repo = pushd.new_app_repo("forky", python_app("forky", {"spawn.py": SPAWNER}))
    assert pushd.push(repo).returncode == 0
    web = pushd.ssh("run", "forky", "python3", "spawn.py")
    assert web.returncode == 0, web.stderr
    words = web.stdout.split()
    assert words[:2] == ["refused", "after"], web.stdout
    assert 200 <= int(words[2]) < 256  # 256 tasks per dyno, the shell and python included
    assert pushd.http("forky").body.startswith("forky")  # the app itself is fine
