"""The Python buildpack's compile step (run by bin/compile with the stack's python3).

    compile.py BUILD_DIR CACHE_DIR ENV_DIR

1. The interpreter: `.python-version`, else `runtime.txt` (`python-3.11.2`), else the
   stack's python3. Matched on major.minor against the interpreters the stack has
   (`/usr/bin/python3.N`); one it lacks fails the build in one line naming what it has.
2. The installer, by what the repository holds, each using its lockfile exactly: `uv.lock`
   (uv sync --locked), `poetry.lock` (poetry sync), `Pipfile.lock` (pipenv sync),
   `requirements.txt` (pip), else `pyproject.toml`/`setup.py` (pip install .). uv, poetry and
   pipenv are installed from PyPI into the build cache once per version.
3. The virtualenv at BUILD_DIR/.venv (the app runs at /app, where it is built) is kept in the
   build cache under a key (installer, lockfile contents, Python version): a build whose key
   matches copies it back and installs nothing.
4. Django: `manage.py collectstatic --noinput` when Django is installed, unless
   DISABLE_COLLECTSTATIC is set.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

TOOLS = {"uv": "0.13.9", "poetry": "2.5.1", "pipenv": "2026.10.3"}
VERSION_RE = re.compile(r"(\d+)\.(\d+)(?:\.(\d+))?")
KEY_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# config vars never handed to the app's own code at build time (collectstatic)
NOT_EXPORTED = {"PATH", "GIT_DIR", "LD_PRELOAD", "LD_LIBRARY_PATH", "PYTHONHOME", "HOME",
                "BUILD_DIR", "CACHE_DIR", "ENV_DIR"}
# requirement lines that reach beyond requirements.txt: pip runs even when it is unchanged
LOCAL_REF_RE = re.compile(r"^\s*(-r|-c|--requirement|--constraint|-e|--editable|\.|/|file:)")


class Failed(Exception):
    """The build stops; the message is its one ` !     ` line."""


def step(text: str) -> None:
    print(f"-----> {text}", flush=True)


def info(text: str) -> None:
    print(f"       {text}", flush=True)


def read_small(path: Path, limit: int = 4096) -> str | None:
    if not path.is_file():
        return None
    with open(path, "rb") as fh:
        return fh.read(limit).decode("utf-8", "replace")


def run(argv: list[str], env: dict[str, str] | None = None, cwd: str | None = None,
        quiet: bool = False) -> int:
    """Exit status; output indented line by line as it comes (kept back when quiet, then
    shown only on failure)."""
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            env=env, cwd=cwd, stdin=subprocess.DEVNULL)
    held = []
    assert proc.stdout is not None
    for raw in proc.stdout:
        line = raw.decode("utf-8", "replace").rstrip()
        if quiet:
            held.append(line)
        else:
            info(line)
    status = proc.wait()
    if status != 0 and quiet:
        for line in held[-30:]:
            info(line)
    return status


# -- which Python ---------------------------------------------------------------------------

def stack_pythons() -> dict[str, tuple[str, str]]:
    """major.minor -> (interpreter path, full version) of the interpreters the stack has."""
    found: dict[str, tuple[str, str]] = {}
    for path in sorted(Path("/usr/bin").glob("python3.*")):
        if not re.fullmatch(r"python3\.\d+", path.name) or not os.access(path, os.X_OK):
            continue
        probe = subprocess.run([str(path), "-c", "import platform; "
                                "print(platform.python_version())"],
                               capture_output=True, text=True, check=False)
        match = VERSION_RE.fullmatch(probe.stdout.strip())
        if probe.returncode == 0 and match:
            found[f"{match[1]}.{match[2]}"] = (str(path), probe.stdout.strip())
    return found


def requested_version(build: Path) -> tuple[str, str] | None:
    """(version, the file that asked for it), or None for the default."""
    text = read_small(build / ".python-version")
    if text is not None:
        lines = [line.strip() for line in text.splitlines()
                 if line.strip() and not line.strip().startswith("#")]
        wanted = lines[0] if lines else ""
        if not VERSION_RE.fullmatch(wanted):
            raise Failed(f"Invalid Python version {wanted[:40]!r} in .python-version: "
                         "expected one like 3.11 or 3.11.2")
        return wanted, ".python-version"
    text = read_small(build / "runtime.txt")
    if text is not None:
        wanted = text.strip()
        match = re.fullmatch(r"python-(\d+\.\d+(?:\.\d+)?)", wanted)
        if not match:
            raise Failed(f"Invalid Python version {wanted[:40]!r} in runtime.txt: expected "
                         "one like python-3.11.2")
        return match[1], "runtime.txt"
    return None


def choose_python(build: Path) -> tuple[str, str]:
    """(interpreter path, full version), announced with the file that chose it."""
    pythons = stack_pythons()
    asked = requested_version(build)
    if asked is None:
        default = os.path.realpath("/usr/bin/python3")
        for path, full in pythons.values():
            if os.path.realpath(path) == default:
                step(f"Using Python {full} (the stack's default; pin one with "
                     ".python-version)")
                return path, full
        raise Failed("This stack has no python3")
    wanted, source = asked
    match = VERSION_RE.fullmatch(wanted)
    assert match is not None
    minor = f"{match[1]}.{match[2]}"
    if minor not in pythons:
        have = ", ".join(f"{full}" for _, full in pythons.values()) or "none"
        raise Failed(f"Python {wanted} (from {source}) is not available on this stack; "
                     f"available: {have}")
    path, full = pythons[minor]
    step(f"Using Python {full} (from {source})")
    if match[3] is not None and wanted != full:
        info(f"{source} asks for {wanted}; this stack's Python {minor} is {full}")
    return path, full


# -- which installer ------------------------------------------------------------------------

def choose_installer(build: Path) -> tuple[str, list[str]]:
    """(installer, the files that decide what it installs)."""
    if (build / "uv.lock").is_file():
        return "uv", ["uv.lock", "pyproject.toml"]
    if (build / "poetry.lock").is_file():
        return "poetry", ["poetry.lock", "pyproject.toml"]
    if (build / "Pipfile.lock").is_file():
        return "pipenv", ["Pipfile.lock"]
    if (build / "Pipfile").is_file() and not (build / "requirements.txt").is_file():
        raise Failed("Pipfile found without Pipfile.lock: run `pipenv lock` and commit it")
    if (build / "requirements.txt").is_file():
        return "pip", ["requirements.txt"]
    return "pip-project", ["pyproject.toml", "setup.py", "setup.cfg"]


def cache_key(build: Path, installer: str, files: list[str], python: str) -> str:
    digest = hashlib.sha256(f"{installer} {TOOLS.get(installer, '')} {python}\n".encode())
    for name in files:
        path = build / name
        digest.update(f"{name}\n".encode())
        if path.is_file():
            digest.update(path.read_bytes())
    return digest.hexdigest()


def always_runs(build: Path, installer: str) -> bool:
    """The installer still runs on a restored virtualenv: the project's own code is
    installed (pip install .), or requirements.txt names files beyond itself."""
    if installer == "pip-project":
        return True
    if installer == "pip":
        text = (build / "requirements.txt").read_text(errors="replace")
        return any(LOCAL_REF_RE.match(line) for line in text.splitlines())
    return False


def has_requirements(build: Path) -> bool:
    text = (build / "requirements.txt").read_text(errors="replace")
    return any(line.strip() and not line.strip().startswith("#") for line in text.splitlines())


# -- installing -----------------------------------------------------------------------------

class Installer:
    def __init__(self, build: Path, cache: Path, python: str, full: str) -> None:
        self.build, self.cache, self.python, self.full = build, cache, python, full
        self.venv = build / ".venv"
        self.env = dict(os.environ, PIP_CACHE_DIR=str(cache / "pip"),
                        PIP_DISABLE_PIP_VERSION_CHECK="1", PIP_NO_INPUT="1",
                        PIP_PROGRESS_BAR="off")

    def pip_argv(self, python: str) -> list[str]:
        """pip installing into the interpreter `python` (a venv's): the stack's pip with
        --python (pip >= 22.3) saves an ensurepip per build."""
        probe = subprocess.run(["/usr/bin/python3", "-c", "import pip, sys; sys.exit("
                                "tuple(map(int, pip.__version__.split('.')[:2])) < (22, 3))"],
                               capture_output=True, check=False)
        if probe.returncode == 0:
            return ["/usr/bin/python3", "-m", "pip", "--python", python]
        if run([python, "-m", "ensurepip", "--default-pip"], self.env, quiet=True) != 0:
            raise Failed("Could not install pip into the virtualenv")
        return [python, "-m", "pip"]

    def make_venv(self, where: Path) -> None:
        if run([self.python, "-m", "venv", "--without-pip", str(where)], self.env) != 0:
            raise Failed(f"Could not make a virtualenv with {self.python}")

    def tool(self, name: str) -> list[str]:
        """argv prefix running `name` from its folder in the build cache (made once per tool
        and Python version; run as `python -m`, so the folder may be renamed)."""
        version = TOOLS[name]
        home = self.cache / "python" / "tools" / f"{name}-{version}-py{self.full}"
        argv = [str(home / "bin" / "python"), "-m", name]
        if (home / "bin" / "python").exists():
            info(f"Using {name} {version} from the build cache")
            return argv
        step(f"Installing {name} {version} into the build cache")
        partial = home.with_name(home.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        partial.parent.mkdir(parents=True, exist_ok=True)
        self.make_venv(partial)
        target = str(partial / "bin" / "python")
        if name == "uv":
            installer = [*self.pip_argv(target), "install", "--no-warn-script-location"]
        else:  # uv installs the others: parallel downloads, and its cache works everywhere
            installer = [*self.tool("uv"), "pip", "install", "--python", target]
        if run([*installer, f"{name}=={version}"], self.uv_env(self.env), quiet=True) != 0:
            shutil.rmtree(partial, ignore_errors=True)
            raise Failed(f"Could not install {name} {version} from PyPI")
        os.rename(partial, home)
        return argv

    def uv_env(self, env: dict[str, str]) -> dict[str, str]:
        return dict(env, UV_CACHE_DIR=str(self.cache / "python" / "uv"),
                    UV_PYTHON_DOWNLOADS="never", UV_LINK_MODE="copy", UV_NO_PROGRESS="1")

    def install(self, installer: str) -> None:
        build = str(self.build)
        venv_env = dict(self.env, VIRTUAL_ENV=str(self.venv),
                        PATH=f"{self.venv / 'bin'}:{self.env.get('PATH', '')}")
        venv_env.pop("PYTHONHOME", None)
        if installer == "uv":
            uv = self.tool("uv")
            step("Installing dependencies with uv (uv sync --locked)")
            env = dict(self.uv_env(venv_env), UV_PROJECT_ENVIRONMENT=str(self.venv))
            status = run([*uv, "sync", "--locked", "--no-dev", "--python", self.python],
                         env, build)
        elif installer == "poetry":
            poetry = self.tool("poetry")
            self.make_venv(self.venv)
            step("Installing dependencies with poetry (poetry sync --only main)")
            env = dict(venv_env, POETRY_CACHE_DIR=str(self.cache / "python" / "poetry"),
                       POETRY_NO_INTERACTION="1", POETRY_VIRTUALENVS_CREATE="false")
            status = run([*poetry, "sync", "--only", "main", "--no-ansi"], env, build)
        elif installer == "pipenv":
            pipenv = self.tool("pipenv")
            self.make_venv(self.venv)
            step("Installing dependencies with pipenv (pipenv sync)")
            env = dict(venv_env, PIPENV_VERBOSITY="-1", PIPENV_NOSPIN="1", PIPENV_YES="1",
                       PIPENV_CACHE_DIR=str(self.cache / "python" / "pipenv"))
            env.pop("PIPENV_IGNORE_VIRTUALENVS", None)
            status = run([*pipenv, "sync"], env, build)
        else:
            if not self.venv.exists():
                self.make_venv(self.venv)
            target = ["-r", "requirements.txt"] if installer == "pip" else ["."]
            step(f"Installing dependencies with pip (pip install {' '.join(target)})")
            pip = self.pip_argv(str(self.venv / "bin" / "python"))
            status = run([*pip, "install", "--no-warn-script-location", *target],
                         self.env, build)
        if status != 0:
            raise Failed(f"{installer.replace('-project', '')} failed with status {status}")


# -- the virtualenv in the build cache -------------------------------------------------------

def download_cache_line(cache: Path) -> str:
    """What the download caches hold from earlier builds, as it is (never a claim)."""
    files = size = 0
    for folder in (cache / "pip", cache / "python" / "uv", cache / "python" / "poetry",
                   cache / "python" / "pipenv"):
        for root, _, names in os.walk(folder):
            for name in names:
                try:
                    size += os.lstat(os.path.join(root, name)).st_size
                    files += 1
                except OSError:
                    pass
    if not files:
        return "Download cache: empty (first build, or dependencies not cached)"
    return f"Download cache: {files} files, {size / 1e6:.1f} MB from earlier builds"


def restore(cached: Path, venv: Path, key: str) -> bool:
    stamp = cached / ".pushd-cache-key"
    if read_small(stamp) != key:
        return False
    shutil.rmtree(venv, ignore_errors=True)
    if run(["cp", "-a", str(cached), str(venv)]) != 0:
        shutil.rmtree(venv, ignore_errors=True)
        return False
    (venv / ".pushd-cache-key").unlink(missing_ok=True)
    return True


def save(venv: Path, cached: Path, key: str) -> None:
    """Keep the virtualenv for the next build; a full cache only costs the next build time."""
    partial = cached.with_name("venv.partial")
    shutil.rmtree(partial, ignore_errors=True)
    try:
        if run(["cp", "-a", str(venv), str(partial)], quiet=True) != 0:
            raise OSError("cp failed")
        (partial / ".pushd-cache-key").write_text(key)
        shutil.rmtree(cached, ignore_errors=True)
        os.rename(partial, cached)
    except OSError as err:
        shutil.rmtree(partial, ignore_errors=True)
        shutil.rmtree(cached, ignore_errors=True)
        info(f"The virtualenv was not kept in the build cache ({err})")


# -- Django ----------------------------------------------------------------------------------

def config_vars(env_dir: Path) -> dict[str, str]:
    found = {}
    if env_dir.is_dir():
        for path in env_dir.iterdir():
            if KEY_RE.fullmatch(path.name) and path.is_file():
                found[path.name] = path.read_text(errors="replace")
    return found


def collectstatic(build: Path, env_dir: Path) -> None:
    config = config_vars(env_dir)
    if not (build / "manage.py").is_file():
        return
    python = str(build / ".venv" / "bin" / "python")
    probe = subprocess.run([python, "-c", "import django"], capture_output=True, check=False)
    if probe.returncode != 0:
        return
    if "DISABLE_COLLECTSTATIC" in config or os.environ.get("DISABLE_COLLECTSTATIC"):
        info("DISABLE_COLLECTSTATIC is set: collectstatic not run")
        return
    step("$ python manage.py collectstatic --noinput")
    env = dict(os.environ)
    env.update({k: v for k, v in config.items() if k not in NOT_EXPORTED})
    env.update(VIRTUAL_ENV=str(build / ".venv"),
               PATH=f"{build / '.venv' / 'bin'}:{os.environ.get('PATH', '')}")
    if run([python, "manage.py", "collectstatic", "--noinput"], env, str(build)) != 0:
        raise Failed("Error while running '$ python manage.py collectstatic --noinput' (see "
                     "above; to skip it set DISABLE_COLLECTSTATIC=1)")


# -- the whole step ---------------------------------------------------------------------------

PROFILE = """export VIRTUAL_ENV=/app/.venv
export PATH="/app/.venv/bin:$PATH"
export PYTHONUNBUFFERED=true
"""


def compile_app(build: Path, cache: Path, env_dir: Path) -> None:
    python, full = choose_python(build)
    installer, files = choose_installer(build)
    key = cache_key(build, installer, files, full)
    cached = cache / "python" / "venv"
    venv = build / ".venv"
    shutil.rmtree(venv, ignore_errors=True)
    tool = Installer(build, cache, python, full)
    decided_by = next((name for name in files if (build / name).is_file()), files[0])
    if installer == "pip" and not has_requirements(build):
        tool.make_venv(venv)  # no pip at all: a trivial app builds in well under a second
        info("No requirements to install")
    elif restore(cached, venv, key):
        step(f"Reusing the virtualenv from the build cache ({decided_by} and Python "
             "unchanged)")
        if always_runs(build, installer):
            tool.install(installer)
        else:
            info("Nothing to download or install")
    else:
        why = "changed" if cached.is_dir() else "first build with this cache"
        info(f"No cached virtualenv for this {decided_by} ({why})")
        info(download_cache_line(cache))
        tool.install(installer)
        if not venv.exists():
            tool.make_venv(venv)
        save(venv, cached, key)
    collectstatic(build, env_dir)
    profile = build / ".profile.d"
    profile.mkdir(exist_ok=True)
    (profile / "python.sh").write_text(PROFILE)
    # for the buildpacks after this one (multi-buildpack `export`): the app's virtualenv
    (Path(__file__).resolve().parents[1] / "export").write_text(
        f'export VIRTUAL_ENV={venv}\nexport PATH="{venv / "bin"}:$PATH"\n')


def main(argv: list[str]) -> int:
    build, cache, env_dir = (Path(arg) for arg in argv[1:4])
    for name, value in config_vars(env_dir).items():  # private indexes and the like
        if name.startswith("PIP_"):
            os.environ[name] = value
    (cache / "python").mkdir(parents=True, exist_ok=True)
    try:
        compile_app(build, cache, env_dir)
    except Failed as err:
        print(f" !     {err}", flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
