"""A stand-in launch for tests/unit/test_docker_forkserver.py: records its pid, waits while
`<root>/hold` exists and `<root>/go` does not, then says it is done."""

from __future__ import annotations

import os
import time
from pathlib import Path


def act(root: Path, dyno_id: str) -> None:
    (root / f"{dyno_id}.pid").write_text(str(os.getpid()))
    deadline = time.monotonic() + 60
    while (root / "hold").exists() and not (root / "go").exists() \
            and time.monotonic() < deadline:
        time.sleep(0.01)
    (root / f"{dyno_id}.done").write_text("done")
