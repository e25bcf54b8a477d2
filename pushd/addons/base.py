"""The add-on provider interface and its registry.

A provider turns an add-on's stored state (a JSON-able dict holding its secrets: role,
password, port, ...) into a running service and back: `create` makes one (and leaves nothing
when it fails), `url` is the binding a dyno gets as `<NAME>_URL`, `rotate` adds a second
password and `revoke` drops the first once every attached app runs with the new one,
`backup`/`restore` copy the data into/out of a file, `destroy` removes data and credentials,
`info` says what `addons:info` shows (never a password), `ports` are the host loopback
ports a dyno must reach, `keep_up` (called by the daemon every few seconds) starts or
adopts the service's processes, and `shutdown` stops them all (`pushd down --all`).

Adding a service type is one module with one `@register("kind")` class, listed in
`addons/__init__.PROVIDER_MODULES`: the commands and the core never name a kind.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from ..errors import PushdError, UsageError
from ..paths import Paths
from ..settings import Settings

State = dict[str, Any]


class AddonError(PushdError):
    """A provider could not do what was asked (server down, tool failed): one line, and
    never a password in it."""


@dataclass(frozen=True)
class ProviderEnv:
    """What a provider is built with."""

    settings: Settings
    paths: Paths
    servers: dict[str, str]  # kind -> an external server's admin URL (providers:add)
    taken_ports: frozenset[int] = frozenset()  # other add-ons' ports

    @property
    def root(self) -> Path:
        return self.paths.root / "addons"


class Provider(Protocol):
    kind: str
    default_attachment: str  # DATABASE, REDIS: the first attachment's name

    def create(self, name: str) -> State: ...
    def url(self, state: State) -> str: ...
    def ports(self, state: State) -> list[int]: ...
    def rotate(self, state: State) -> State: ...
    def revoke(self, old: State, new: State) -> None: ...
    def backup(self, state: State, dest: Path) -> None: ...
    def restore(self, state: State, src: Path) -> None: ...
    def destroy(self, state: State) -> None: ...
    def info(self, state: State) -> dict[str, str]: ...
    def keep_up(self, state: State) -> None: ...
    def shutdown(self, states: list[State]) -> None: ...  # `pushd down --all`


PROVIDERS: dict[str, Callable[[ProviderEnv], Provider]] = {}


def register(kind: str) -> Callable[[type], type]:
    def deco(cls: type) -> type:
        cls.kind = kind
        PROVIDERS[kind] = cls
        return cls
    return deco


def make_provider(kind: str, env: ProviderEnv) -> Provider:
    from . import load_providers

    load_providers()
    factory = PROVIDERS.get(kind)
    if factory is None:
        raise UsageError(f"Unknown add-on service {kind!r}; available: "
                         f"{', '.join(sorted(PROVIDERS))}")
    return factory(env)


def kinds() -> list[str]:
    from . import load_providers

    load_providers()
    return sorted(PROVIDERS)


def password() -> str:
    """A random password safe in a URL without quoting."""
    return secrets.token_urlsafe(24)
