"""`pushd stack:build` against the real Docker engine and the host's real apt mirror.

The image is rebuilt (--force) once per run, so every run proves the build itself; its
containers run with no network (`network_mode="none"`): nothing here touches the docker
bridge."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import docker
import pytest

from pushd import stack
from pushd.settings import load

STACK = load({}).stack
IMAGE = stack.image_name(STACK)


@dataclass
class Built:
    state_dir: Path
    output: str
    image_id: str


def stack_build(state_dir: Path, *flags: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pushd.cli", "--state-dir", str(state_dir),
                           "stack:build", *flags], capture_output=True, text=True, timeout=900)


@pytest.fixture(scope="session")
def engine() -> docker.DockerClient:
    try:
        return stack.engine()
    except stack.StackError as err:  # CI must fail here, never skip
        pytest.fail(f"{err}: scripts/test starts the engine", pytrace=False)


@pytest.fixture(scope="session")
def built(engine: docker.DockerClient, tmp_path_factory: pytest.TempPathFactory) -> Built:
    state_dir = tmp_path_factory.mktemp("stackhome")
    done = stack_build(state_dir, "--force")
    assert done.returncode == 0, done.stdout + done.stderr
    return Built(state_dir, done.stdout, engine.images.get(IMAGE).id)


def run_in_stack(engine: docker.DockerClient, *command: str) -> str:
    """Output of a command in a throwaway container of the stack, with no network at all."""
    out = engine.containers.run(IMAGE, list(command), network_mode="none", remove=True,
                                stdout=True, stderr=True)
    return out.decode()


def test_build_shows_progress_and_leaves_no_temporary_root(built: Built) -> None:
    lines = built.output.splitlines()
    assert lines[0].startswith("-----> Making a minimal Debian bookworm from http")
    assert lines[1].startswith("-----> Adding python3, python3-venv, python3-pip, nodejs")
    assert lines[2] == f"-----> Importing the image {IMAGE}"
    assert lines[3].startswith(f"-----> Stack image {IMAGE} built (")
    assert [p.name for p in (built.state_dir / "tmp").iterdir()] == ["stack.lock"]


def test_image_is_tagged_and_labelled_with_the_stack(engine: docker.DockerClient,
                                                     built: Built) -> None:
    image = engine.images.get(built.image_id)
    assert IMAGE in image.tags
    assert image.labels[stack.LABEL] == STACK


def test_python_with_venv_and_pip(engine: docker.DockerClient, built: Built) -> None:
    out = run_in_stack(engine, "sh", "-c", "python3 -m venv /tmp/v && /tmp/v/bin/pip --version"
                       " && /tmp/v/bin/python -c 'import ssl, sys; print(sys.version_info[0])'")
    assert out.startswith("pip ") and out.rstrip().endswith("\n3")


@pytest.mark.parametrize(("command", "expected"), [
    (("node", "--version"), "v"),
    (("npm", "--version"), ""),
    (("gcc", "--version"), "gcc (Debian"),
    (("pg_config", "--version"), "PostgreSQL "),
    (("git", "--version"), "git version "),
    (("curl", "--version"), "curl "),
])
def test_buildpack_tools_run(engine: docker.DockerClient, built: Built,
                             command: tuple[str, ...], expected: str) -> None:
    out = run_in_stack(engine, *command)
    assert out.startswith(expected) and out.strip()


def test_trusted_certificates_are_present(engine: docker.DockerClient, built: Built) -> None:
    out = run_in_stack(engine, "sh", "-c", "ls /etc/ssl/certs | wc -l")
    assert int(out) > 100


def test_a_second_build_keeps_the_image(engine: docker.DockerClient, built: Built) -> None:
    done = stack_build(built.state_dir)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        f"-----> Stack image {IMAGE} is present ({built.image_id[7:19]}); "
        "stack:build --force rebuilds it"]
    assert engine.images.get(IMAGE).id == built.image_id


def test_an_unreachable_mirror_is_one_line_and_leaves_nothing(engine: docker.DockerClient,
                                                              tmp_path: Path) -> None:
    # a closed port on loopback stands for a mirror that does not answer
    apt = tmp_path / "apt"
    (apt / "sources.list.d").mkdir(parents=True)
    (apt / "sources.list.d/debian.sources").write_text(
        "Types: deb\nURIs: http://127.0.0.1:9/debian\nSuites: bookworm\nComponents: main\n")
    builder = stack.StackBuilder(engine, tmp_path / "work", lambda line: None, apt_dir=apt)
    with pytest.raises(stack.StackError) as raised:
        builder.build("pushd-unreachable-test", force=True)
    message = str(raised.value)
    assert "\n" not in message
    assert message.startswith("debootstrap could not make Debian bookworm from "
                              "http://127.0.0.1:9/debian: E: Failed getting release file")
    # the temporary root is gone; its log stays for the operator
    assert sorted(p.suffix for p in (tmp_path / "work").iterdir()) == [".lock", ".log"]
    with pytest.raises(docker.errors.ImageNotFound):
        engine.images.get(stack.image_name("pushd-unreachable-test"))
