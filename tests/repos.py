"""Real commits pushed to an app's bare repo, as a `git push` leaves them."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path


def commit_and_push(repo: Path, scratch: Path, source: Path | None = None,
                    files: dict[str, str] | None = None) -> str:
    """Commit `source`'s files (plus `files`) in a new work tree under `scratch` and force-push
    them to `repo`'s main (the bare repo is made if missing); the commit's sha."""
    if not repo.exists():
        repo.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(["git", "init", "-q", "--bare", str(repo)], check=True)
    work = Path(tempfile.mkdtemp(dir=scratch))
    if source is not None:
        shutil.copytree(source, work, dirs_exist_ok=True)
    for name, text in (files or {}).items():
        (work / name).parent.mkdir(parents=True, exist_ok=True)
        (work / name).write_text(text)
    git = ["git", "-C", str(work), "-c", "user.name=t", "-c", "user.email=t@example.com"]
    subprocess.run(["git", "init", "-q", str(work)], check=True)
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "deploy"], check=True)
    subprocess.run([*git, "push", "-q", "-f", str(repo), "HEAD:refs/heads/main"], check=True)
    return subprocess.run([*git, "rev-parse", "HEAD"], check=True, capture_output=True,
                          text=True).stdout.strip()
