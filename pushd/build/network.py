"""A build's own network namespace: made once per build by a holder sandbox (the app's uid,
`bwrap --unshare-net`, doing nothing), given outbound access by pasta (`runtime.netns`), and
entered by every step of the build (`nsenter` as root, before the step drops to the uid).

A build then cannot bind host ports nor reach the host's loopback services, the platform's
ports or any dyno; it reaches package registries and git hosts like any outside client. The
namespace is named by a descriptor the daemon keeps open (`/proc/<daemon>/fd/N`), so a step
never enters another process's namespace through a recycled pid.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from collections.abc import Sequence

from ..runtime.bwrap import SYSTEM_PATH, bwrap_argv
from ..runtime.netns import Attachment, NetnsError, attach, detach
from ..runtime.sandboxio import SandboxInfo, kill_sandbox

NSENTER = shutil.which("nsenter", path=SYSTEM_PATH) or "/usr/bin/nsenter"
START_TIMEOUT = 5.0


class BuildNetwork:
    def __init__(self, uid: int) -> None:
        self.uid = uid
        self.holder: subprocess.Popen | None = None
        self.netns_fd: int | None = None
        self.pasta: Attachment | None = None

    def start(self, prefix: Sequence[str] = ()) -> str | None:
        """Make the namespace and attach pasta. None when the build has outbound access;
        else why not (the build then runs offline, still in its own namespace). Raises
        NetnsError only if not even the namespace could be made."""
        info = SandboxInfo()
        argv = bwrap_argv(self.uid, [], {"PATH": "/usr/bin:/bin"}, ["sleep", "infinity"],
                          cwd="/", die_with_parent=True, hostname="pushd-build",
                          info_fd=info.writer, unshare_net=True)
        try:
            self.holder = subprocess.Popen([*prefix, *argv], stdin=subprocess.DEVNULL,
                                           stdout=subprocess.DEVNULL,
                                           stderr=subprocess.DEVNULL,
                                           pass_fds=(info.writer,), start_new_session=True)
            info.close_writer()
            init = info.wait_init(self.holder, START_TIMEOUT)
            if init is None:
                raise NetnsError("the build's network namespace could not be made")
            self.netns_fd = os.open(f"/proc/{init}/ns/net", os.O_RDONLY | os.O_CLOEXEC)
            try:
                self.pasta = attach(init, self.uid)
            except NetnsError as err:
                return str(err)
            return None
        except OSError as err:
            raise NetnsError(f"the build's network namespace could not be made: {err}") \
                from None
        finally:
            info.close()

    def enter_argv(self) -> list[str]:
        """argv prefix (run as root) that joins the build's namespace: through the daemon's
        own descriptor of it, which stays open until `stop`."""
        if self.netns_fd is None:
            return []
        return [NSENTER, f"--net=/proc/{os.getpid()}/fd/{self.netns_fd}", "--"]

    def stop(self) -> None:
        detach(self.pasta)
        self.pasta = None
        if self.holder is not None:
            if self.holder.poll() is None:
                kill_sandbox(self.holder)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.holder.wait(timeout=5)
            self.holder = None
        if self.netns_fd is not None:
            os.close(self.netns_fd)
            self.netns_fd = None
