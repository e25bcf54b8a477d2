"""Public keys: real keys made by ssh-keygen, parsed and judged."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from pushd.errors import Forbidden
from pushd.sshkeys import parse_public_key


def keygen(tmp_path: Path, *args: str) -> str:
    path = tmp_path / "key"
    subprocess.run(["ssh-keygen", "-q", "-N", "", "-C", "k", "-f", str(path), *args],
                   check=True)
    return (tmp_path / "key.pub").read_text()


def test_rsa_keys_under_2048_bits_are_refused(tmp_path: Path):
    with pytest.raises(Forbidden, match=r"^RSA keys under 2048 bits are refused \(this one "
                                         r"has 1024\)"):
        parse_public_key(keygen(tmp_path, "-t", "rsa", "-b", "1024"))


@pytest.mark.parametrize("args", [("-t", "rsa", "-b", "2048"), ("-t", "ed25519"),
                                  ("-t", "ecdsa", "-b", "256")])
def test_strong_keys_are_accepted(tmp_path: Path, args: tuple[str, ...]):
    line, fingerprint = parse_public_key(keygen(tmp_path, *args))
    assert fingerprint.startswith("SHA256:") and line.split()[0] in ("ssh-rsa", "ssh-ed25519",
                                                                     "ecdsa-sha2-nistp256")
