"""Builds (never runs) the argv that puts a command in a bubblewrap sandbox as an app's uid.

Shared by the build phase and the sandbox runtime. As root we first drop to the app's uid with
setpriv, then bwrap makes unprivileged namespaces: the host's system files read-only, a private
/tmp, /proc and /dev, its own PID namespace, and only the binds given here.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from dataclasses import dataclass

SYSTEM_RO = ("/usr", "/etc", "/opt")
MERGED_USR_LINKS = (("usr/bin", "/bin"), ("usr/sbin", "/sbin"), ("usr/lib", "/lib"),
                    ("usr/lib64", "/lib64"))


@dataclass(frozen=True)
class Bind:
    source: str
    dest: str
    writable: bool = False


# by absolute path: the chain may start with an app's own PATH in its environment
SYSTEM_PATH = "/usr/sbin:/usr/bin:/sbin:/bin"
SETPRIV = shutil.which("setpriv", path=SYSTEM_PATH) or "/usr/bin/setpriv"
BWRAP = shutil.which("bwrap", path=SYSTEM_PATH) or "/usr/bin/bwrap"
BASH = shutil.which("bash", path=SYSTEM_PATH) or "/bin/bash"
SECCOMP_FILE_FD = 200  # above any descriptor a chain passes on (info fds and the like)


def bwrap_argv(uid: int, binds: Sequence[Bind], env: dict[str, str] | None,
               command: Sequence[str],
               cwd: str = "/app", die_with_parent: bool = False,
               hostname: str = "pushd", new_session: bool = True,
               info_fd: int | None = None, seccomp_fd: int | None = None,
               unshare_net: bool = False, seccomp_file: str | None = None) -> list[str]:
    """argv for: setpriv (drop to uid) -> bwrap (namespaces, binds) -> command.

    The environment is cleared and replaced by `env` entirely; with `env=None` the sandbox
    inherits the environment the chain is started with, which keeps the values (an app's
    config vars) off the command line, where every local user can read them. /usr, /etc and
    /opt come from
    the host read-only; nothing else of the host (no /root, /home, /var, state dir) is visible.
    `info_fd` (inherited by bwrap) receives bwrap's JSON about the sandbox: the pid of its
    pid-1 init and the pid namespace (see `sandboxio.SandboxInfo`). `seccomp_fd` (inherited
    too, read once) holds the denylist of `seccomp.program_fd()`; or `seccomp_file` (from
    `seccomp.program_file()`) is opened by the chain itself. No nested user namespaces.
    `unshare_net` gives the sandbox a network namespace of its own (see `netns.attach` for its
    way out).
    """
    argv = [SETPRIV, f"--reuid={uid}", f"--regid={uid}", "--clear-groups",
            "--inh-caps=-all", "--", BWRAP, "--unshare-user", "--unshare-pid",
            "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try", "--disable-userns",
            "--hostname", hostname]
    if unshare_net:
        argv.append("--unshare-net")
    if env is not None:
        argv.append("--clearenv")
    if new_session:  # a one-off on a terminal keeps its controlling tty
        argv.append("--new-session")
    if die_with_parent:
        argv.append("--die-with-parent")
    if info_fd is not None:
        argv += ["--info-fd", str(info_fd)]
    if seccomp_file is not None:
        seccomp_fd = SECCOMP_FILE_FD
    if seccomp_fd is not None:
        argv += ["--seccomp", str(seccomp_fd)]
    for path in SYSTEM_RO:
        argv += ["--ro-bind-try", path, path]
    for target, link in MERGED_USR_LINKS:
        argv += ["--symlink", target, link]
    argv += ["--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp", "--tmpfs", "/run"]
    for bind in binds:
        argv += ["--bind" if bind.writable else "--ro-bind", bind.source, bind.dest]
    for key, value in (env or {}).items():
        argv += ["--setenv", key, value]
    argv += ["--chdir", cwd, "--", *command]
    if seccomp_file is not None:  # opened as root, before setpriv: the file may be root's
        argv = [BASH, "-c", f'exec "$@" {SECCOMP_FILE_FD}<"$0"', seccomp_file, *argv]
    return argv
