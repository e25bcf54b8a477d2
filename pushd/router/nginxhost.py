"""What the router needs to know about this host's nginx: listen addresses (IPv6 twin or
not), the unprivileged worker user, and nginx's own error line out of its chatter."""

from __future__ import annotations

import grp
import os
import pwd
import re
import socket

WORKER_USERS = ("nobody", "www-data")
_LOG_PREFIX = re.compile(r"^[0-9/]{10} [0-9:]{8} (\[[a-z]+\]) [0-9]+#[0-9]+: ")


def listen_addresses(host: str, port: int, ipv6: bool) -> tuple[str, ...]:
    """The IPv4 address from the settings, plus its IPv6 twin when the host has IPv6."""
    addresses = [f"{host}:{port}"]
    if ipv6 and host == "0.0.0.0":
        addresses.append(f"[::]:{port}")  # ipv6only is nginx's default; options may appear
        # only once per address, and every app's server block repeats the address
    elif ipv6 and host == "127.0.0.1":
        addresses.append(f"[::1]:{port}")
    return tuple(addresses)


def ipv6_available(host: str = "::1") -> bool:
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as probe:
            probe.bind((host, 0))
        return True
    except OSError:
        return False


def worker_user() -> str | None:
    """An unprivileged user (and its group) for nginx workers; None unless we are root."""
    if os.geteuid() != 0:
        return None
    for name in WORKER_USERS:
        try:
            entry = pwd.getpwnam(name)
        except KeyError:
            continue
        try:
            return f"{name} {grp.getgrgid(entry.pw_gid).gr_name}"
        except KeyError:
            return name
    return None


def worker_gid(user: str | None) -> int | None:
    """The gid of the workers' group in a `user` directive value ("nobody nogroup")."""
    if not user:
        return None
    name = user.split()[-1]
    try:
        return grp.getgrnam(name).gr_gid
    except KeyError:
        try:
            return pwd.getpwnam(name).pw_gid
        except KeyError:
            return None


def nginx_error(output: str) -> str:
    """nginx's own complaint, on one line (the first [emerg]/[alert]/[crit] line)."""
    # "2026/11/26 08:35:01 [emerg] 6032#6032: msg" (error log) or "nginx: [emerg] msg" (stderr)
    lines = [
        _LOG_PREFIX.sub(r"\1 ", line.strip()).removeprefix("nginx: ")
        for line in output.splitlines()
        if line.strip()
    ]
    for line in lines:
        if any(level in line for level in ("[emerg]", "[alert]", "[crit]")):
            return line
    return lines[-1] if lines else "nginx failed without a message"




def resolver(resolv_conf: str = "/etc/resolv.conf") -> str | None:
    """The first name server, for OCSP stapling (nginx resolves the responder itself)."""
    try:
        with open(resolv_conf) as conf:
            for line in conf:
                words = line.split()
                if len(words) >= 2 and words[0] == "nameserver":
                    address = words[1].split("%")[0]
                    return f"[{address}]" if ":" in address else address
    except OSError:
        return None
    return None
