"""The nodejs buildpack's semver range matcher (buildpacks/nodejs/lib/semver.py)."""

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

LIB = Path(__file__).resolve().parents[2] / "buildpacks" / "nodejs" / "lib" / "semver.py"
_spec = importlib.util.spec_from_file_location("node_semver", LIB)
assert _spec and _spec.loader
semver = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(semver)

VERSIONS = ["0.10.48", "0.12.18", "14.21.3", "16.20.2", "18.19.0", "18.20.8", "20.9.0",
            "20.20.2", "22.0.0", "22.1.0", "22.23.5", "23.0.0-rc.1", "24.22.3", "26.12.1"]


@pytest.mark.parametrize(("spec", "expected"), [
    ("22.1.0", "22.1.0"), ("v22.1.0", "22.1.0"), ("=22.0.0", "22.0.0"),
    ("22", "22.23.5"), ("22.x", "22.23.5"), ("22.1.x", "22.1.0"), ("22.*", "22.23.5"),
    ("*", "26.12.1"), ("", "26.12.1"), ("x", "26.12.1"),
    ("^18", "18.20.8"), ("^18.19.0", "18.20.8"), ("^0.10.1", "0.10.48"), ("^0.0.1", None),
    ("^0.x", "0.12.18"), ("~18.19.0", "18.19.0"), ("~18", "18.20.8"), ("~0.12", "0.12.18"),
    (">=20 <22", "20.20.2"), (">= 20.0.0 < 21", "20.20.2"), (">16.20.2 <20", "18.20.8"),
    (">18", "26.12.1"), (">18 <=22", "22.23.5"), ("<=18.19", "18.19.0"), ("<14", "0.12.18"),
    ("16 || 18", "18.20.8"), ("^14.0.0 || ^16.0.0", "16.20.2"), ("<1 || >=100", "0.12.18"),
    ("16 - 18.19", "18.19.0"), ("16.0.0 - 20.9.0", "20.9.0"), ("14 - 16", "16.20.2"),
    (">=27", None), ("^19", None), ("23.0.0-rc.1", None), (">=23 <24", None),
])
def test_max_satisfying(spec, expected):
    assert semver.max_satisfying(VERSIONS, spec) == expected


@pytest.mark.parametrize("spec", ["latest", "22.1.0.0", "^^22", ">=22 ; rm -rf /", "x" * 300,
                                  "22.a", "1.2.3 - "])
def test_not_a_range(spec):
    with pytest.raises(semver.RangeError):
        semver.max_satisfying(VERSIONS, spec)


def test_satisfies():
    assert semver.satisfies("22.23.5", "^22.0.0")
    assert not semver.satisfies("23.0.0-rc.1", "*")
    assert not semver.satisfies("not-a-version", "*")


def test_command_line():
    def run(spec):
        return subprocess.run([sys.executable, str(LIB), spec], input="\n".join(VERSIONS),
                              capture_output=True, text=True)
    found = run("^20")
    assert (found.returncode, found.stdout) == (0, "20.20.2\n")
    assert run(">=99").returncode == 1
    bad = run("latest")
    assert bad.returncode == 2 and "invalid semver range" in bad.stderr
