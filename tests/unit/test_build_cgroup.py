"""The build's cgroups on a fake cgroup tree: limits written, the entering argv, events read."""

from pathlib import Path

from pushd.build.cgroup import BuildCgroup, BuildLimits, group_prefix


def fake_tree(root: Path, controllers=("memory", "pids", "cpu")) -> None:
    for ctrl in controllers:
        (root / ctrl).mkdir(parents=True)
        (root / ctrl / "cgroup.procs").write_text("")


def test_limits_are_written_and_every_group_is_entered(tmp_path):
    fake_tree(tmp_path)
    group = BuildCgroup("build-x-7-abc", BuildLimits(256, 100, 50), root=tmp_path)
    assert group.create() == []
    base = Path("pushd") / "build-x-7-abc"
    assert (tmp_path / "memory" / base / "memory.limit_in_bytes").read_text() == str(256 << 20)
    assert (tmp_path / "memory" / base / "memory.memsw.limit_in_bytes").read_text() == \
        str(256 << 20)
    assert (tmp_path / "pids" / base / "pids.max").read_text() == "100"
    assert (tmp_path / "cpu" / base / "cpu.cfs_quota_us").read_text() == "50000"
    assert (tmp_path / "cpu" / base / "cpu.cfs_period_us").read_text() == "100000"
    argv = group.enter_argv()
    assert argv[:2] == ["/bin/sh", "-c"] and argv[-1] == "--"
    assert argv[4:-1] == [str(tmp_path / ctrl / base / "cgroup.procs")
                          for ctrl in ("memory", "pids", "cpu")]


def test_a_missing_controller_is_reported_and_skipped(tmp_path):
    fake_tree(tmp_path, ("memory",))
    group = BuildCgroup("b", BuildLimits(1, 1, 1), root=tmp_path)
    assert group.create() == ["pids", "cpu"]
    assert len(group.enter_argv()) == 6  # sh -c script $0 memory-procs --


def test_oom_kill_and_refused_forks_are_read_from_the_kernels_counters(tmp_path):
    fake_tree(tmp_path)
    group = BuildCgroup("b", BuildLimits(1, 1, 1), root=tmp_path)
    group.create()
    memory, pids = group.made["memory"], group.made["pids"]
    (memory / "memory.oom_control").write_text("oom_kill_disable 0\nunder_oom 0\noom_kill 0\n")
    (pids / "pids.events").write_text("max 0\n")
    assert not group.oom_killed() and not group.pids_exhausted()
    (memory / "memory.oom_control").write_text("oom_kill_disable 0\nunder_oom 0\noom_kill 1\n")
    (pids / "pids.events").write_text("max 3\n")
    assert group.oom_killed() and group.pids_exhausted()


def test_group_names_differ_per_state_dir_and_app():
    assert group_prefix(Path("/var/lib/pushd"), 7).startswith("build-")
    assert group_prefix(Path("/var/lib/pushd"), 7).endswith("-7-")
    assert group_prefix(Path("/var/lib/pushd"), 7) != group_prefix(Path("/srv/pushd"), 7)
