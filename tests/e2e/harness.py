"""Drive a real pushd daemon through real clients: OpenSSH `ssh` and `git`, HTTP via nginx."""

from __future__ import annotations

import http.client
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import yaml

VENV_BIN = Path(sys.executable).parent
PUSHD = str(VENV_BIN / "pushd")
FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def sh(argv: list[str], **kwargs: object) -> subprocess.CompletedProcess:
    kwargs.setdefault("capture_output", True)
    kwargs.setdefault("text", True)
    kwargs.setdefault("timeout", 300)
    return subprocess.run(argv, **kwargs)  # noqa: PLW1510


@dataclass
class Response:
    status: int
    body: str
    headers: dict[str, str]


def new_root(prefix: str) -> Path:
    """A folder for one daemon: not under pytest's 0700 tmp dirs (the apps' uids must reach
    their slugs), nor under /tmp, which every sandbox hides behind its own: isolation tests
    must see a real leak."""
    root = Path(tempfile.mkdtemp(prefix=prefix, dir="/var/tmp"))
    root.chmod(0o711)
    return root


def running(root: Path, settings: dict) -> Iterator[PushdUnderTest]:
    """A fixture's body: a daemon started in `root`, then stopped with everything it ran and
    its folder removed."""
    platform = PushdUnderTest(root, settings=settings)
    platform.start()
    yield platform
    platform.stop(everything=True)
    shutil.rmtree(root, ignore_errors=True)


