"""One-off dynos over real OpenSSH: the command reaches a shell as typed, and a one-off dies
with its client."""

from __future__ import annotations

import os
import signal
import subprocess
import time

from .harness import PushdUnderTest, python_app
from .test_dynos import deploy, wait_until


def test_run_command_goes_to_a_shell_as_typed(pushd: PushdUnderTest):
    deploy(pushd, "shelly", python_app("s"))
    piped = pushd.ssh("run", "shelly", "echo $HOME | wc -c")
    assert piped.returncode == 0, piped.stderr
    assert piped.stdout.strip() == "5"  # "/app\n"
    quoted = pushd.ssh("run", "shelly", "python3 -c 'print(6*7)'")
    assert quoted.returncode == 0, quoted.stderr
    assert quoted.stdout == "42\n"
