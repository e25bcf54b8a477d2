"""Keep dyno endpoints private and the host's own services out of the apps' reach.

Every dyno runs in a network namespace of its own (`runtime/netns.py`): from inside it cannot
bind a host port nor reach the host's loopback. What is left on the host runs as app uids:
the dynos' shared egress pasta (as `uid_base`, the span's first uid, which no app has:
`runtime/egress.py`), one-offs' and builds' pastas (their outbound connections), and each web
dyno's endpoint forwarder (which connects only inside the dyno's namespace). One nftables
table per state dir (so several pushd instances on a host never undo each other's rules):

- drops new connections (SYN without ACK: replies to the host's own outgoing connections
  pass, and no conntrack is needed) to the dyno port range arriving on any interface but
  loopback: endpoints answer the router only;
- refuses app uids every new connection (TCP, and UDP) to an address of this host (`fib daddr
  type local`: loopback and the host's other addresses, such as a bridge's), except an app's
  own web endpoints (the `own` set, kept current by the supervisor). That is what stops a
  dyno's pasta from carrying it to the host's services, the platform's SSH port and router;
  outside services on any port stay reachable. Apps talk to each other through the public
  router, as on Heroku. The `web` set keeps this instance's endpoints off app uids even when
  their range is shared with another instance.

Root (pushd's probes) and nginx's workers are not app uids, so they still reach every dyno.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
import subprocess
from collections.abc import Iterable

from .errors import PushdError
from .settings import APP_UID_SPAN, Settings

log = logging.getLogger("pushd.firewall")



def table_name(settings: Settings) -> str:
    digest = hashlib.sha256(str(settings.state_dir).encode()).hexdigest()[:10]
    return f"pushd_{digest}"


def ruleset(settings: Settings, own: Iterable[tuple[int, int]] = ()) -> str:
    """The nft script that (re)creates this instance's table atomically. `own` holds the
    (port, app uid) of every running web dyno of this instance.

    App uids are refused only this instance's dyno ports (the `web` set), never the whole
    range: an accept in one table cannot undo a reject in another, so two instances on one
    host must not refuse each other's ports. Add-ons get no exception: dynos reach them over
    unix sockets (`addons/reach.py`), never the host's loopback."""
    low, high = settings.port_range
    first_uid = settings.uid_base
    last_uid = settings.uid_base + APP_UID_SPAN - 1
    name = table_name(settings)
    pairs = sorted({(int(port), int(uid)) for port, uid in own})
    own_set = _set("inet_service . uid", [f"{port} . {uid}" for port, uid in pairs])
    web_set = _set("inet_service", sorted({str(port) for port, _ in pairs}))
    return (
        f"table inet {name}\n"
        f"delete table inet {name}\n"
        f"table inet {name} {{\n"
        f"  set own {{ {own_set} }}\n"
        f"  set web {{ {web_set} }}\n"
        f"  chain input {{\n"
        f"    type filter hook input priority filter; policy accept;\n"
        f'    iifname != "lo" tcp dport {low}-{high} tcp flags & (syn | ack) == syn drop\n'
        f"  }}\n"
        f"  chain output {{\n"
        f"    type filter hook output priority filter; policy accept;\n"
        f'    oifname "lo" tcp dport . meta skuid @own accept\n'
        f'    oifname "lo" tcp dport @web meta skuid {first_uid}-{last_uid} '
        f"reject with tcp reset\n"
        f"    meta skuid {first_uid}-{last_uid} fib daddr type local "
        f"tcp flags & (syn | ack) == syn reject with tcp reset\n"
        f"    meta skuid {first_uid}-{last_uid} fib daddr type local meta l4proto udp "
        f"reject\n"
        f"  }}\n"
        f"}}\n"
    )


def _set(kind: str, elements: list[str]) -> str:
    listed = f" elements = {{ {', '.join(elements)} }}" if elements else ""
    return f"type {kind};{listed}"


def _nft(script: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["nft", "-f", "-"], input=script, capture_output=True, text=True,
                          timeout=30)


def apply(settings: Settings, own: Iterable[tuple[int, int]] = ()) -> None:
    """Install (or refresh, with the current web dynos) the rules. Raises PushdError when
    nft is missing or refuses."""
    if shutil.which("nft") is None:
        raise PushdError("nft (package nftables) is missing: dyno ports would be reachable "
                         "from outside; install nftables")
    done = _nft(ruleset(settings, own))
    if done.returncode != 0:
        raise PushdError(f"nft refused pushd's dyno rules: {done.stderr.strip()}")


def remove(settings: Settings) -> None:
    if shutil.which("nft") is None:
        return
    name = table_name(settings)
    _nft(f"table inet {name}\ndelete table inet {name}\n")


def installed(settings: Settings) -> str | None:
    """The live table as nft prints it, '' when absent, None when it cannot be read (not
    root): for `pushd status`, the daemon's housekeeping and tests."""
    if shutil.which("nft") is None:
        return ""
    done = subprocess.run(["nft", "list", "table", "inet", table_name(settings)],
                          capture_output=True, text=True, timeout=30)
    if done.returncode == 0:
        return done.stdout
    return None if "Operation not permitted" in done.stderr else ""
