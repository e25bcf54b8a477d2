"""Compile phase: bin/compile of each chosen buildpack in order, chaining their `export`s."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from ..errors import BuildError
from .detect import Runner, detect
from .sandbox import APP_DIR, CACHE_DIR, ENV_DIR, buildpack_mount

# Runs inside the sandbox: source the `export` file of every earlier buildpack (the multi
# buildpack contract), then hand over to bin/compile. Arguments, never interpolated text.
CHAIN_SCRIPT = """
compile="$1"; shift
for export_file in "$@"; do
  if [ -f "$export_file" ]; then . "$export_file"; fi
done
cd "$BUILD_DIR" || exit 1
exec "$compile" "$BUILD_DIR" "$CACHE_DIR" "$ENV_DIR"
"""


class CompileFailed(BuildError):
    """bin/compile exited non-zero; the buildpack has already printed why."""


def compile_argv(index: int, earlier: Sequence[int]) -> list[str]:
    """argv (inside the sandbox) that compiles with buildpack `index` after `earlier` ones."""
    exports = [f"{buildpack_mount(i)}/export" for i in earlier]
    return ["bash", "-c", CHAIN_SCRIPT, "pushd-compile", f"{buildpack_mount(index)}/bin/compile",
            *exports]


def compile_one(run: Runner, index: int, earlier: Sequence[int],
                out: Callable[[str], None]) -> int:
    """Exit status of bin/compile; its output goes to `out` line by line as it comes."""
    extra = {"BUILDPACK_DIR": buildpack_mount(index), "BUILD_DIR": APP_DIR,
             "CACHE_DIR": CACHE_DIR, "ENV_DIR": ENV_DIR}
    return run(compile_argv(index, earlier), extra, out)


def compile_chain(run: Runner, refs: Sequence[str], detected: tuple[int, str] | None,
                  out: Callable[[str], None],
                  entering: Callable[[str, str], None]) -> list[tuple[int, str]]:
    """Compile the build's buildpacks in order; the (index, name) of each, in order.

    `detected`: the bundled buildpack automatic detection chose up front, compiled alone.
    Without it every buildpack of `refs` (`.buildpacks`, `buildpacks:add`, a `BUILDPACK_URL`
    list) has its bin/detect run right before its own bin/compile, after the earlier ones
    compiled, as on Heroku: a buildpack that rewrites the tree (a monorepo's APP_BASE moved
    to the root) decides what the next one detects. `entering(phase, name)` is told of each
    step ("detect", "") and ("compile", name) before it runs."""
    steps: list[tuple[int, str | None]] = (
        [detected] if detected is not None else [(i, None) for i in range(len(refs))])
    chosen: list[tuple[int, str]] = []
    for index, name in steps:
        if name is None:
            entering("detect", "")
            name = detect(run, index)
            if name is None:
                raise BuildError(f"App not compatible with buildpack: {refs[index]}",
                                 phase="detect")
        entering("compile", name)
        out(f"-----> {name} app detected\n")
        status = compile_one(run, index, [i for i, _ in chosen], out)
        if status != 0:
            raise CompileFailed(f"bin/compile exited with status {status}", phase="compile")
        chosen.append((index, name))
    return chosen
