"""Platform settings, resolved in one place: defaults < pushd.yaml < PUSHD_* env < flags."""

from __future__ import annotations

import dataclasses
import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from .errors import UsageError

DEFAULT_STATE_DIR = "/var/lib/pushd"


@dataclass(frozen=True)
class Settings:
    state_dir: Path = Path(DEFAULT_STATE_DIR)
    ssh_port: int = 2222
    ssh_host: str = "0.0.0.0"
    http_port: int = 8080
    http_host: str = "0.0.0.0"
    https_port: int = 0  # the router's HTTPS port (443 in a real install); 0: no HTTPS
    # addresses or networks of proxies in front whose X-Forwarded-Proto/-Port/-For are kept
    trusted_proxies: tuple[str, ...] = ()
    # ACME (certs:auto): the CA's directory, the CA bundle its HTTPS is checked with (empty:
    # the system's), and how many days before expiry a certificate is renewed
    acme_directory: str = "https://acme-v02.api.letsencrypt.org/directory"
    acme_ca_bundle: str = ""
    acme_renew_days: float = 30.0
    domain: str = "localhost"
    runtime: str = "sandbox"
    system_nginx: bool = False
    build_timeout: float = 15 * 60.0
    slug_limit_mb: int = 500
    releases_kept: int = 10
    rename_hold_hours: float = 24.0  # an app's old name stays its owner's this long
    stop_timeout: float = 30.0
    boot_timeout: float = 60.0
    release_timeout: float = 3600.0  # the release phase (Procfile release:, predeploy)
    drain_seconds: float = 1.0
    memory_mb: int = 512
    pids_max: int = 256  # processes + threads per dyno: a fork bomb stays inside its dyno
    cpu_shares: int = 1024  # each dyno's weight for the CPU (cgroup v1 cpu.shares) when busy
    # size of a dyno's writable layer (on top of its slug): a tmpfs, charged to the dyno's
    # memory like Heroku's ephemeral filesystem; 0 = no limit (the state dir's disk)
    dyno_disk_mb: int = 256
    # merge the identical (mostly zeroed) pages of every dyno's pasta with the kernel's
    # same-page merging (runtime/ksm.py): ~29 MB -> ~2 MB PSS per dyno; turns KSM on host-wide
    dyno_ksm: bool = False
    memory_by_type: dict[str, int] = field(default_factory=dict)
    cpu_limit: float = 0.0  # cores per dyno (CFS quota) unless resource:limit says; 0 = none
    # what resource:limit may set per dyno; 0 = the host's memory / cores
    max_dyno_memory_mb: int = 0
    max_dyno_cpu: float = 0.0
    # a dyno using this share of its memory limit gets R14 in its log (R15 when killed at it)
    memory_warn_percent: int = 90
    log_max_bytes: int = 5 * 1024 * 1024
    # `pushd status` warns when the state dir's filesystem has less free than this
    disk_warn_mb: int = 1024
    crash_backoff_base: float = 1.0
    crash_backoff_max: float = 300.0
    uid_base: int = 40000
    port_range: tuple[int, int] = (20000, 29999)  # host endpoints of web dynos
    dyno_port: int = 5000  # $PORT: where a web dyno listens, in its own network
    # host loopback ports of add-on services (pushd's postgres cluster, each redis-server);
    # add-on servers' loopback ports (dynos reach them through unix sockets: addons/reach.py)
    addon_port_range: tuple[int, int] = (19000, 19999)
    # kind -> an external server's admin URL for new add-ons (`providers:add` overrides)
    addon_servers: dict[str, str] = field(default_factory=dict)
    firewall: bool = True  # nftables rules keep dyno ports private; false only to opt out
    # builds: each runs in its own cgroup (memory, pids, CPU) under build_timeout
    build_memory_mb: int = 2048
    build_pids_max: int = 512
    build_cpu_percent: int = 100  # of one core (cfs quota); 200 = two cores
    build_cache_mb: int = 1024  # per app, a size-limited filesystem mounted during builds
    max_pack_mb: int = 512  # a push's pack on the wire
    max_object_mb: int = 100  # one object (file) in a push, uncompressed
    # the memory of the child that indexes a push (git index-pack, in a cgroup of its own):
    # new files of any size take a few MB; a file sent as a delta, about 3 times its size
    pack_memory_mb: int = 384
    # host folders that buildpack paths of `user` keys may name (admins may name any)
    allowed_buildpack_paths: tuple[str, ...] = ()
    # the router: seconds a client has for its request header, and connections with a
    # request in progress per client address (slowloris, greedy clients)
    router_header_timeout: int = 10
    router_timeout: int = 30  # seconds to an app's first byte before H12 (Heroku: 30)
    router_logs: bool = True  # each app request a `pushd[router]` line of the app's log
    # Prometheus metrics (/metrics) on this port of metrics_host; 0: not served
    metrics_port: int = 0
    metrics_host: str = "127.0.0.1"
    # objectives `slo` measures the platform against, over the last slo_window_days
    slo_api_availability: float = 99.9  # percent of admin commands without an internal error
    slo_deploy_success: float = 99.0  # percent of finished releases that went live
    slo_cold_start_ms: int = 500  # 95 % of dyno starts up within this
    slo_window_days: int = 30
    router_conns_per_client: int = 256
    # SSH logins not yet authenticated: at most this many at once, this many per source
    # address, and this long (seconds) from connect to an open session
    ssh_max_preauth: int = 100
    ssh_max_preauth_per_source: int = 10
    ssh_auth_timeout: float = 10.0
    # fault tests only (tests/faults): pushes pause at the step named in the state dir's
    # `test-pause` file (gitserver/refmove.py `pause`); never on in production
    test_hooks: bool = False
    # with test_hooks only: the cron scheduler's clock runs this many times faster
    cron_speed: int = 1

    @property
    def stack(self) -> str:
        return "pushd-22"

    def memory_for(self, process_type: str) -> int:
        return int(self.memory_by_type.get(process_type, self.memory_mb))


