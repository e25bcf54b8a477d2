"""Admin commands. `load_all` imports every module of this package once; each registers its
commands with `@command` (registry.py), so a new topic is a new module and nothing else."""

from __future__ import annotations

import importlib
import pkgutil

_loaded = False


def load_all() -> None:
    global _loaded
    if not _loaded:
        for module in sorted(m.name for m in pkgutil.iter_modules(__path__)):
            importlib.import_module(f"{__name__}.{module}")
        _loaded = True
