"""builds:cancel past the build's cgroups (build/cancel.py): the stoppers a running `docker
build` registers, and the app's labelled build containers, with a fake engine."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

from pushd.build import cancel
from pushd.runtime.docker.hooks import DockerSupport
from pushd.runtime.docker.labels import app_filter
from pushd.runtime.support import LocalSupport


class FakeContainer:
    def __init__(self) -> None:
        self.killed = False

    def kill(self) -> None:
        self.killed = True


class FakeEngine:
    def __init__(self, containers: list[FakeContainer]) -> None:
        self.containers, self._running, self.asked = self, containers, []

    def list(self, filters: dict) -> list[FakeContainer]:
        self.asked.append(filters)
        return self._running


def test_stoppers_run_while_registered_and_build_containers_are_killed(tmp_path: Path):
    stopped: list[str] = []
    container = FakeContainer()
    engine = FakeEngine([container])
    platform = SimpleNamespace(settings=SimpleNamespace(state_dir=tmp_path))
    docker_support = DockerSupport(platform, client=engine)
    sandbox_support = LocalSupport(platform)
    with cancel.stoppable(7, lambda: stopped.append("step")):
        assert cancel.stop_all(7) + sandbox_support.cancel_builds(7) == 1  # no engine asked
        assert cancel.stop_all(8) + sandbox_support.cancel_builds(8) == 0  # another app's
        assert cancel.stop_all(7) + docker_support.cancel_builds(7) == 2
    assert stopped == ["step", "step"] and container.killed
    assert engine.asked == [app_filter(tmp_path, 7, "io.pushd.build=1")]
    assert cancel.stop_all(7) == 0  # the build ended: nothing left
