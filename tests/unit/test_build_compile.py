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


def chain_runner(declines=()):
    """A fake sandbox: records ("detect"|"compile", index) in order; detect prints a name."""
    calls = []

    def run(command, extra_env, on_line):
        text = " ".join(command)
        kind = "detect" if "/bin/detect" in text else "compile"
        index = int(text.split(f"/bin/{kind}")[0].rsplit("/", 1)[1])
        calls.append((kind, index))
        if kind == "detect":
            if index in declines:
                return 1
            on_line(f"Pack{index}\n")
        return 0

    return run, calls


def test_each_detect_runs_right_before_its_compile():
    from pushd.build.compile import compile_chain
    run, calls = chain_runner()
    steps = []
    chosen = compile_chain(run, ["a", "b", "c"], None, lambda line: None,
                           lambda phase, name: steps.append((phase, name)))
    assert calls == [("detect", 0), ("compile", 0), ("detect", 1), ("compile", 1),
                     ("detect", 2), ("compile", 2)]
    assert chosen == [(0, "Pack0"), (1, "Pack1"), (2, "Pack2")]
    assert steps[:2] == [("detect", ""), ("compile", "Pack0")]


def test_a_declining_buildpack_stops_after_the_earlier_ones_compiled():
    import pytest

    from pushd.build.compile import compile_chain
    from pushd.errors import BuildError
    run, calls = chain_runner(declines={1})
    with pytest.raises(BuildError, match="App not compatible with buildpack: b"):
        compile_chain(run, ["a", "b", "c"], None, lambda line: None, lambda p, n: None)
    assert calls == [("detect", 0), ("compile", 0), ("detect", 1)]


def test_automatic_detection_compiles_the_one_found_without_detecting_again():
    from pushd.build.compile import compile_chain
    run, calls = chain_runner()
    lines = []
    chosen = compile_chain(run, ["python", "nodejs"], (1, "Node.js"), lines.append,
                           lambda p, n: None)
    assert calls == [("compile", 1)] and chosen == [(1, "Node.js")]
    assert lines == ["-----> Node.js app detected\n"]
