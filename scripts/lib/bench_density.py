"""`scripts/bench --density [N]`: what each dyno costs the host besides the app itself.

Brings up N one-dyno web apps on one daemon: the first is pushed (a real build), the others
are created with `apps:create` over SSH and released from a copy of that slug (owned by
their own uid) through the store, as a push would after its build; their dynos are real and
each must answer 200 through the router. Then it reads /proc: for every dyno, the platform's
processes (the shim, bwrap's outer process and its init in the sandbox, the endpoint's
forwarder, or the pasta of a dyno started before it) and the app's (everything below the
sandbox's init), their PSS and RSS (/proc/<pid>/smaps_rollup); the shared egress (its holder
and its one pasta) divided among the dynos; and the daemon's RSS.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import statistics
import subprocess
import time
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

from pushd import daemon, deploy
from pushd.models import Slug
from pushd.platform import Platform
from pushd.runtime import egress
from pushd.settings import load

BATCH = 10  # releases in flight at once: 2 cores boot 10 Python dynos in a few seconds

HELLO = """\
import os
from http.server import BaseHTTPRequestHandler, HTTPServer


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", "12")
        self.end_headers()
        self.wfile.write(b"hello world\\n")

    def log_message(self, *args):
        pass


HTTPServer(("127.0.0.1", int(os.environ["PORT"])), Handler).serve_forever()
"""
HELLO_APP = {"app.py": HELLO, "Procfile": "web: python3 app.py\n"}


KSM = Path("/sys/kernel/mm/ksm")


@contextlib.contextmanager
def host_ksm_kept() -> Iterator[None]:
    """The host's KSM settings as they were, whatever a `dyno_ksm` daemon turned on."""
    names = ("run", "use_zero_pages")
    before = {n: (KSM / n).read_text().strip() for n in names if (KSM / n).exists()}
    try:
        yield
    finally:
        if before.get("run") not in (None, "1"):
            (KSM / "run").write_text("2")  # unmerge every page, then stop
        for name, value in before.items():
            (KSM / name).write_text(value)


def memory_kb(pid: int) -> tuple[int, int]:
    """(PSS, RSS) of a process in kB; (0, 0) once it is gone."""
    values = {"Pss:": 0, "Rss:": 0}
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            name, _, rest = line.partition(" ")
            if name in values:
                values[name] = int(rest.split()[0])
    except (OSError, ValueError):
        pass
    return values["Pss:"], values["Rss:"]


def process_tree() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = defaultdict(list)
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            tree[int(stat[stat.rindex(")") + 2:].split()[1])].append(int(entry.name))
    return tree


def descendants(tree: dict[int, list[int]], pid: int) -> list[int]:
    found, todo = [], list(tree.get(pid, []))
    while todo:
        found.append(todo.pop())
        todo.extend(tree.get(found[-1], []))
    return found


def comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return "?"


def classify(state: Path) -> list[dict[str, list[int]]]:
    """Per running dyno: its platform processes by role, and its app's processes."""
    tree = process_tree()
    dynos = []
    for folder in sorted((state / "dynos").iterdir()):
        try:
            shim = json.loads((folder / "shim.json").read_text())["pid"]
            child = json.loads((folder / "child.json").read_text())["pid"]
            net = json.loads((folder / "net.json").read_text())
        except (OSError, ValueError, KeyError):
            continue
        if (folder / "exit.json").exists():
            continue
        inits = tree.get(child, [])
        app = [p for init in inits for p in descendants(tree, init)]
        if "forwarder" in net:  # its pid, in forwarder.json while it has one
            found = json.loads((folder / "forwarder.json").read_text()) if net["forwarder"] else {}
            helper = found.get("pid", 0)
        else:
            helper = net.get("pasta", 0)
        shared = set(egress.processes(state))  # the egress, when this shim happened to start it
        dynos.append({"shim": [shim], "bwrap (outer)": [child], "bwrap (init)": inits,
                      "forwarder" if "forwarder" in net else "pasta": [helper] if helper else [],
                      "app": app,
                      # anything else the shim runs is the platform's too
                      "other": [p for p in tree.get(shim, [])
                                if p not in (child, helper) and p not in shared]})
    shared = egress.processes(state)
    for dyno in dynos:  # one egress for all: each dyno carries its share
        dyno["egress (shared)"] = shared
    return dynos


