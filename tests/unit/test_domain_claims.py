"""Which app may claim a host name: the store refuses overlaps with other apps' domains, the
command refuses names over the platform's own domain."""

from __future__ import annotations

from pathlib import Path

import pytest

from pushd.commands.domains import domains_add
from pushd.commands.registry import Context
from pushd.errors import Conflict
from pushd.models import Key
from pushd.platform import Platform
from pushd.settings import Settings
from pushd.store import Store


def test_overlapping_claims_across_apps_are_refused_within_one_app_allowed(tmp_path: Path):
    store = Store(tmp_path / "pushd.db")
    victim, other = store.create_app("victim", "alice"), store.create_app("other", "bob")
    store.add_domain(victim.id, "www.example.test")
    store.add_domain(victim.id, "*.example.test")  # its own names may overlap
    with pytest.raises(Conflict, match=r"^Domain \*\.example\.test is already in use$"):
        store.add_domain(other.id, "*.example.test")
    with pytest.raises(Conflict, match=r"^Domain api\.example\.test overlaps \*\.example\.test, "
                                       r"which another app serves$"):
        store.add_domain(other.id, "api.example.test")
    store.add_domain(other.id, "example.test")  # the apex is not under the wildcard
    assert store.domains(other.id) == ["example.test"]


def test_a_wildcard_over_the_platforms_domain_is_refused(tmp_path: Path):
    platform = Platform(Settings(state_dir=tmp_path / "state", domain="apps.example.test"))
    app = platform.store.create_app("myapp", "alice")
    user = Key(name="alice", role="user", public_key="", fingerprint="")
    ctx = Context(platform, user, lambda _text: None, lambda _text: None)
    for host in ("*.example.test", "*.apps.example.test", "other.apps.example.test"):
        with pytest.raises(Conflict, match=f"^{host.replace('*', '[*]')} overlaps the "
                                           "platform's own domain apps.example.test"):
            domains_add(ctx, app, [host])
