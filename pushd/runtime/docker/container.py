"""What a dyno's container is made of: its environment, labels and every option it is
created with (the same for a dyno and a one-off; `run` adds stdin and a tty).

- `--init` (docker-init) as pid 1, told to signal the dyno's whole process group
  (`TINI_KILL_PROCESS_GROUP`), as the sandbox signals every process of a dyno;
- the Procfile command by `bash -c` after `.profile.d` (the sandbox's own dyno script),
  config vars in the environment only, `HOME=/app`, `DYNO`, `PORT`;
- the app's uid, no capabilities, `no-new-privileges`, a read-only root; `/tmp` a tmpfs
  (`dyno_disk_mb`, else 512 MB); `/app` an anonymous volume, which the engine fills from the
  image's `/app` (owners kept: the app's uid) when the container is created, and removes
  with it (`remove(v=True)`): a dyno's own writable copy, never shared;
- memory (no swap beyond it), pids and cpu shares from the spec; `network_mode="none"`
  (pasta is attached from the host); no bind mounts, no published ports, no Docker socket;
- the engine's json-file log, bounded, which `logcollect.py` follows.
"""

from __future__ import annotations

from typing import Any

from ..records import DynoSpec
from ..sandbox import DEFAULT_PATH, DYNO_SCRIPT
from .client import APP, APP_ID, DYNO, ID, INSTANCE, RELEASE, TYPE, container_name


def container_env(spec: DynoSpec) -> dict[str, str]:
    env = dict(spec.env)
    env.setdefault("HOME", "/app")
    env.setdefault("PATH", DEFAULT_PATH)
    env.setdefault("DYNO", spec.dyno)
    if spec.port is not None:
        env.setdefault("PORT", str(spec.port))
    env["TINI_KILL_PROCESS_GROUP"] = "1"  # docker-init signals the whole dyno, not bash alone
    return env


def labels(spec: DynoSpec, instance: str) -> dict[str, str]:
    return {APP: spec.app, APP_ID: str(spec.app_id), RELEASE: str(spec.release),
            TYPE: spec.process_type, DYNO: spec.dyno, ID: spec.id, INSTANCE: instance}


def create_kwargs(spec: DynoSpec, image_id: str, instance: str) -> dict[str, Any]:
    """Everything the container of this dyno (or one-off) is created with."""
    from docker.types import Mount

    memory = f"{spec.memory_mb}m"
    return {
        "image": image_id, "command": ["bash", "-c", DYNO_SCRIPT, "dyno", spec.command],
        "name": container_name(spec.app, spec.process_type, spec.index, spec.release, spec.id),
        "labels": labels(spec, instance), "environment": container_env(spec),
        "user": f"{spec.uid}:{spec.uid}", "working_dir": "/app",
        "hostname": spec.dyno.replace("_", "-"), "init": True, "network_mode": "none",
        "cap_drop": ["ALL"], "security_opt": ["no-new-privileges"], "read_only": True,
        "tmpfs": {"/tmp": f"rw,nosuid,nodev,size={spec.disk_mb or 512}m,mode=1777"},
        "mounts": [Mount("/app", None, type="volume")],
        "mem_limit": memory, "memswap_limit": memory, "pids_limit": spec.pids_max,
        "cpu_shares": spec.cpu_shares, "stop_signal": "SIGTERM",
        "log_config": {"type": "json-file",
                       "config": {"max-size": "10m", "max-file": "3"}},
    }
