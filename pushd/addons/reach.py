"""Which add-on ports the firewall guards for this instance.

Dynos reach their app's add-ons at 127.0.0.1:PORT inside their own network: their pasta
forwards exactly those ports (`DynoSpec.reach`, from `dynospec.reachable_ports`) to the
host's loopback, and the firewall accepts the (port, app uid) pairs of running dynos. Every
pushd instance's table leaves `addon_port_range` out of its catch-all refusal of host
addresses (an accept in one table cannot undo a reject in another), and refuses app uids
the add-on ports of its own add-ons (this function) unless the pair is theirs."""

from __future__ import annotations

import sqlite3

from ..settings import Settings


def instance_ports(settings: Settings) -> set[int]:
    """Every add-on port of this instance, and its postgres cluster's (from the state dir)."""
    ports: set[int] = set()
    try:
        ports.add(int((settings.state_dir / "addons" / "postgres" / "port").read_text()))
    except (OSError, ValueError):
        pass
    db = settings.state_dir / "pushd.db"
    if not db.exists():
        return ports
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10) as conn:
            import json

            for (listed,) in conn.execute("SELECT ports FROM addons"):
                ports.update(int(p) for p in json.loads(listed))
    except sqlite3.Error:
        pass  # no add-on table yet
    return ports
