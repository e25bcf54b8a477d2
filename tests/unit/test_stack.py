"""The stack image's builders: apt config parsing, the mirror, the exact argv, and the
decisions of StackBuilder (keep, refuse) with a fake engine."""

from __future__ import annotations

from pathlib import Path

import docker.errors
import pytest
from click.testing import CliRunner

from pushd import stack
from pushd.cli import main
from pushd.stack import AptSource, StackBuilder, StackError

DEB822 = """\
Types: deb
# http://snapshot.debian.org/archive/debian/20250520T000000Z
URIs: http://mirror.example.org/debian
Suites: bookworm bookworm-updates
Components: main contrib
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb-src
URIs: http://src.example.org/debian
Suites: bookworm
Components: main

Types: deb
URIs: http://off.example.org/debian
Suites: bookworm
Components: main
Enabled: no

Types: deb
URIs: http://security.example.org/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
"""

ONE_LINE = """\
# the main archive
deb [arch=amd64 signed-by=/k.gpg] https://ftp.example.net/debian bookworm main non-free-firmware
deb-src https://ftp.example.net/debian bookworm main
deb https://ftp.example.net/debian bookworm-updates main  # updates
deb cdrom:[Debian 12]/ bookworm main
"""


def test_deb822_keeps_enabled_binary_stanzas() -> None:
    assert stack.parse_deb822(DEB822) == [
        AptSource("http://mirror.example.org/debian", ("bookworm", "bookworm-updates"),
                  ("main", "contrib")),
        AptSource("http://security.example.org/debian-security", ("bookworm-security",),
                  ("main",)),
    ]


def test_one_line_format_skips_options_sources_and_comments() -> None:
    assert stack.parse_sources_list(ONE_LINE) == [
        AptSource("https://ftp.example.net/debian", ("bookworm",), ("main", "non-free-firmware")),
        AptSource("https://ftp.example.net/debian", ("bookworm-updates",), ("main",)),
        AptSource("cdrom:[Debian", ("12]/",), ("bookworm", "main")),  # dropped by host_sources
    ]


def test_host_sources_reads_both_formats_and_keeps_network_ones(tmp_path: Path) -> None:
    (tmp_path / "sources.list.d").mkdir()
    (tmp_path / "sources.list").write_text(ONE_LINE)
    (tmp_path / "sources.list.d/debian.sources").write_text(DEB822)
    uris = [s.uri for s in stack.host_sources(tmp_path)]
    assert uris == ["https://ftp.example.net/debian", "https://ftp.example.net/debian",
                    "http://mirror.example.org/debian",
                    "http://security.example.org/debian-security"]


def test_the_mirror_is_the_one_serving_the_suite_itself() -> None:
    sources = stack.parse_deb822(DEB822)
    assert stack.mirror_for(sources) == "http://mirror.example.org/debian"
    security_only = [s for s in sources if "security" in s.uri]
    with pytest.raises(StackError, match="no apt source for Debian bookworm main"):
        stack.mirror_for(security_only)


def test_chroot_sources_list_has_the_security_suite_only_when_the_host_lists_it() -> None:
    sources = stack.parse_deb822(DEB822)
    assert stack.chroot_sources_list(sources) == (
        "deb http://mirror.example.org/debian bookworm main\n"
        "deb http://mirror.example.org/debian bookworm-updates main\n"
        "deb http://security.example.org/debian-security bookworm-security main\n")
    assert stack.chroot_sources_list(stack.parse_sources_list(ONE_LINE)) == (
        "deb https://ftp.example.net/debian bookworm main\n"
        "deb https://ftp.example.net/debian bookworm-updates main\n")


def test_argv_builders() -> None:
    root = Path("/var/lib/pushd/tmp/stack-x/rootfs")
    assert stack.debootstrap_argv(root, "http://mirror.example.org/debian") == [
        "debootstrap", "--variant=minbase", "bookworm", str(root),
        "http://mirror.example.org/debian"]
    assert stack.chroot_apt_argv(root, "install", "git") == [
        "chroot", str(root), "apt-get", "-y", "-q", "--no-install-recommends", "install", "git"]
    assert stack.image_name("pushd-22") == "pushd/stack:pushd-22"
    assert "LABEL io.pushd.stack=pushd-22" in stack.import_changes("pushd-22")
    for package in ("python3", "python3-venv", "python3-pip", "nodejs", "npm",
                    "ca-certificates", "build-essential", "libpq-dev", "git", "curl",
                    "nginx-light"):
        assert package in stack.PACKAGES


class FakeImages:
    def __init__(self, present: dict[str, str]) -> None:
        self.present = present

    def get(self, name: str) -> object:
        if name not in self.present:
            raise docker.errors.ImageNotFound(name)
        return type("Image", (), {"id": self.present[name]})()


class FakeClient:
    def __init__(self, present: dict[str, str]) -> None:
        self.images = FakeImages(present)


def test_a_present_image_is_kept_without_running_anything(tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(stack.subprocess, "run", lambda *a, **k: pytest.fail("ran something"))
    said: list[str] = []
    client = FakeClient({"pushd/stack:pushd-22": "sha256:" + "ab" * 32})
    image = StackBuilder(client, tmp_path, said.append).build("pushd-22")
    assert image == "sha256:" + "ab" * 32
    assert said == ["-----> Stack image pushd/stack:pushd-22 is present (abababababab); "
                    "stack:build --force rebuilds it"]


def test_without_debootstrap_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(stack.shutil, "which", lambda name: None)
    with pytest.raises(StackError, match="^debootstrap is missing: apt-get install debootstrap"):
        StackBuilder(FakeClient({}), tmp_path, print).build("pushd-22", force=True)


def test_without_an_apt_source_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(stack.shutil, "which", lambda name: "/usr/sbin/" + name)
    builder = StackBuilder(FakeClient({}), tmp_path / "work", print, apt_dir=tmp_path)
    with pytest.raises(StackError, match="no apt source for Debian bookworm"):
        builder.build("pushd-22")


def test_cli_without_an_engine_says_so_in_one_line(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        main, ["--state-dir", str(tmp_path), "stack:build"],
        env={"DOCKER_HOST": f"unix://{tmp_path}/no-engine.sock"})
    assert result.exit_code == 1
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(" !    no Docker engine answers (start dockerd")
