"""The package's version is the changelog's latest release (README's `### X.Y.Z (date)`)."""

import re
import tomllib
from pathlib import Path

import pushd

ROOT = Path(__file__).resolve().parents[2]


def test_the_package_version_is_the_latest_release_in_the_changelog():
    released = re.findall(r"^### (\d+\.\d+\.\d+) \(", (ROOT / "README.md").read_text(), re.M)
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert released and project["version"] == released[0] == pushd.__version__