def copy_slug(platform: Platform, source: Slug, app_id: int, index: int) -> Slug:
    """The prebuilt slug, copied for app `app_id` and owned by its uid (0700), as a build
    leaves one."""
    uid = platform.settings.uid_base + app_id
    slugs = platform.paths.slugs(app_id)
    slugs.mkdir(mode=0o711, parents=True, exist_ok=True)
    slug_id = f"{source.id}-d{index}"
    target = slugs / slug_id
    subprocess.run(["cp", "-a", source.dir, str(target)], check=True)
    subprocess.run(["chown", "-R", f"{uid}:{uid}", str(target)], check=True)
    target.chmod(0o700)
    tarball = slugs / f"{slug_id}.tgz"
    shutil.copyfile(source.path, tarball)
    return Slug(id=slug_id, app_id=app_id, path=str(tarball), dir=str(target),
                size=source.size, commit=source.commit, process_types=source.process_types,
                buildpack=source.buildpack)


def serving(harness, app: str) -> bool:  # noqa: ANN001
    try:
        response = harness.http(app, timeout=5)
    except OSError:
        return False
    return response.status == 200 and "hello world" in response.body


def release_until_serving(platform: Platform, harness, names: list[str],  # noqa: ANN001
                          slugs: dict[str, Slug], attempts: int = 3) -> None:
    """Release each app's slug and wait until all serve; a release whose dyno failed to
    start (a host under load sometimes refuses a sandbox its loopback) is cut again."""
    store = platform.store
    for _ in range(attempts):
        versions = {}
        for name in names:
            app = store.app(name)
            versions[name] = deploy.release(platform, app, description="bench density",
                                            user="admin", slug=slugs[name], wait=False).version
        deadline = time.monotonic() + 300
        waiting = set(names)
        while waiting and time.monotonic() < deadline:
            for name in sorted(waiting):
                status = store.release(store.app(name).id, versions[name]).status
                if serving(harness, name) or status in ("failed", "superseded"):
                    waiting.discard(name)
            time.sleep(0.2)
        names = [name for name in names if not serving(harness, name)]
        if not names:
            return
        print(f"  again: {', '.join(names)}", flush=True)
    raise SystemExit(f"never served: {', '.join(names)}")


def bring_up(harness, count: int, until_body) -> Platform:  # noqa: ANN001
    """`count` one-dyno web apps, each answering 200 through the router."""
    first = "dens000"
    result = harness.push(harness.new_app_repo(first, HELLO_APP))
    if result.returncode != 0:
        raise SystemExit(f"the first push failed:\n{result.stderr}")
    until_body(harness, first, "hello world", time.monotonic())
    platform = Platform(daemon.live_settings(load({"state_dir": str(harness.state)})))
    store = platform.store
    source = store.slugs(store.app(first).id)[-1]
    names = [f"dens{i:03d}" for i in range(1, count)]
    for start in range(0, len(names), BATCH):
        batch = names[start:start + BATCH]
        slugs = {}
        for i, name in enumerate(batch, start + 1):
            if harness.ssh("apps:create", name).returncode != 0:
                raise SystemExit(f"apps:create {name} failed")
            slugs[name] = copy_slug(platform, source, store.app(name).id, i)
            store.add_slug(slugs[name])
        release_until_serving(platform, harness, batch, slugs)
        print(f"  {start + len(batch) + 1}/{count} apps serving", flush=True)
    return platform


