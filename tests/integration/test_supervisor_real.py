"""The supervisor loop driving the real sandbox runtime: deploy, rollout, idle cost."""

from __future__ import annotations

import resource
import shutil
import subprocess
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

from pushd.dynostatus import read_status
from pushd.models import Slug
from pushd.paths import Paths
from pushd.runtime.sandbox import SandboxRuntime
from pushd.settings import Settings, app_uid
from pushd.store import Store
from pushd.supervisor import Supervisor

SERVER = """
import http.server, os
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200); self.end_headers()
        self.wfile.write(os.environ["GREETING"].encode())
    def log_message(self, *a): pass
http.server.HTTPServer(("127.0.0.1", int(os.environ["PORT"])), H).serve_forever()
"""


class Router:
    def __init__(self) -> None:
        self.routes = []

    def apply(self, routes) -> None:
        self.routes = routes


def test_deploy_and_rollout_with_real_dynos():
    root = Path(tempfile.mkdtemp(prefix="pushd-sup-", dir="/tmp"))
    root.chmod(0o711)
    paths = Paths(root / "state")
    paths.ensure()
    settings = Settings(state_dir=paths.root, drain_seconds=0.5, stop_timeout=3,
                        port_range=(32000, 32700), firewall=False)
    store = Store(paths.db)
    runtime = SandboxRuntime(settings, paths)
    router = Router()
    sup = Supervisor(store, runtime, router, settings, paths)
    app = store.create_app("real", "alice")
    slug_dir = root / "slug"
    slug_dir.mkdir()
    (slug_dir / "server.py").write_text(SERVER)
    uid = app_uid(settings, app.id)
    subprocess.run(["chown", "-R", f"{uid}:{uid}", str(slug_dir)], check=True)
    slug = Slug("s1", app.id, "/x.tgz", str(slug_dir), 1, "abc", {"web": "python3 server.py"})
    store.add_slug(slug)
    stop = threading.Event()
    loop = threading.Thread(target=sup.run, args=(stop,), daemon=True)
    loop.start()

    def fetch():
        (_, port, _), = router.routes[0].upstreams
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as resp:
            return resp.read().decode()

    try:
        t0 = time.monotonic()
        v1 = store.create_release(app.id, description="Deploy", user="alice", slug=slug,
                                  config_set={"GREETING": "one"})
        sup.wake()
        assert sup.wait_release(app.id, v1.version, 30).status == "succeeded"
        print(f"v1 live after {time.monotonic() - t0:.2f}s")
        assert fetch() == "one"
        v2 = store.create_release(app.id, description="Set GREETING", user="alice",
                                  config_set={"GREETING": "two"})
        assert sup.wait_release(app.id, v2.version, 30).status == "succeeded"
        assert fetch() == "two"
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and len([i for i in runtime.list()
                                                   if i.spec.app_id == app.id]) != 1:
            time.sleep(0.1)
        alive = [i for i in runtime.list() if i.spec.app_id == app.id]
        assert len(alive) == 1 and alive[0].spec.release == v2.version
        assert [(s.dyno, s.state) for s in read_status(paths, app.id)] == [("web.1", "up")]

        before = resource.getrusage(resource.RUSAGE_SELF)
        time.sleep(5)
        after = resource.getrusage(resource.RUSAGE_SELF)
        cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        print(f"idle supervisor loop: {cpu / 5 * 100:.2f}% CPU")
        assert cpu < 1.0

        sup.stop_all(app.id, timeout=20)
        assert [i for i in runtime.list() if i.spec.app_id == app.id] == []
    finally:
        stop.set()
        sup.wake()
        loop.join(5)
        for info in runtime.list():
            if info.spec.app_id == app.id:
                runtime.remove(info.spec.id)
        shutil.rmtree(root, ignore_errors=True)