def _coerce(name: str, value: Any) -> Any:
    kind = {f.name: f for f in fields(Settings)}[name]
    default = kind.default if kind.default is not dataclasses.MISSING else kind.default_factory()
    try:
        if isinstance(default, bool):
            if isinstance(value, str):
                return value.strip().lower() in ("1", "true", "yes", "on")
            return bool(value)
        if isinstance(default, Path):
            return Path(value).expanduser()
        if name == "allowed_buildpack_paths":
            items = value.split(",") if isinstance(value, str) else list(value or ())
            return tuple(_absolute(name, str(item).strip()) for item in items
                         if str(item).strip())
        if name == "trusted_proxies":
            items = value.split(",") if isinstance(value, str) else list(value or ())
            return tuple(_network(str(item).strip()) for item in items if str(item).strip())
        if isinstance(default, tuple):
            low, high = (value.split("-") if isinstance(value, str) else value)
            return (int(low), int(high))
        if name == "addon_servers":  # kind -> URL
            return {str(k): str(v) for k, v in dict(value).items()}
        if isinstance(default, dict):
            return {str(k): int(v) for k, v in dict(value).items()}
        return type(default)(value)
    except (TypeError, ValueError) as err:
        raise UsageError(f"Invalid setting {name}={value!r}: {err}") from None


def _network(value: str) -> str:
    return str(ipaddress.ip_network(value, strict=False))  # ValueError: one line above


def _absolute(name: str, path: str) -> str:
    if not path.startswith("/") or "/../" in f"{path}/" or "/./" in f"{path}/":
        raise ValueError(f"{path!r} is not a plain absolute path")
    return path.rstrip("/") or "/"


def load(flags: Mapping[str, Any] | None = None, env: Mapping[str, str] | None = None) -> Settings:
    """Resolve settings. `flags` holds only options the user actually gave (None = not given)."""
    env = os.environ if env is None else env
    flags = {k: v for k, v in (flags or {}).items() if v is not None}
    known = {f.name for f in fields(Settings)}

    state_dir = flags.get("state_dir") or env.get("PUSHD_HOME") or DEFAULT_STATE_DIR
    state_dir = Path(state_dir).expanduser().resolve()
    values: dict[str, Any] = {}
    config_file = state_dir / "pushd.yaml"
    if config_file.exists():
        try:
            data = yaml.safe_load(config_file.read_text()) or {}
        except yaml.YAMLError as err:
            raise UsageError(f"{config_file}: not valid YAML: {err}") from None
        if not isinstance(data, dict):
            raise UsageError(f"{config_file}: expected a mapping of settings")
        for key, value in data.items():
            key = str(key).replace("-", "_")
            if key not in known:
                raise UsageError(f"{config_file}: unknown setting {key!r}")
            values[key] = _coerce(key, value)
    for name in known:
        raw = env.get("PUSHD_" + name.upper())
        if raw is not None and name != "state_dir":
            values[name] = _coerce(name, raw)
    for name, value in flags.items():
        if name in known:
            values[name] = _coerce(name, value)
    values["state_dir"] = state_dir
    settings = Settings(**values)
    _check_ranges(settings)
    return settings


# app uids are uid_base + app id, in a span that stays clear of system users below and of
# nobody (65534), which may run nginx's workers, above: the firewall refuses the whole span
APP_UID_SPAN = 20_000
NOBODY = 65534


def _check_ranges(settings: Settings) -> None:
    low = settings.uid_base
    if low < 1000 or low + APP_UID_SPAN > NOBODY:
        raise UsageError(f"uid_base {low} must be between 1000 and {NOBODY - APP_UID_SPAN}: "
                         f"app uids take {APP_UID_SPAN} from there")
    for name in ("build_memory_mb", "build_pids_max", "build_cpu_percent", "build_cache_mb",
                 "max_pack_mb", "max_object_mb", "pack_memory_mb"):
        if getattr(settings, name) < 1:
            raise UsageError(f"{name} must be at least 1")
    for name in ("cpu_limit", "max_dyno_memory_mb", "max_dyno_cpu", "disk_warn_mb"):
        if getattr(settings, name) < 0:
            raise UsageError(f"{name} must not be negative (0: no limit)")
    if not 1 <= settings.memory_warn_percent <= 100:
        raise UsageError("memory_warn_percent must be between 1 and 100")
    first, last = settings.port_range
    if not 1024 <= first <= last <= 65535:
        raise UsageError(f"port_range {first}-{last} must lie within 1024-65535")
    if not 0 <= settings.https_port <= 65535:
        raise UsageError(f"https_port {settings.https_port} must lie within 1-65535 (0: off)")
    if settings.https_port and settings.https_port == settings.http_port:
        raise UsageError("https_port and http_port must differ")
    if not 0 < settings.acme_renew_days < 90:
        raise UsageError("acme_renew_days must be between 0 and 90")
    if not 1024 <= settings.dyno_port <= 65535:  # bound by the app's own unprivileged uid
        raise UsageError(f"dyno_port {settings.dyno_port} must lie within 1024-65535")


def app_uid(settings: Settings, app_id: int) -> int:
    """Each app builds and runs as its own unprivileged uid (and gid)."""
    if not 0 < app_id < APP_UID_SPAN:
        raise UsageError(f"app id {app_id} is outside the {APP_UID_SPAN} app uids")
    return settings.uid_base + app_id
