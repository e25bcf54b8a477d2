"""The sandbox runtime's side of resource limits, for real: the CPU cap in the dyno's cgroup
and the memory use it reports (`Runtime.memory`) while the dyno runs."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from ..polling import wait_until
from .test_sandbox import env, info_of, spec  # noqa: F401  (env: the fixture)

MB = 1024 * 1024
HOLDER = "python3 -c 'import time; held = b\"x\" * (40 << 20); time.sleep(120)'"


def test_a_dyno_reports_its_memory_and_has_its_cpu_cap(env):  # noqa: F811
    rt = env["runtime"]
    s = dataclasses.replace(spec(env, HOLDER, "1-worker.1-limits", kind="worker",
                                 memory_mb=64), cpu_limit=0.5)
    rt.start(s)
    use = wait_until(lambda: (m := rt.memory(s.id)) and m.usage >= 40 * MB and m)
    assert use.limit == 64 * MB and use.usage < 64 * MB
    cpu = Path("/sys/fs/cgroup/cpu/pushd") / s.id
    assert (cpu / "cpu.cfs_quota_us").read_text().strip() == "50000"
    assert (cpu / "cpu.cfs_period_us").read_text().strip() == "100000"
    assert info_of(rt, s.id).running
    rt.stop(s.id)
    wait_until(lambda: not info_of(rt, s.id).running)
    rt.remove(s.id)
    assert rt.memory(s.id) is None  # gone with its cgroup
    assert not cpu.exists()
