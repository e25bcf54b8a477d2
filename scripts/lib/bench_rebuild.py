"""`scripts/bench --rebuild`: a Python app's first build against a rebuild with unchanged
dependencies, per installer (pip, uv, poetry, pipenv; flask + gunicorn from
scripts/lib/rebuild_apps/). A build's time is from `git push` to the `-----> Launching...`
line (the pack sent, the build done, before the release starts)."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

APPS = Path(__file__).resolve().parent / "rebuild_apps"
SERVER = 'from flask import Flask\napp = Flask(__name__)\n\n\n@app.get("/")\ndef hello():\n' \
    '    return "rebuild bench"\n'
INSTALLERS = ("pip", "uv", "poetry", "pipenv")


def build_seconds(platform, repo: Path) -> float:  # noqa: ANN001
    start = time.monotonic()
    proc = subprocess.Popen(["git", "push", "platform", "main"], cwd=repo, env=platform.env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    built = None
    said = []
    assert proc.stderr is not None
    for line in proc.stderr:
        said.append(line)
        if built is None and "-----> Launching..." in line:
            built = time.monotonic() - start
    if proc.wait() != 0 or built is None:
        raise SystemExit(f"push of {repo.name} failed:\n{''.join(said[-15:])}")
    return built


def rows(platform, installers: list[str]) -> list[tuple[str, str, str]]:  # noqa: ANN001
    found = []
    for installer in installers:
        files = {p.name: p.read_text() for p in (APPS / installer).iterdir() if p.is_file()}
        files.update({"app.py": SERVER, "Procfile": "web: gunicorn -b 127.0.0.1:$PORT app:app\n"})
        repo = platform.new_app_repo(f"rebuild-{installer}", files)
        first = build_seconds(platform, repo)
        platform.commit(repo, {"README": "a change that leaves the dependencies alone\n"})
        again = build_seconds(platform, repo)
        found.append((f"{installer}: first build / rebuild, deps unchanged",
                      f"{first:.1f} s / {again:.1f} s = {again / first:.2f}",
                      "target <= 0.4 (was 1.02 for pip)"))
    return found
