"""The dyno shim's resident part, `shim.c`, and the endpoint forwarder, `netfwd.c`, built with
the host's C compiler on first use.

The binary lives in the state dir under a name keyed by the source's and the flags' hash
(`libexec/pushd-shim-<hash>`), so an upgraded source is built again and a running dyno keeps
the binary it was started with. It is compiled beside its final name and renamed over it:
dynos started at the same moment never see half a binary.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import threading
from pathlib import Path

from ..errors import RuntimeFailure
from ..paths import Paths

SOURCE = Path(__file__).with_name("shim.c")
FORWARDER = Path(__file__).with_name("netfwd.c")  # pushd-netfwd (`netns.forward`)
CFLAGS = ("-std=gnu11", "-Wall", "-Wextra", "-O2")
SYSTEM_PATH = "/usr/local/bin:/usr/bin:/bin"


def binary_path(paths: Paths, source: Path = SOURCE) -> Path:
    digest = hashlib.sha256(source.read_bytes() + " ".join(CFLAGS).encode()).hexdigest()
    name = "pushd-shim" if source == SOURCE else f"pushd-{source.stem}"
    return paths.root / "libexec" / f"{name}-{digest[:16]}"


def compile_argv(compiler: str, output: Path, source: Path = SOURCE) -> list[str]:
    return [compiler, *CFLAGS, "-o", str(output), str(source)]


def ensure(paths: Paths, source: Path = SOURCE) -> Path:
    """The binary for this source (the shim's, unless told), built now if it is not there
    yet. Raises RuntimeFailure (one line) when it cannot be built."""
    target = binary_path(paths, source)
    if target.exists():
        return target
    compiler = shutil.which("cc", path=SYSTEM_PATH) or shutil.which("gcc", path=SYSTEM_PATH)
    if compiler is None:
        raise RuntimeFailure("No C compiler (cc) to build the dyno shim with: install gcc and "
                             "libc6-dev (scripts/install does)")
    target.parent.mkdir(mode=0o755, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        result = subprocess.run(compile_argv(compiler, tmp, source), capture_output=True, text=True,
                                cwd="/")
        if result.returncode != 0:
            lines = [line for line in result.stderr.splitlines() if "error" in line]
            reason = (lines or result.stderr.strip().splitlines() or ["no output"])[0]
            raise RuntimeFailure(f"Could not build the dyno shim with {compiler}: {reason}")
        os.chmod(tmp, 0o755)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return target
