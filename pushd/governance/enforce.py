"""The enforcement points: each command or push that could pass a quota or break a policy
calls one of these before it changes anything. They gather the facts (the store, the state
dir, the pushed tree) and ask `quotas.py` and `policies.py`, which raise Refused."""

from __future__ import annotations

import json
import os
import secrets
import stat
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING

from ..limits import for_dyno
from ..procs import live_stat, oneoff_owner_alive
from . import audit, quotas
from .policies import AppState, judge
from .policyfile import FILE_NAME, Policies, PolicyFile

if TYPE_CHECKING:
    from dulwich.repo import Repo

    from ..models import App, Key, Release, Slug
    from ..paths import Paths
    from ..platform import Platform

MAX_TREE_FILE = 256 * 1024  # app.json, .buildpacks: read from the pushed tree


def policy_file(paths: Paths) -> PolicyFile:
    trail = audit.Trail(paths.audit_log)

    def changed(policies: Policies) -> None:
        detail = (f"invalid: {policies.error}" if policies.error
                  else f"{len(policies.rules)} rule(s): "
                       + ", ".join(r.name for r in policies.rules))
        trail.record(FILE_NAME, "policies changed", detail)

    return PolicyFile(paths.root / FILE_NAME, on_change=changed)


def rules(platform: Platform):  # noqa: ANN201  (tuple[Rule, ...])
    return platform.policies.current().usable()


# usage
def running_oneoffs(paths: Paths, app_id: int) -> int:
    """One-offs of the app running now: their folders under dynos/ whose owning process
    lives (a folder without its oneoff.json yet is one starting)."""
    count = 0
    for entry in paths.dynos_dir.glob(f"{app_id}-run.*"):
        try:
            owner = json.loads((entry / "oneoff.json").read_text())
        except FileNotFoundError:
            count += entry.is_dir()
            continue
        except (OSError, ValueError, TypeError, KeyError):
            continue
        count += oneoff_owner_alive(owner)
    return count


def usage(platform: Platform, user: str) -> quotas.Usage:
    store = platform.store
    owned = [app for app in store.apps() if app.owner == user]
    dynos = memory = 0
    for app in owned:  # a stopped app's formation still counts: ps:start brings it back
        count, size = quotas.formation_cost(store.formation(app.id),
                                            memory_of(platform, app.id))
        dynos, memory = dynos + count, memory + size
    oneoffs = _oneoffs_of(platform, owned)
    builds = sum(1 for pid in store.running_builds(user) if live_stat(pid) is not None)
    return quotas.Usage(apps=len(owned), dynos=dynos, memory=memory, oneoffs=oneoffs,
                        builds=builds)


def memory_of(platform: Platform, app_id: int) -> Callable[[str], int]:
    """A dyno's memory size (MB) by process type in this app: resource:limit, else the
    platform's default."""
    return lambda kind: for_dyno(platform.store, platform.settings, app_id, kind).memory_mb


def _oneoffs_of(platform: Platform, owned: Sequence[App]) -> int:
    return sum(running_oneoffs(platform.paths, app.id) for app in owned)


def _check_formation_quotas(platform: Platform, app: App, current: Mapping[str, int],
                            after: Mapping[str, int]) -> None:
    """The owner's dynos and memory quotas, for one app's formation going from `current`
    to `after` (the owner's usage is added up only when either quota is set)."""
    limits = platform.store.quotas(app.owner)
    if not {"dynos", "memory"} & limits.keys():
        return
    memory_for = memory_of(platform, app.id)
    quotas.check_formation(app.owner, limits, usage(platform, app.owner),
                           quotas.formation_cost(current, memory_for),
                           quotas.formation_cost(after, memory_for))


def check_limits(platform: Platform, app: App, memory_after: Callable[[str], int]) -> None:
    """resource:limit: the owner's memory quota, for the app's formation with dynos of the
    sizes `memory_after` gives instead of today's."""
    limits = platform.store.quotas(app.owner)
    if "memory" not in limits:
        return
    formation = platform.store.formation(app.id)
    quotas.check_formation(app.owner, limits, usage(platform, app.owner),
                           quotas.formation_cost(formation, memory_of(platform, app.id)),
                           quotas.formation_cost(formation, memory_after))


# commands
def admit_app(platform: Platform, owner: Key) -> Callable[[int], None]:
    """For `Store.create_app`: refuses a new app past the owner's apps quota (and while
    policies.yaml is invalid)."""
    rules(platform)
    limits = platform.store.quotas(owner.name)
    return lambda owned: quotas.check(owner.name, "apps", limits, owned, 1)


def check_formation(platform: Platform, app: App, wanted: Mapping[str, int]) -> None:
    """ps:scale, and the formation a deploy would start: quotas on the whole formation,
    policies on the process types it raises."""
    store = platform.store
    current = store.formation(app.id)
    raised = {t: q for t, q in wanted.items() if q > current.get(t, 0)}
    judge(rules(platform), AppState(app.name, app.owner, formation=raised), {"formation"})
    _check_formation_quotas(platform, app, current, {**current, **wanted})


