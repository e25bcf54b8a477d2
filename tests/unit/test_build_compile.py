"""`export` chaining: the compile wrapper sources earlier buildpacks' export files in order.
Runs the real wrapper with bash on the host, outside the sandbox."""

import os
import subprocess

from pushd.build.compile import CHAIN_SCRIPT, compile_argv


def test_argv_names_earlier_exports_in_order():
    argv = compile_argv(2, [0, 1])
    assert argv[:2] == ["bash", "-c"]
    assert argv[4:] == ["/buildpacks/2/bin/compile", "/buildpacks/0/export",
                        "/buildpacks/1/export"]


def test_exports_are_sourced_in_order_before_compile(tmp_path):
    (tmp_path / "e0").write_text("export A=from0 B=from0\n")
    (tmp_path / "e1").write_text("export B=from1\n")
    compile_script = tmp_path / "compile"
    compile_script.write_text('#!/bin/sh\necho "A=$A B=$B pwd=$(pwd) args=$*"\n')
    compile_script.chmod(0o755)
    build = tmp_path / "build"
    build.mkdir()
    env = {"PATH": os.environ["PATH"], "BUILD_DIR": str(build), "CACHE_DIR": "/c",
           "ENV_DIR": "/e"}
    argv = ["bash", "-c", CHAIN_SCRIPT, "x", str(compile_script), str(tmp_path / "e0"),
            str(tmp_path / "missing"), str(tmp_path / "e1")]
    result = subprocess.run(argv, env=env, capture_output=True, text=True, check=True)
    assert result.stdout.strip() == f"A=from0 B=from1 pwd={build} args={build} /c /e"


def test_no_exports_for_the_first_buildpack(tmp_path):
    argv = compile_argv(0, [])
    assert argv[4:] == ["/buildpacks/0/bin/compile"]
