"""One SSH session: an exec request routed to git or to an admin command."""

from __future__ import annotations

import logging
import re
import shlex
import threading
from collections.abc import Callable

import paramiko

from .. import diskspace, names
from ..commands.apps import create_app
from ..commands.registry import Context, dispatch
from ..errors import Forbidden, NotFound, PushdError
from ..models import App, Key
from ..platform import Platform
from . import receive

log = logging.getLogger("pushd.ssh")
GIT_COMMANDS = ("git-receive-pack", "git-upload-pack")


TERM_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,63}")


def terminal_name(raw: bytes | str | None) -> str | None:
    """A TERM value fit for the dyno's environment (`xterm-256color`), else None."""
    if isinstance(raw, bytes):
        raw = raw.decode("ascii", "replace")
    return raw if raw and TERM_RE.fullmatch(raw) else None


class ExactReader:
    """`read(n)` as a file's (n bytes, fewer only at the end) that never reads ahead: what
    is not asked for stays in the channel, for `recv` to read as it arrives (the pack after
    a push's commands)."""

    def __init__(self, recv: Callable[[int], bytes]) -> None:
        self.recv = recv

    def read(self, size: int) -> bytes:
        chunks, left = [], size
        while left > 0:
            data = self.recv(left)
            if not data:
                break
            chunks.append(data)
            left -= len(data)
        return b"".join(chunks)


class ChannelIO:
    """A channel seen as the client end of a one-off dyno (OneOffIO)."""

    def __init__(self, channel: paramiko.Channel, session: Session) -> None:
        self.channel = channel
        self.session = session

    @property
    def tty(self) -> bool:
        return self.session.tty

    @property
    def term(self) -> str | None:
        """The client's TERM, from its pty request, if it is a plausible terminal name."""
        return terminal_name(self.session.term)

    @property
    def term_size(self) -> tuple[int, int] | None:
        return self.session.term_size  # follows the client's window-change requests

    @property
    def command_line(self) -> str | None:
        """The exec request as the client sent it: OpenSSH joins the user's words."""
        raw = self.session.command
        return raw.decode("utf-8", "replace") if raw is not None else None

    def read(self, size: int) -> bytes:
        return self.channel.recv(size)

    def write(self, data: bytes) -> None:
        self.channel.sendall(data)

    def write_err(self, data: bytes) -> None:
        self.channel.sendall_stderr(data)

    def gone(self) -> bool:
        """The client disconnected or closed the channel. Not merely its input (not
        eof_received): `ssh platform logs -t < /dev/null` must keep streaming."""
        transport = self.channel.get_transport()
        return self.channel.closed or transport is None or not transport.is_active()


class Session:
    def __init__(self, platform: Platform) -> None:
        self.platform = platform
        self.user: Key | None = None
        self.command: bytes | None = None
        self.request = threading.Event()
        self.channel_opened = False
        self.tty = False
        self.term: bytes | str | None = None
        self.term_size: tuple[int, int] | None = None

    def serve(self, channel: paramiko.Channel) -> None:
        status = 1
        try:
            status = self.run(channel)
        except Exception as err:
            if diskspace.is_full(err):  # never taken for a client that went away
                full = diskspace.disk_full(self.platform.settings.state_dir, err)
                self._say_err(channel, f" !    {full}\n")
            elif not isinstance(err, (OSError, EOFError)):  # else: the client went away
                log.exception("command failed")
                self._say_err(channel, " !    Internal error; see the platform's log\n")
        finally:
            try:
                channel.send_exit_status(status)
                channel.shutdown_write()
            except (OSError, EOFError):
                pass
            channel.close()

    @staticmethod
    def _say_err(channel: paramiko.Channel, text: str) -> None:
        try:
            channel.sendall_stderr(text.encode("utf-8", "replace"))
        except OSError:
            pass

    def context(self, channel: paramiko.Channel) -> Context:
        def out(text: str) -> None:
            channel.sendall(text.replace("\n", "\r\n").encode() if self.tty else text.encode())

        def err(text: str) -> None:
            channel.sendall_stderr(text.encode("utf-8", "replace"))

        def read_stdin() -> bytes:
            chunks = []
            while chunk := channel.recv(65536):
                chunks.append(chunk)
            return b"".join(chunks)

        io = ChannelIO(channel, self)
        target = self.platform.settings.domain
        port = self.platform.settings.ssh_port
        return Context(self.platform, self.user, out, err, read_stdin, io.gone, io=io,
                       ssh_target=f"{target}:{port}" if port != 22 else target)

    def run(self, channel: paramiko.Channel) -> int:
        assert self.user is not None
        ctx = self.context(channel)
        if self.command is None:
            return dispatch(ctx, ["help"])
        try:
            argv = shlex.split(self.command.decode("utf-8"))
        except (ValueError, UnicodeDecodeError) as err:
            ctx.err(f" !    Could not parse the command: {err}\n")
            return 2
        if argv and argv[0] in GIT_COMMANDS:
            return self.git(channel, ctx, argv)
        return dispatch(ctx, argv)

    def git(self, channel: paramiko.Channel, ctx: Context, argv: list[str]) -> int:
        if len(argv) != 2:
            ctx.err(f" !    Usage: {argv[0]} '/APP.git'\n")
            return 2
        path = argv[1].strip()
        for prefix in ("~/", "/"):
            path = path.removeprefix(prefix)
        path = path.removesuffix("/").removesuffix(".git")
        try:
            app = self.app_for_git(ctx, names.app_name(path), argv[0] == "git-receive-pack")
            if argv[0] == "git-upload-pack":
                receive.upload_pack(self.platform, app, channel.recv, channel.sendall, ctx.err)
            else:
                receive.receive_pack(self.platform, app, self.user, ExactReader(channel.recv),
                                     channel.sendall, ctx.err, read_some=channel.recv)
        except PushdError as err:
            ctx.err(f" !    {err}\n")
            return 1
        return 0

    def app_for_git(self, ctx: Context, name: str, pushing: bool) -> App:
        try:
            return ctx.app(name)
        except NotFound:
            if not pushing:
                raise
        if self.user is None:
            raise Forbidden("Unknown key")
        # on ssh's stderr, before git's own lines: prefixed as git prefixes the push's lines
        ctx.err(f"remote: -----> Creating app {name}\n")
        return create_app(self.platform, name, self.user)
