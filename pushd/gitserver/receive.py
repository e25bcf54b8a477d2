"""git-receive-pack and git-upload-pack over any pair of streams, with the deploy hook.

dulwich stores the pushed pack, then calls `_on_update` per ref *before the ref moves*. For
the deploy branch that is where we build and release: a failure returns a reason, dulwich
reports the ref `ng`, git prints `! [remote rejected]` and exits non-zero, and the branch stays
where it was, so pushing again retries.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
from collections.abc import Callable, Iterator
from typing import BinaryIO

from dulwich.errors import GitProtocolError
from dulwich.protocol import CAPABILITY_SIDE_BAND_64K, SIDE_BAND_CHANNEL_PROGRESS, Protocol
from dulwich.repo import Repo
from dulwich.server import DictBackend, ReceivePackHandler

from .. import appjson, buildlog, deploy, diskspace, health, metrics, releasephase, sizes
from ..appfiles import deploy_lock, ensure_repo
from ..errors import BuildError, PushdError, ReleaseFailed, RuntimeFailure
from ..files import replace_file
from ..governance import enforce
from ..models import App, Key
from ..platform import Platform
from ..testpause import pause
from . import repogc
from .intake import PackIntake, group_prefix
from .packguard import PackCaps
from .refmove import RefMove, record, settle
from .upload import serve_upload

log = logging.getLogger("pushd.push")
LAST_DEPLOY = "last-deploy.json"  # when the last push went live and how long it took
ZERO = b"0" * 40
DEPLOY_BRANCHES = (b"refs/heads/main", b"refs/heads/master")


class DeployingReceivePack(ReceivePackHandler):
    """ReceivePackHandler whose per-ref update step builds and releases the deploy branch."""

    def __init__(self, backend: DictBackend, args: list[str], proto: Protocol, *,
                 platform: Platform, app: App, user: Key,
                 fallback_out: Callable[[str], None],
                 read_some: Callable[[int], bytes] | None = None) -> None:
        super().__init__(backend, args, proto)
        self.platform = platform
        self.app = app
        self.user = user
        self.fallback_out = fallback_out
        self.read_some = read_some or proto.read
        settings = platform.settings
        self.caps = PackCaps(settings.max_pack_mb * 1024 * 1024,
                             settings.max_object_mb * 1024 * 1024)
        self._lock = threading.Lock()
        self.client_gone = False
        self.deployed = False
        self.build: buildlog.BuildRecord | None = None  # this push's build, once it started

    def _apply_pack(self, refs: list) -> Iterator[tuple[bytes, bytes]]:
        """dulwich's, with the pack taken in by a PackIntake (intake.py) instead of dulwich's
        add_thin_pack: checked against the caps as it arrives and indexed by git in a bounded
        child, never held whole here. A pack over the caps is refused before anything is
        inflated, reported as the unpack status (every ref `! [remote rejected]`), and no ref
        moves; the pack of a push none of whose refs moved is removed again."""
        platform = self.platform
        intake = PackIntake(platform.paths.repo(self.app.id), self.caps,
                            memory_mb=platform.settings.pack_memory_mb,
                            prefix=group_prefix(platform.paths.root, self.app.id),
                            read_some=self.read_some, say=self.progress)
        store = self.repo.object_store
        store.add_thin_pack = intake.add_thin_pack  # type: ignore[method-assign]
        moved = False
        try:
            unpacked = True
            for name, status in super()._apply_pack(refs):
                unpacked = unpacked and not (name == b"unpack" and status != b"ok")
                if name == b"unpack" and b"No space left on device" in status:
                    full = diskspace.disk_full(self.platform.settings.state_dir, OSError(
                        28, "No space left on device", f"{self.repo.path}/objects"))
                    self.progress(f" !     {full}\n")
                    status = str(full).encode()
                moved = moved or (name != b"unpack" and status == b"ok")
                yield name, status
            if not unpacked:  # dulwich reports no ref then; git would say "failed to report"
                for _, _, ref in refs:
                    yield ref, b"pack refused" if intake.refused else b"unpacker error"
        finally:
            del store.add_thin_pack
            if not moved:
                intake.discard()

    def progress(self, text: str) -> None:
        """A `remote: ` line for the user, sent at once over side-band channel 2. Once the
        pusher has gone (Ctrl-C), lines are dropped: the push goes on to its end, and its
        branch moves if its release goes live (as on Heroku, a build outlives its pusher)."""
        with self._lock:
            if self.client_gone:
                return
            try:
                if self.has_capability(CAPABILITY_SIDE_BAND_64K):
                    data = text.encode("utf-8", "replace")
                    for start in range(0, len(data), 65000):
                        self.proto.write_sideband(SIDE_BAND_CHANNEL_PROGRESS,
                                                  data[start:start + 65000])
                else:
                    self.fallback_out(text)
            except (OSError, EOFError, GitProtocolError):
                self.client_gone = True

    def _on_update(self, ref_name: bytes, old_sha: bytes, new_sha: bytes) -> bytes | None:
        store = self.platform.store
        app = store.app_by_id(self.app.id)
        if app is None:
            return b"the app was destroyed during the push"
        deploy_ref = f"refs/heads/{app.deploy_branch}".encode() if app.deploy_branch else None
        if deploy_ref is None and ref_name in DEPLOY_BRANCHES and new_sha != ZERO:
            branch = ref_name.decode().removeprefix("refs/heads/")
            store.set_deploy_branch(app.id, branch)
            self.repo.refs.set_symbolic_ref(b"HEAD", ref_name)
            deploy_ref = ref_name
        if ref_name != deploy_ref:
            if ref_name.startswith(b"refs/heads/") and new_sha != ZERO:
                # said, so nobody takes a stored branch for a deploy
                branch = ref_name.decode(errors="replace").removeprefix("refs/heads/")
                self.progress(f"-----> Stored {branch}; only {app.deploy_branch} deploys "
                              f"(git push platform {branch}:{app.deploy_branch} to deploy it)\n")
            return None
        if new_sha == ZERO:
            return b"the deploy branch cannot be deleted"
        started = time.monotonic()
        try:
            self.deploy(app, RefMove(ref_name.decode(), old_sha.decode(), new_sha.decode(), 0))
        except BuildError as err:  # the builder has already said why, line by line
            if self.build is not None and buildlog.was_canceled(self.platform, self.build):
                self.progress(f" !     Build {self.build.number} canceled (builds:cancel); "
                              f"{app.name} still serves its current release\n")
                metrics.pushes.labels("canceled").inc()
                return b"build canceled"
            metrics.pushes.labels("build_failed").inc()
            return b"no space left on device" if diskspace.is_full(err) else b"build failed"
        except PushdError as err:
            metrics.pushes.labels("release_failed" if isinstance(err, ReleaseFailed)
                                  else "refused").inc()
            self.progress(f" !     {err}\n")
            for line in getattr(err, "output", []):
                self.progress(f"       {line}\n")
            return b"release failed" if isinstance(err, ReleaseFailed) else b"deploy failed"
        except Exception as err:
            metrics.pushes.labels("error").inc()
            if not diskspace.is_full(err):
                raise
            self._say_full(err)  # never taken for a pusher that went away
            return b"no space left on device"
        metrics.pushes.labels("ok").inc()
        took = time.monotonic() - started
        metrics.serving_seconds.labels(app.name).observe(took)
        replace_file(self.platform.paths.app_dir(app.id) / LAST_DEPLOY, json.dumps(
            {"at": time.time(), "seconds": round(took, 3)}))
        self.deployed = True
        return None

    def _say_full(self, err: BaseException) -> None:
        self.progress(f" !     {diskspace.disk_full(self.platform.settings.state_dir, err)}\n")

    def deploy(self, app: App, move: RefMove) -> None:
        """Build and release `move.new`. The move is recorded before the release is cut and
        settled by `receive_pack` (or the next daemon start): see refmove.py."""
        platform, sha = self.platform, move.new
        out = self.progress
        config = platform.store.config(app.id)
        pause(platform, "before-build")
        enforce.check_push(platform, app, self.repo, sha)  # quotas and policies: Refused
        app_json = enforce.tree_file(self.repo, sha, "app.json")
        manifest = appjson.parse(app_json)  # malformed: the push fails before building
        building = [False]

        def build_out(text: str) -> None:
            out(text)
            if not building[0]:
                building[0] = True
                pause(platform, "during-build")

        started = time.monotonic()
        with enforce.building(platform, app), buildlog.recorded(
                platform, app, sha, self.user.name, build_out) as (self.build, output):
            slug = platform.builder.build(app, sha, config, output, admin=self.user.is_admin)
        metrics.build_seconds.labels(app.name).observe(time.monotonic() - started)
        platform.store.add_slug(slug)
        health.save(platform.paths, app.id, slug.id, app_json)
        enforce.check_release(platform, app, self.repo, sha, slug)  # an unused slug is pruned
        sizes.apply(platform, app, manifest.formation, slug.process_types, out)  # or Refused
        latest = platform.store.releases(app.id, limit=1)
        record(platform, app, RefMove(move.ref, move.old, sha,
                                      latest[0].version if latest else 0))
        out("-----> Launching...\n")
        release = deploy.release(platform, app, description=f"Deploy {sha[:7]}",
                                 user=self.user.name, slug=slug, out=out, manifest=manifest)
        pause(platform, "after-router-switch")
        releasephase.postdeploy(platform, app, release, manifest, out)
        deploy.prune_slugs(platform, app)
        try:
            platform.support.prune(app)
        except RuntimeFailure as err:  # the release is live: a warning, not a failure
            out(f" !     Warning: {err}\n")
        started = [t for t in slug.process_types if t != "release" and (
            manifest.formation[t].quantity if t in manifest.formation else t == "web")]
        if not started and slug.process_types:
            out(f"       No dyno started: only web starts by itself (ps:scale {app.name} "
                f"TYPE=1 starts one of: {', '.join(slug.process_types)})\n")
        out(f"       Released {release.name}\n")
        out(f"       {platform.app_url(app.name)} deployed to pushd\n")


def receive_pack(platform: Platform, app: App, user: Key, inp: BinaryIO,
                 write: Callable[[bytes], None], err: Callable[[str], None],
                 read_some: Callable[[int], bytes] | None = None) -> None:
    """`read_some` (like socket.recv) reads what has arrived of `inp`, when `inp` itself
    reads nothing ahead (session.ExactReader): the pack is read with it."""
    diskspace.require_space(platform.settings.state_dir)  # before reading any of the pack
    with deploy_lock(platform, app, err):
        path = ensure_repo(platform, app)
        repo = Repo(str(path))
        packs, refs = repogc.snapshot(path), repo.get_refs()
        moved = False
        try:
            proto = Protocol(inp.read, write)
            handler = DeployingReceivePack(DictBackend({"/": repo}), ["/"], proto,
                                           platform=platform, app=app, user=user,
                                           fallback_out=err, read_some=read_some)
            handler.handle()
        except GitProtocolError as lost:  # the pusher went away (Ctrl-C, a dropped link)
            log.warning("push to %s ended early: %s", app.name, lost)
        finally:
            repo.close()
            try:  # a release that went live moves its branch, whatever broke the push
                settle(platform, app)
            except Exception:  # never hides the push's own outcome; the next start retries
                log.exception("settling the branch of %s failed", app.name)
            with contextlib.closing(Repo(str(path))) as after:
                moved = after.get_refs() != refs
            # a rejected or failed push leaves no objects behind: nothing refers to them
            repogc.drop_leftovers(path, packs, refs_moved=moved)
        if moved and handler.deployed:
            repogc.collect(path)  # what the new history no longer reaches


def upload_pack(platform: Platform, app: App, read_some: Callable[[int], bytes],
                write: Callable[[bytes], None], err: Callable[[str], None]) -> int:
    """A clone or fetch, served by `git upload-pack` in a child (upload.py); its status."""
    if not platform.paths.repo(app.id).exists():
        with deploy_lock(platform, app, err):
            ensure_repo(platform, app)
    return serve_upload(platform.paths.repo(app.id), read_some, write, err)
