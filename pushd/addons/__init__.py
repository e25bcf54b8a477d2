"""Add-ons: backing services (postgres, redis) bound to apps through config vars.

`base.py` is the provider interface and its registry; each provider is one module that
registers itself (`@register("postgres")`) when `load_providers()` imports it; `service.py`
does what the commands ask (create, attach, rotate, ...) through any provider.
"""

from __future__ import annotations

import importlib

PROVIDER_MODULES = ("postgres", "redis")


def load_providers() -> None:
    """Import every provider module: each registers its class in `base.PROVIDERS`."""
    for module in PROVIDER_MODULES:
        importlib.import_module(f"{__name__}.{module}")
