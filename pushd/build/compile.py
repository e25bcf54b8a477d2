"""Compile phase: bin/compile of each chosen buildpack in order, chaining their `export`s."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from ..errors import BuildError
from .detect import Runner
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
