"""The SSH front door (paramiko): public-key auth against registered keys, exec requests only.

Callbacks of the ServerInterface only decide and return; each connection's work (git, admin
commands, one-off dynos) runs on that connection's own thread.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import socket
import subprocess
import threading
import time
from pathlib import Path

import paramiko

from ..platform import Platform
from ..sshkeys import fingerprint, weakness
from .admission import PreauthGate, Slot
from .session import Session

log = logging.getLogger("pushd.ssh")


def load_host_key(path: Path) -> paramiko.PKey:
    """The host key is generated once (ed25519, by ssh-keygen) and kept."""
    if not path.exists():
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "pushd",
                        "-f", str(path)], check=True)
    return paramiko.Ed25519Key(filename=str(path))


class ConnectionPolicy(paramiko.ServerInterface):
    """Decides; never blocks. Records what the client asked for on `session`."""

    def __init__(self, platform: Platform, session: Session,
                 transport: paramiko.Transport | None = None) -> None:
        self.platform = platform
        self.session = session
        self.transport = transport

    def get_allowed_auths(self, username: str) -> str:
        return "publickey"

    def check_auth_publickey(self, username: str, key: paramiko.PKey) -> int:
        # called twice per login (probe, then signed): no side effects beyond remembering
        found = self.platform.store.key_by_fingerprint(fingerprint(key))
        if found is None:
            return paramiko.AUTH_FAILED  # the client may go on with its next key
        weak = weakness(key)
        if weak is not None:  # registered before keys were checked: say why, and end
            log.warning("refused key %s (%s): %s", found.name, found.fingerprint, weak)
            if self.transport is not None:  # OpenSSH prints the reason of a disconnect
                refuse(self.transport, weak)
            return paramiko.AUTH_FAILED
        self.session.user = found
        return paramiko.AUTH_SUCCESSFUL

    def check_channel_request(self, kind: str, chanid: int) -> int:
        if kind == "session" and not self.session.channel_opened:
            self.session.channel_opened = True
            return paramiko.OPEN_SUCCEEDED
        return paramiko.OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED

    def check_channel_exec_request(self, channel: paramiko.Channel, command: bytes) -> bool:
        if self.session.request.is_set():
            return False
        self.session.command = bytes(command)
        self.session.request.set()
        return True

    def check_channel_shell_request(self, channel: paramiko.Channel) -> bool:
        if self.session.request.is_set():
            return False
        self.session.command = None  # a bare `ssh platform`: we print help
        self.session.request.set()
        return True

    def check_channel_pty_request(self, channel: paramiko.Channel, term: bytes, width: int,
                                  height: int, pixelwidth: int, pixelheight: int,
                                  modes: bytes) -> bool:
        self.session.tty = True
        self.session.term = term
        self.session.term_size = (width, height)
        return True

    def check_channel_window_change_request(self, channel: paramiko.Channel, width: int,
                                            height: int, pixelwidth: int,
                                            pixelheight: int) -> bool:
        self.session.term_size = (width, height)
        return True

    def check_channel_env_request(self, channel: paramiko.Channel, name: bytes,
                                  value: bytes) -> bool:
        return False

    def check_port_forward_request(self, address: str, port: int) -> int | bool:
        return False

    def check_channel_direct_tcpip_request(self, chanid: int, origin: tuple,
                                           destination: tuple) -> int:
        return paramiko.OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED

    def check_channel_forward_agent_request(self, channel: paramiko.Channel) -> bool:
        return False

    def check_channel_x11_request(self, *args: object) -> bool:
        return False

    def check_channel_subsystem_request(self, channel: paramiko.Channel, name: str) -> bool:
        return False


def refuse(transport: paramiko.Transport, reason: str) -> None:
    """Tell the client why it is refused: a disconnect (by protocol, the last message)
    carries the reason, which `ssh` prints. Sending one message does not block."""
    message = paramiko.Message()
    message.add_byte(paramiko.common.cMSG_DISCONNECT)
    message.add_int(paramiko.common.DISCONNECT_NO_MORE_AUTH_METHODS_AVAILABLE)
    message.add_string(reason)
    message.add_string("en")
    transport._send_message(message)  # no public API sends a disconnect with a reason


class SSHServer:
    def __init__(self, platform: Platform, host: str, port: int) -> None:
        self.platform = platform
        self.host_key = load_host_key(platform.paths.host_key)
        self.sock = socket.create_server((host, port), reuse_port=False, backlog=128)
        self.sock.settimeout(0.5)
        self._stop = threading.Event()
        settings = platform.settings
        self.gate = PreauthGate(settings.ssh_max_preauth, settings.ssh_max_preauth_per_source)
        self.auth_timeout = float(settings.ssh_auth_timeout)

    @property
    def port(self) -> int:
        return self.sock.getsockname()[1]

    def serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, addr = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                if self._stop.is_set():
                    return
                raise
            slot = self.gate.admit(addr[0], functools.partial(_cut_off, conn))
            if slot is None:  # refused before it costs a thread
                log.warning("refused ssh connection from %s: too many logins in progress",
                            addr[0])
                conn.close()
                continue
            conn.settimeout(None)
            threading.Thread(target=self._handle, args=(conn, slot), daemon=True,
                             name=f"ssh-{addr[0]}:{addr[1]}").start()

    def stop(self) -> None:
        self._stop.set()
        self.sock.close()

    def _handle(self, conn: socket.socket, slot: Slot) -> None:
        preauth = True  # holds one of the gate's slots until the session is open
        try:
            transport = paramiko.Transport(conn)
        except Exception:
            self.gate.release(slot)
            conn.close()
            raise
        for name in ("banner_timeout", "handshake_timeout", "auth_timeout"):
            setattr(transport, name, self.auth_timeout)
        transport.add_server_key(self.host_key)
        session = Session(self.platform)
        try:
            # banner, key exchange, authentication and the session channel, all within the
            # auth timeout: a client that stalls anywhere before that is cut off
            transport.start_server(event=threading.Event(),
                                   server=ConnectionPolicy(self.platform, session, transport))
            channel = self._first_channel(transport)
            self.gate.release(slot)
            preauth = False
            if channel is None or not session.request.wait(30):
                return
            session.serve(channel)
            # let the client close first: closing under it shows "Connection reset by peer"
            deadline = time.monotonic() + 5
            while transport.is_active() and time.monotonic() < deadline:
                time.sleep(0.01)
        except (paramiko.SSHException, EOFError, OSError) as err:
            log.debug("ssh connection ended: %s", err)
        except Exception:  # never let one connection take the server down
            log.exception("ssh session failed")
        finally:
            if preauth:
                self.gate.release(slot)
            transport.close()

    def _first_channel(self, transport: paramiko.Transport) -> paramiko.Channel | None:
        """The session channel, once the client logged in and opened it; None past the auth
        timeout, or as soon as the connection is gone (cut off for a newcomer, or closed)."""
        deadline = time.monotonic() + self.auth_timeout
        while transport.is_active():
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            channel = transport.accept(min(left, 0.2))
            if channel is not None:
                return channel
        return None


def _cut_off(conn: socket.socket) -> None:
    """End a login from another thread: its transport sees the socket close and stops."""
    with contextlib.suppress(OSError):
        conn.shutdown(socket.SHUT_RDWR)
