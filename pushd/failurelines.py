"""Which of a failed dyno's last output lines a release failure report shows: the app's own.

Package managers wrap an app's start in notices of their own (npm's update notice, its
"complete log" footer, yarn's "Visit … for documentation") that pushed the app's real error
out of the few lines a pusher sees. Those are dropped; if nothing else is left, the lines are
shown as they were.
"""

from __future__ import annotations

import re

SHOWN = 8
# read this many from the dyno's tail (the shim keeps 20) so that SHOWN remain after dropping
READ = 20
TOOL_NOTICE = re.compile(
    r"^\s*(npm (notice|warn|WARN)\b"
    r"|npm (error|ERR!) (A complete log of this run|Log files were not written)"
    r"|info Visit https://yarnpkg\.com/"
    r"|Corepack is about to download"
    r"|\s*WARN\s+\S*\s*deprecated)")


def app_lines(lines: list[str], keep: int = SHOWN) -> list[str]:
    """The last `keep` lines that are not a package manager's notice."""
    own = [line for line in lines if not TOOL_NOTICE.match(line)]
    return (own or lines)[-keep:] if keep > 0 else []
