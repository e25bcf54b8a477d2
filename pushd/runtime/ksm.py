"""Kernel same-page merging (KSM) for the platform's per-dyno processes: opt-in, `dyno_ksm`.

(Dynos no longer have a pasta each, see `egress.py`: what is below was measured when they
did; the shim still opts in its helpers, now the endpoint's forwarder.)

Each dyno's pasta (passt 2023-03, Debian 12) writes zeros over about 22 MB of its static
buffers as it starts: about 29 MB PSS per dyno, far more than the shim, bwrap or a small app.
With KSM those zeroed pages are mapped to the kernel's zero page (`use_zero_pages`) and the
pages every pasta fills alike are shared, which leaves about 2 MB per pasta.

KSM scans only the memory of processes that opt in. The shim opts in after it has started
the sandbox, so its pasta (forked later) inherits it across its execs while the app's
processes never do: no page of a tenant is ever merged with another's. Turning KSM on
(`/sys/kernel/mm/ksm/run`) is host-wide, hence a setting, applied at `pushd up`.
"""

from __future__ import annotations

import ctypes
from pathlib import Path

from ..errors import RuntimeFailure

KSM = Path("/sys/kernel/mm/ksm")
PR_SET_MEMORY_MERGE = 67  # Linux 6.4; kept across execve since 6.7


def enable_host(root: Path = KSM) -> None:
    """KSM running, merging zeroed pages into the zero page. RuntimeFailure (one line) when
    the kernel has no KSM or refuses."""
    try:
        zero = root / "use_zero_pages"
        if zero.exists() and zero.read_text().strip() != "1":
            zero.write_text("1")
        if (root / "run").read_text().strip() != "1":
            (root / "run").write_text("1")
    except OSError as err:
        raise RuntimeFailure(f"dyno_ksm: cannot turn on kernel same-page merging at {root} "
                             f"({err.strerror or err}); set `dyno_ksm: false` in pushd.yaml"
                             ) from None


def opt_in() -> bool:
    """This process, and what it starts from now on, opt in to merging; False where the
    kernel does not know the call (before Linux 6.4)."""
    libc = ctypes.CDLL(None, use_errno=True)
    return libc.prctl(PR_SET_MEMORY_MERGE, 1, 0, 0, 0) == 0
