"""The audit trail's entry point. There is no audit trail yet: until there is, entries go to
the daemon's log (`pushd.audit` lines in pushd.log). When it lands, `record` is the one
function to change; every governance change (quotas:set, an edited policies.yaml) already
calls it."""

from __future__ import annotations

import logging

log = logging.getLogger("pushd.audit")


def record(actor: str, action: str, detail: str = "") -> None:
    """Note that `actor` (a key name, or `policies.yaml` for an edit of the file) did
    `action`."""
    log.info("%s %s%s", actor, action, f": {detail}" if detail else "")
