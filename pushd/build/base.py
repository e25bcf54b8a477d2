"""The build interface the git receiver calls. Phases live beside it (fetch, detect, compile,
release, slug), each a plain object whose result is handed to the next."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from ..models import App, Slug

Output = Callable[[str], None]  # receives whole lines ("-----> Python app detected\n"), live


class Builder(Protocol):
    def build(self, app: App, commit: str, config: dict[str, str], out: Output, *,
              admin: bool = False) -> Slug:
        """Compile `commit` of the app's repo into a slug (tarball + unpacked dir).

        `admin`: pushed with an admin key (host folders as buildpacks are theirs to name).

        Streams progress to `out` as it happens. Raises BuildError (after writing the
        ` !     Push rejected, failed to compile <Name> app.` line) on failure; leaves nothing
        half-written behind. The returned Slug is not yet in the store.
        """
