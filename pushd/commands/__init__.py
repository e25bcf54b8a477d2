"""Admin commands. Importing `load_all` registers every command module once."""

from __future__ import annotations

import importlib

MODULES = ("help", "apps", "config", "releases", "keys", "buildpacks", "ps", "logs", "domains",
           "governance", "resources", "gc", "addons")
_loaded = False


def load_all() -> None:
    global _loaded
    if not _loaded:
        for module in MODULES:
            importlib.import_module(f"{__name__}.{module}")
        _loaded = True
