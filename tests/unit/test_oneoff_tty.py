"""A tty one-off's pty: a sane size when the client sent none, and it follows the client's
window (ssh window-change requests, the local terminal's SIGWINCH)."""

from __future__ import annotations

import time

from pushd.gitserver.session import terminal_name
from pushd.runtime.sandboxio import ClientEnd, start_tty

from .test_oneoff_fds import TerminalClient


class ResizingClient(TerminalClient):
    """`ssh -tt` from a pipe: no size at first (0x0), a window-change later."""

    def __init__(self) -> None:
        super().__init__()
        self.term_size = (0, 0)


def test_the_pty_starts_at_80x24_without_a_size_and_follows_the_window():
    client = ResizingClient()
    # the window changes while the command sleeps, between its two `stty size`
    proc, copiers = start_tty(
        ["bash", "-c", "stty size; sleep 1; stty size"], ClientEnd(client),
        {"PATH": "/usr/bin:/bin"})
    try:
        deadline = time.monotonic() + 5
        while b"24 80" not in b"".join(client.output) and time.monotonic() < deadline:
            time.sleep(0.02)
        client.term_size = (132, 50)
        assert proc.wait(timeout=10) == 0
        for copier in copiers:
            copier.join(5)
    finally:
        client.hangup.set()
        if proc.poll() is None:
            proc.kill()
    text = b"".join(client.output).decode().replace("\r", "")
    assert text.splitlines() == ["24 80", "50 132"]


def test_term_names_from_the_pty_request_are_checked():
    assert terminal_name(b"xterm-256color") == "xterm-256color"
    assert terminal_name("screen.xterm-new") == "screen.xterm-new"
    for bad in (b"", None, b"x\nEVIL=1", b"a" * 80, b"-x"):
        assert terminal_name(bad) is None