def check_oneoff(platform: Platform, app: App) -> None:
    limits = platform.store.quotas(app.owner)
    if "oneoffs" in limits:
        owned = [a for a in platform.store.apps() if a.owner == app.owner]
        quotas.check(app.owner, "oneoffs", limits, _oneoffs_of(platform, owned), 1)


def check_config(platform: Platform, app: App, values: Mapping[str, str]) -> None:
    aspects = {"config"} | ({"buildpacks"} if "BUILDPACK_URL" in values else set())
    buildpacks = [values["BUILDPACK_URL"].strip()] if values.get("BUILDPACK_URL") else []
    judge(rules(platform), AppState(app.name, app.owner, config=values,
                                    buildpacks=buildpacks), aspects)


def check_buildpacks(platform: Platform, app: App, refs: Sequence[str]) -> None:
    judge(rules(platform), AppState(app.name, app.owner, buildpacks=refs), {"buildpacks"})


def check_domain(platform: Platform, app: App, host: str) -> None:
    judge(rules(platform), AppState(app.name, app.owner, domains=[host]), {"domains"})


# pushes
def check_push(platform: Platform, app: App, repo: Repo, sha: str) -> None:
    """Before the build: the buildpacks it would fetch."""
    refs = requested(platform, app, tree_file(repo, sha, ".buildpacks"))
    judge(rules(platform), AppState(app.name, app.owner, buildpacks=refs), {"buildpacks"})


@contextmanager
def building(platform: Platform, app: App) -> Iterator[None]:
    """Count a build against its app's owner (builds at once) while the block runs."""
    build_id = secrets.token_hex(8)
    limits = platform.store.quotas(app.owner)
    platform.store.start_build(
        build_id, app.id, app.owner, os.getpid(), lambda pid: live_stat(pid) is not None,
        lambda running: quotas.check(app.owner, "builds", limits, running, 1))
    try:
        yield
    finally:
        platform.store.end_build(build_id)


def check_release(platform: Platform, app: App, repo: Repo, sha: str, slug: Slug) -> None:
    """After the build: its code (app.json) and the formation its release would start."""
    types = [t for t in slug.process_types if t != "release"]
    state = AppState(app.name, app.owner, process_types=types,
                     app_json=tree_file(repo, sha, "app.json"))
    judge(rules(platform), state, {"code"})
    _check_started(platform, app, types)


def check_rollback(platform: Platform, app: App, target: Release) -> None:
    """A rollback: the config vars it brings back and the formation it would start."""
    config = platform.store.config(app.id)
    restored = {k: v for k, v in target.config.items() if config.get(k) != v}
    judge(rules(platform), AppState(app.name, app.owner, config=restored), {"config"})
    if target.slug_id:
        _check_started(platform, app, [t for t in target.process_types if t != "release"])


def _check_started(platform: Platform, app: App, types: Sequence[str]) -> None:
    """The formation a release of `types` would start: the current quantities, 1 for a new
    type (as the supervisor does)."""
    current = platform.store.formation(app.id)
    formation = {t: current.get(t, 1) for t in types}
    judge(rules(platform), AppState(app.name, app.owner, formation=formation), {"formation"})
    _check_formation_quotas(platform, app, current, formation)


# the current state, for policies:check
def current_state(platform: Platform, app: App) -> AppState:
    store = platform.store
    release = store.current_release(app.id)
    types = [t for t in (release.process_types if release else {}) if t != "release"]
    app_json = buildpacks_file = None
    if release is not None and release.commit and platform.paths.repo(app.id).is_dir():
        from dulwich.repo import Repo

        repo = Repo(str(platform.paths.repo(app.id)))
        try:
            app_json = tree_file(repo, release.commit, "app.json")
            buildpacks_file = tree_file(repo, release.commit, ".buildpacks")
        finally:
            repo.close()
    formation = {t: q for t, q in store.formation(app.id).items() if t in types}
    return AppState(app.name, app.owner, formation=formation,
                    buildpacks=requested(platform, app, buildpacks_file), process_types=types,
                    app_json=app_json, config=store.config(app.id),
                    domains=store.domains(app.id))


def requested(platform: Platform, app: App, buildpacks_file: bytes | None) -> list[str]:
    """The buildpacks a build of this code would use, in the builder's precedence
    (BUILDPACK_URL, `.buildpacks`, buildpacks:set); none means the bundled ones."""
    from ..build.buildpacks import parse_buildpacks_file

    url = platform.store.config(app.id).get("BUILDPACK_URL", "").strip()
    if url:
        return [url]
    if buildpacks_file is not None:
        refs = parse_buildpacks_file(buildpacks_file.decode("utf-8", "replace"))
        if refs:
            return refs
    return list(app.buildpacks)


def tree_file(repo: Repo, sha: str, name: str) -> bytes | None:
    """A regular file at the top of commit `sha`'s tree (not a symlink), else None."""
    try:
        commit = repo[sha.encode()]
        tree = repo[commit.tree]
        mode, blob_id = tree[name.encode()]
    except (KeyError, AttributeError, ValueError):
        return None
    if not stat.S_ISREG(mode):
        return None
    blob = repo[blob_id]
    return None if blob.raw_length() > MAX_TREE_FILE else blob.as_raw_string()