@dataclass
class PushdUnderTest:
    root: Path
    settings: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.state = self.root / "state"
        self.keys = self.root / "keys"
        self.ssh_port = free_port()
        self.http_port = free_port()
        self.ssh_config = self.root / "ssh_config"

    # lifecycle
    def env(self) -> dict[str, str]:
        return dict(os.environ, PUSHD_HOME=str(self.state),
                    GIT_SSH_COMMAND=f"ssh -F {self.ssh_config}",
                    GIT_AUTHOR_NAME="Test", GIT_AUTHOR_EMAIL="t@example.com",
                    GIT_COMMITTER_NAME="Test", GIT_COMMITTER_EMAIL="t@example.com")

    def make_key(self, name: str) -> Path:
        self.keys.mkdir(parents=True, exist_ok=True)
        path = self.keys / name
        if not path.exists():
            sh(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", str(path)],
               check=True)
        return path

    def write_ssh_config(self, names: list[str]) -> None:
        blocks = []
        for name in names:
            host = "platform" if name == "admin" else f"platform-{name}"
            blocks.append(
                f"Host {host}\n  HostName 127.0.0.1\n  Port {self.ssh_port}\n  User git\n"
                f"  IdentityFile {self.keys / name}\n  IdentitiesOnly yes\n"
                "  StrictHostKeyChecking no\n  UserKnownHostsFile /dev/null\n"
                "  LogLevel ERROR\n  BatchMode yes\n")
        self.ssh_config.write_text("\n".join(blocks))

    def start(self) -> None:
        self.state.mkdir(parents=True, exist_ok=True)
        settings = {"ssh_port": self.ssh_port, "http_port": self.http_port,
                    "ssh_host": "127.0.0.1", "http_host": "127.0.0.1", **self.settings}
        (self.state / "pushd.yaml").write_text(yaml.safe_dump(settings))
        admin = self.make_key("admin")
        self.write_ssh_config(["admin", "alice", "bob", "stranger"])
        for name in ("alice", "bob", "stranger"):
            self.make_key(name)
        self.up(f"{admin}.pub")
        for name in ("alice", "bob"):
            pub = (self.keys / f"{name}.pub").read_text()
            result = self.ssh("keys:add", name, "--role", "user", input=pub)
            assert result.returncode == 0, result.stderr

    def up(self, admin_key: str | None = None) -> None:
        argv = [PUSHD, "up", "--detach"]
        if admin_key:
            argv += ["--admin-key", admin_key]
        result = sh(argv, env=self.env(), timeout=120)
        assert result.returncode == 0, result.stdout + result.stderr

    def daemon_pid(self) -> int | None:
        try:
            return int((self.state / "pushd.pid").read_text().split()[0])
        except (OSError, ValueError):
            return None

    def stop(self, everything: bool = True) -> None:
        argv = [PUSHD, "down"] + (["--all"] if everything else [])
        sh(argv, env=self.env(), timeout=120)

    # clients
    def ssh(self, *args: str, user: str = "admin", input: str | None = None,
            tty: bool = False, timeout: float = 300) -> subprocess.CompletedProcess:
        host = "platform" if user == "admin" else f"platform-{user}"
        argv = ["ssh", "-F", str(self.ssh_config)] + (["-tt"] if tty else []) + [host, *args]
        stdin = None if input is not None else subprocess.DEVNULL
        return sh(argv, input=input, stdin=stdin, timeout=timeout, env=self.env())

    def new_app_repo(self, name: str, files: dict[str, str], user: str = "admin",
                     executable: tuple[str, ...] = ()) -> Path:
        repo = self.root / "src" / f"{name}-{user}"
        if repo.exists():
            shutil.rmtree(repo)
        repo.mkdir(parents=True)
        write_files(repo, files, executable)
        env = self.env()
        host = "platform" if user == "admin" else f"platform-{user}"
        for argv in (["git", "init", "-q", "-b", "main"], ["git", "add", "-A"],
                     ["git", "commit", "-q", "-m", "first"],
                     ["git", "remote", "add", "platform", f"ssh://git@{host}/{name}"]):
            sh(argv, cwd=repo, env=env, check=True)
        return repo

    def deploy(self, name: str, files: dict[str, str], user: str = "admin") -> Path:
        """A new app repo for `name`, pushed as `user`; the push must succeed."""
        repo = self.new_app_repo(name, files, user=user)
        result = self.push(repo)
        assert result.returncode == 0, result.stderr
        return repo

    def commit(self, repo: Path, files: dict[str, str], message: str = "change") -> str:
        write_files(repo, files, ())
        env = self.env()
        sh(["git", "add", "-A"], cwd=repo, env=env, check=True)
        sh(["git", "commit", "-q", "-m", message], cwd=repo, env=env, check=True)
        return sh(["git", "rev-parse", "HEAD"], cwd=repo, env=env).stdout.strip()

    def push(self, repo: Path, *extra: str, branch: str = "main",
             timeout: float = 600) -> subprocess.CompletedProcess:
        return sh(["git", "push", *extra, "platform", branch], cwd=repo, env=self.env(),
                  timeout=timeout)

    def http(self, app: str, path: str = "/", host: str | None = None,
             headers: dict[str, str] | None = None, timeout: float = 10) -> Response:
        conn = http.client.HTTPConnection("127.0.0.1", self.http_port, timeout=timeout)
        try:
            conn.request("GET", path, headers={"Host": host or f"{app}.localhost",
                                               **(headers or {})})
            resp = conn.getresponse()
            return Response(resp.status, resp.read().decode("utf-8", "replace"),
                            {k.lower(): v for k, v in resp.getheaders()})
        finally:
            conn.close()

    def wait_for(self, app: str, text: str, timeout: float = 60, **kwargs: object) -> Response:
        """Poll until the app answers 200 with `text` in the body (or fail with the last)."""
        deadline = time.monotonic() + timeout
        last: object = None
        while time.monotonic() < deadline:
            try:
                last = self.http(app, **kwargs)
                if last.status == 200 and text in last.body:
                    return last
            except OSError as err:
                last = err
            time.sleep(0.1)
        raise AssertionError(f"{app} never answered with {text!r}; last: {last}")