def ksm_merged() -> int:
    return sum(int((KSM / name).read_text()) for name in ("pages_sharing", "ksm_zero_pages")
               if (KSM / name).exists())


def ksm_settled(timeout: float = 1200) -> float:
    """Wait until a full scan of ksmd merges nothing more (a page merges on its second scan
    at the earliest); the seconds it took."""
    begun = time.monotonic()
    merged, scans = ksm_merged(), int((KSM / "full_scans").read_text())
    while time.monotonic() - begun < timeout:
        time.sleep(5)
        if int((KSM / "full_scans").read_text()) < scans + 2:
            continue
        now = ksm_merged()
        if now <= merged * 1.01:
            break
        merged, scans = now, int((KSM / "full_scans").read_text())
    return time.monotonic() - begun


def rows(harness, count: int) -> list[tuple[str, str, str]]:  # noqa: ANN001
    time.sleep(5)  # past the boot: the figures of dynos at rest
    settled = ksm_settled() if harness.settings.get("dyno_ksm") else None
    dynos = classify(harness.state)
    if not dynos:
        raise SystemExit("no running dyno found")
    label = "python shim" if comm(dynos[0]["shim"][0]).startswith("python") else "C shim"
    if harness.settings.get("dyno_ksm"):
        label += " + KSM"
    roles = ["shim", "bwrap (outer)", "bwrap (init)", "forwarder", "pasta", "egress (shared)",
             "other"]
    egress_kb = [memory_kb(p) for p in egress.processes(harness.state)]
    measured = [{role: [memory_kb(p) for p in dyno.get(role, [])] for role in [*roles, "app"]
                 if role != "egress (shared)"} for dyno in dynos]
    for m in measured:  # the shared egress, divided among the dynos it serves
        m["egress (shared)"] = [(pss // len(measured), rss // len(measured))
                                for pss, rss in egress_kb]

    def per_dyno(role: str, which: int) -> list[float]:
        return [sum(m[which] for m in dyno[role]) / 1024 for dyno in measured]

    platform_pss = [sum(per_dyno(r, 0)[i] for r in roles) for i in range(len(measured))]
    platform_rss = [sum(per_dyno(r, 1)[i] for r in roles) for i in range(len(measured))]
    app_pss = per_dyno("app", 0)
    table = [(f"[{label}] dynos measured", f"{len(measured)} of {count} apps", "-")]
    if settled is not None:
        table.append((f"[{label}] KSM: until a full scan merged no more",
                      f"{settled:.0f} s", "ksmd at the kernel's default pace"))
    for role in roles:
        pss, rss = per_dyno(role, 0), per_dyno(role, 1)
        if not any(pss):
            continue
        table.append((f"[{label}] {role} per dyno (median)",
                      f"PSS {statistics.median(pss):.2f} MB, RSS {statistics.median(rss):.2f} MB",
                      f"PSS mean {statistics.mean(pss):.2f}, max {max(pss):.2f} MB"))
    table += [
        (f"[{label}] platform processes per dyno",
         ", ".join(f"{r} x{statistics.median(len(d.get(r, [])) for d in dynos):g}"
                   for r in roles if any(d.get(r) for d in dynos)), "-"),
        (f"[{label}] platform PSS per dyno (mean)",
         f"{statistics.mean(platform_pss):.2f} MB (RSS {statistics.mean(platform_rss):.2f} MB)",
         "target <= 2 MB PSS"),
        (f"[{label}] platform PSS, all {len(measured)} dynos",
         f"{sum(platform_pss):.0f} MB (RSS {sum(platform_rss):.0f} MB)", "-"),
        (f"[{label}] app processes' PSS per dyno (mean)",
         f"{statistics.mean(app_pss):.2f} MB", "hello world (http.server)"),
        (f"[{label}] daemon RSS with {count} apps",
         f"{memory_kb(harness.daemon_pid())[1] / 1024:.0f} MB", "-"),
    ]
    return table
