"""Repositories the bundled buildpacks cannot build, told apart at detect.

Automatic detection would otherwise build a Ruby or Go app that also has a Procfile as a
Procfile-only app, which then fails at run time with `command not found`. A root file that
marks another language stops the build at detect, in one line naming what was found and what
is supported. Only names are looked at (lstat, no reads): the files are the tenant's.
"""

from __future__ import annotations

import os
from pathlib import Path

# root file -> the language it marks, in the order they are reported
MARKERS = (
    ("Gemfile", "Ruby"), ("go.mod", "Go"), ("pom.xml", "Java (Maven)"),
    ("build.gradle", "Java (Gradle)"), ("build.gradle.kts", "Java (Gradle)"),
    ("composer.json", "PHP"), ("Cargo.toml", "Rust"), ("mix.exs", "Elixir"),
    ("Dockerfile", "a Dockerfile"),
)
SUPPORTED = ("Python (requirements.txt, pyproject.toml, setup.py), Node.js (package.json), "
             "static sites (index.html, public/, static.json) and Procfile-only apps")
# the bundled buildpacks' names (bin/detect's line) that a marker file overrules
FALLBACKS = ("Procfile",)


def found_markers(app_dir: Path) -> list[str]:
    """'Gemfile (Ruby)' for each marker file at the root of the checked-out app."""
    return [f"{name} ({language})" if not language.startswith("a ") else name
            for name, language in MARKERS if os.path.lexists(app_dir / name)]


def refusal(app_dir: Path, detected: str | None) -> str | None:
    """The one-line error when automatic detection found nothing, or only the Procfile
    fallback, in a repository that marks an unsupported language; else None."""
    if detected is not None and detected not in FALLBACKS:
        return None
    found = found_markers(app_dir)
    if not found:
        return None
    return (f"Unsupported app: found {', '.join(found)}; the bundled buildpacks build "
            f"{SUPPORTED} (set another with buildpacks:set)")