class Poller:
    """Requests the app every `every` seconds while in the `with` block; keeps what was not a
    200 (with `body` in it, when given) in `failures`, and when: `seconds` spans the first to
    the last such request (0 if none failed)."""

    def __init__(self, platform: PushdUnderTest, app: str, body: str | None = None,
                 every: float = 0.02, timeout: float = 5) -> None:
        self.platform, self.app, self.body = platform, app, body
        self.every, self.timeout = every, timeout
        self.failures: list[object] = []
        self.failed_at: list[float] = []
        self.total = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    @property
    def failed(self) -> int:
        return len(self.failures)

    @property
    def seconds(self) -> float:
        return self.failed_at[-1] - self.failed_at[0] if self.failed_at else 0.0

    def run(self) -> None:
        while not self.stop.is_set():
            failure: object = None
            try:
                answer = self.platform.http(self.app, timeout=self.timeout)
                if answer.status != 200:
                    failure = answer.status
                elif self.body is not None and self.body not in answer.body:
                    failure = f"200 without {self.body!r}"
            except OSError as err:
                failure = str(err)
            if failure is not None:
                self.failures.append(failure)
                self.failed_at.append(time.monotonic())
            self.total += 1
            time.sleep(self.every)

    def __enter__(self) -> Poller:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join()


def write_files(root: Path, files: dict[str, str], executable: tuple[str, ...]) -> None:
    for rel, content in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)
        if rel in executable:
            path.chmod(0o755)


def fixture(name: str) -> dict[str, str]:
    """The files of the fixture app tests/fixtures/apps/<name>, by path."""
    root = FIXTURES / "apps" / name
    return {str(p.relative_to(root)): p.read_text() for p in root.rglob("*") if p.is_file()}


def push_ok(pushd: PushdUnderTest, app: str, files: dict[str, str]) -> str:
    """Push `files` as a new app; the push's output (its stderr), asserting it succeeded."""
    result = pushd.push(pushd.new_app_repo(app, files))
    assert result.returncode == 0, result.stderr
    return result.stderr


ANSWERED = """\
try:
    text = answer(self.path)
except Exception as err:
    status, text = 500, type(err).__name__
"""


def http_app(head: str = "", respond: str = ANSWERED, serve: str = "") -> str:
    """The source of a one-file Python web app serving GET on 127.0.0.1:$PORT. `head`: module
    code after `import os` (imports, state, helpers); `respond`: the body of `do_GET`, which
    sets `text` (and `status`, else 200) from `self.path` and `self.headers`; by default
    `answer(self.path)` from `head`, an exception answering 500 with its type's name;
    `serve`: module code run before the server starts."""
    return "\n".join([
        "import os",
        "from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer",
        "",
        head.rstrip("\n"),
        "",
        "",
        "class Handler(BaseHTTPRequestHandler):",
        "    def do_GET(self):",
        "        status = 200",
        textwrap.indent(respond.rstrip("\n"), " " * 8),
        "        data = text.encode()",
        "        self.send_response(status)",
        '        self.send_header("Content-Length", str(len(data)))',
        "        self.end_headers()",
        "        self.wfile.write(data)",
        "",
        "    def log_message(self, *args):",
        "        pass",
        "",
        "",
        *([serve.rstrip("\n")] if serve else []),
        'ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), Handler).serve_forever()',
        ""])


WEB_RESPOND = """\
text = BODY + " dyno=" + os.environ.get("DYNO", "?")
if self.path == "/boot":
    text = BOOT
if self.path.startswith("/env/"):
    text = os.environ.get(self.path[5:], "<unset>")
if self.path.startswith("/header/"):
    text = self.headers.get(self.path[8:], "<none>")
"""


def python_app(body: str, extra: dict[str, str] | None = None) -> dict[str, str]:
    """A Python web app with no dependencies that answers `body dyno=web.N` (`/boot`: a
    token drawn as it started, `/env/NAME`, `/header/NAME`)."""
    head = (f"BODY = {body!r}\n"
            "BOOT = os.urandom(8).hex()  # this process's: a replaced dyno answers another\n")
    return {"app.py": http_app(head, WEB_RESPOND), "requirements.txt": "",
            "Procfile": "web: python3 app.py\n", **(extra or {})}
