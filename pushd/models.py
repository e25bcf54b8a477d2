"""Records that cross module boundaries."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Key:
    name: str
    role: str  # "admin" or "user"
    public_key: str
    fingerprint: str
    created_at: float = 0.0

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


# who runs a command through the local CLI (root on the platform's host)
LOCAL_ADMIN = Key(name="local-admin", role="admin", public_key="", fingerprint="local")


@dataclass(frozen=True)
class App:
    id: int
    name: str
    owner: str
    created_at: float
    deploy_branch: str | None = None
    buildpacks: tuple[str, ...] = ()
    stopped: bool = False  # ps:stop: formation kept, nothing runs


@dataclass(frozen=True)
class Slug:
    id: str
    app_id: int
    path: str  # compressed tarball
    dir: str  # unpacked compiled app, ready to mount at /app
    size: int
    commit: str
    process_types: dict[str, str] = field(default_factory=dict)
    buildpack: str = ""
    created_at: float = 0.0
    image: str = ""  # a release image (pushd/<app>:v<N>) instead of path/dir, else ""
    port: int = 0  # the port the image EXPOSEs: the web dyno's $PORT; 0: none


@dataclass(frozen=True)
class Release:
    app_id: int
    version: int
    slug_id: str | None
    config: dict[str, str]
    process_types: dict[str, str]
    description: str
    user: str
    created_at: float
    status: str = "pending"  # pending -> succeeded | failed
    commit: str = ""
    # "addon": cut by addons:attach/detach/credentials:rotate, which skip a release phase;
    # "" for every other release
    kind: str = ""

    @property
    def name(self) -> str:
        return f"v{self.version}"
