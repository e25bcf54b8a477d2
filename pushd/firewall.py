"""Keep dyno ports private: only the router reaches a dyno.

A web dyno listens on its own port in `port_range`, and most apps bind 0.0.0.0. Without a rule
that port would answer on every interface, bypassing nginx, and any app could call another
app's dynos over loopback. One nftables table per state dir (so several pushd instances on a
host never undo each other's rules) drops:

- new connections (SYN without ACK: replies to the host's own outgoing connections pass, and
  no conntrack is needed) to the dyno port range arriving on any interface but loopback;
- connections from app uids (the sandboxes) to the dyno port range on this host (loopback,
  which also carries traffic to the host's own addresses): apps talk to each other through
  the router, as on Heroku, and still reach outside services on any port.

Root (pushd's probes) and nginx's workers are not app uids, so they still reach every dyno.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
import subprocess

from .errors import PushdError
from .settings import Settings

log = logging.getLogger("pushd.firewall")

# app uids are uid_base + app id; the span stops short of nobody (65534), which may run
# nginx's workers
APP_UID_SPAN = 20_000


def table_name(settings: Settings) -> str:
    digest = hashlib.sha256(str(settings.state_dir).encode()).hexdigest()[:10]
    return f"pushd_{digest}"


def ruleset(settings: Settings) -> str:
    """The nft script that (re)creates this instance's table atomically."""
    low, high = settings.port_range
    first_uid = settings.uid_base
    last_uid = settings.uid_base + APP_UID_SPAN - 1
    name = table_name(settings)
    return (
        f"table inet {name}\n"
        f"delete table inet {name}\n"
        f"table inet {name} {{\n"
        f"  chain input {{\n"
        f"    type filter hook input priority filter; policy accept;\n"
        f'    iifname != "lo" tcp dport {low}-{high} tcp flags & (syn | ack) == syn drop\n'
        f"  }}\n"
        f"  chain output {{\n"
        f"    type filter hook output priority filter; policy accept;\n"
        f'    oifname "lo" tcp dport {low}-{high} meta skuid {first_uid}-{last_uid} '
        f"reject with tcp reset\n"
        f"  }}\n"
        f"}}\n"
    )


def _nft(script: str) -> subprocess.CompletedProcess:
    return subprocess.run(["nft", "-f", "-"], input=script, capture_output=True, text=True,
                          timeout=30)


def apply(settings: Settings) -> None:
    """Install (or refresh) the rules. Raises PushdError if nft is there but refuses."""
    if shutil.which("nft") is None:
        raise PushdError("nft (package nftables) is missing: dyno ports would be reachable "
                         "from outside; install nftables")
    done = _nft(ruleset(settings))
    if done.returncode != 0:
        raise PushdError(f"nft refused pushd's dyno rules: {done.stderr.strip()}")


def remove(settings: Settings) -> None:
    if shutil.which("nft") is None:
        return
    name = table_name(settings)
    _nft(f"table inet {name}\ndelete table inet {name}\n")


def installed(settings: Settings) -> str:
    """The live table as nft prints it ('' when absent): for `pushd status` and tests."""
    if shutil.which("nft") is None:
        return ""
    done = subprocess.run(["nft", "list", "table", "inet", table_name(settings)],
                          capture_output=True, text=True, timeout=30)
    return done.stdout if done.returncode == 0 else ""
