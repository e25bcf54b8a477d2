"""Static sites on nginx, repositories no bundled buildpack builds, and third-party buildpacks
of the classic contract (local copies in tests/fixtures/buildpacks), through real pushes."""

from __future__ import annotations

import gzip
import subprocess

from .harness import FIXTURES, PushdUnderTest, fixture, push_ok, python_app

BUILDPACKS = FIXTURES / "buildpacks"


def test_static_site_on_nginx_with_root_clean_urls_404_and_gzip(pushd: PushdUnderTest):
    output = push_ok(pushd, "njs-static", fixture("static-nginx"))
    assert "Serving dist/ with nginx (clean URLs, 404 page missing.html)" in output
    assert "web: /app/.static/start" in output or "web" in output
    index = pushd.wait_for("njs-static", "static-nginx on pushd")
    assert "nginx" in index.headers.get("server", "nginx")  # the router may say nginx too
    zipped = pushd.http("njs-static", "/", headers={"Accept-Encoding": "gzip"})
    assert zipped.status == 200 and zipped.headers.get("content-encoding") == "gzip"
    assert pushd.http("njs-static", "/about").body == "about static-nginx\n"  # clean URL
    assert pushd.http("njs-static", "/docs/").body == "docs index\n"
    missing = pushd.http("njs-static", "/no/such/page")
    assert missing.status == 404 and "nothing here (static-nginx 404)" in missing.body
    for outside in ("/../secret.txt", "/static.json", "/.static/server.conf"):
        hidden = pushd.http("njs-static", outside)
        assert hidden.status in (400, 404) and "not served" not in hidden.body, outside


def test_gzip_body_is_the_page(pushd: PushdUnderTest):
    """The gzip answer decodes to the page (read raw: the harness decodes text)."""
    import http.client
    conn = http.client.HTTPConnection("127.0.0.1", pushd.http_port, timeout=10)
    try:
        conn.request("GET", "/", headers={"Host": "njs-static.localhost",
                                          "Accept-Encoding": "gzip"})
        raw = conn.getresponse().read()
    finally:
        conn.close()
    assert b"static-nginx on pushd" in gzip.decompress(raw)


def test_unsupported_repo_fails_at_detect_naming_what_was_found(pushd: PushdUnderTest):
    files = {"Gemfile": "source 'https://rubygems.org'\ngem 'sinatra'\n",
             "Procfile": "web: bundle exec ruby app.rb -p $PORT\n", "app.rb": "puts 1\n"}
    result = pushd.push(pushd.new_app_repo("njs-ruby", files))
    assert result.returncode != 0
    lines = [line.strip() for line in result.stderr.splitlines() if "Unsupported app" in line]
    assert len(lines) == 1, result.stderr
    assert "found Gemfile (Ruby)" in lines[0] and "Node.js (package.json)" in lines[0]
    assert "Procfile app detected" not in result.stderr


def test_inline_buildpack_runs_the_apps_own_bin(pushd: PushdUnderTest):
    files = python_app("inline-app", {
        "Procfile": "",
        "bin/compile": '#!/usr/bin/env bash\necho "-----> inline compile in $PWD for $STACK"\n'
                       'echo "compiled by the app itself" > "$1/compiled.txt"\n',
        "bin/release": "#!/usr/bin/env bash\n"
                       "printf -- '---\\ndefault_process_types:\\n  web: python3 app.py\\n'\n",
        ".buildpacks": f"{BUILDPACKS / 'inline'}\n"})
    del files["Procfile"]
    repo = pushd.new_app_repo("njs-inline", files, executable=("bin/compile", "bin/release"))
    result = pushd.push(repo)
    assert result.returncode == 0, result.stderr
    assert "inline compile in /app for pushd-22" in result.stderr
    assert pushd.wait_for("njs-inline", "inline-app").status == 200  # web from bin/release
    seen = pushd.ssh("run", "njs-inline", "cat", "compiled.txt").stdout
    assert "compiled by the app itself" in seen


def test_multi_procfile_buildpack_picks_the_procfile_named_by_config(pushd: PushdUnderTest):
    assert pushd.ssh("apps:create", "njs-multi").returncode == 0
    assert pushd.ssh("config:set", "njs-multi", "PROCFILE=services/api/Procfile").returncode == 0
    files = python_app("multi-procfile-api", {
        "Procfile": "web: false\n",
        "services/api/Procfile": "web: python3 app.py\n",
        ".buildpacks": f"{BUILDPACKS / 'multi-procfile'}\n"})
    output = push_ok(pushd, "njs-multi", files)
    assert "Copying services/api/Procfile to Procfile" in output
    assert pushd.wait_for("njs-multi", "multi-procfile-api").status == 200


def test_monorepo_buildpack_then_a_bundled_one(pushd: PushdUnderTest):
    assert pushd.ssh("apps:create", "njs-mono").returncode == 0
    assert pushd.ssh("config:set", "njs-mono", "APP_BASE=apps/site").returncode == 0
    # public/ at the root: static's detect accepts the repo whether it runs before the
    # monorepo buildpack's compile or right after it (issue 11's order); either way the site
    # served must be apps/site
    files = {"README.md": "a monorepo\n", "public/index.html": "<h1>the root one</h1>\n",
             "apps/site/index.html": "<h1>monorepo site</h1>\n",
             "apps/other/index.html": "<h1>the other one</h1>\n",
             ".buildpacks": f"{BUILDPACKS / 'monorepo-subdir'}\nstatic\n"}
    output = push_ok(pushd, "njs-mono", files)
    assert "Using apps/site as the app's root" in output
    assert "monorepo site" in pushd.wait_for("njs-mono", "monorepo site").body
    assert "the root one" not in pushd.http("njs-mono", "/").body


def test_a_buildpack_refusing_the_stack_is_shown_with_a_hint(pushd: PushdUnderTest):
    files = python_app("picky", {".buildpacks": f"{BUILDPACKS / 'stack-picky'}\n"})
    result = pushd.push(pushd.new_app_repo("njs-picky", files))
    assert result.returncode != 0
    lines = [line.removeprefix("remote:").strip() for line in result.stderr.splitlines()]
    refusal = "!     Stack pushd-22 is not supported by this buildpack (heroku-22, heroku-24 only)"
    assert refusal in lines, result.stderr
    hint = [line for line in lines if line.startswith("!     Hint:")]
    assert len(hint) == 1 and "does not support the pushd-22 stack" in hint[0], result.stderr
    assert lines.index(refusal) < lines.index(hint[0])


def test_submodule_checked_out_for_the_build_and_a_missing_one_named(pushd: PushdUnderTest):
    env = pushd.env()

    def git(repo, *args: str) -> str:
        return subprocess.run(["git", *args], cwd=repo, env=env, check=True,
                              capture_output=True, text=True).stdout.strip()

    lib = pushd.root / "src" / "njs-sublib"
    lib.mkdir(parents=True)
    git(lib, "init", "-q", "-b", "main")
    (lib / "lib.txt").write_text("from the submodule\n")
    git(lib, "add", "-A")
    git(lib, "commit", "-q", "-m", "lib")
    lib_sha = git(lib, "rev-parse", "HEAD")
    missing = pushd.root / "src" / "njs-nowhere.git"
    files = {"index.html": "<h1>superproject</h1>\n",
             ".gitmodules": f'[submodule "lib"]\n\tpath = vendor/lib\n\turl = {missing}\n'}
    repo = pushd.new_app_repo("njs-submod", files)
    git(repo, "update-index", "--add", "--cacheinfo", f"160000,{lib_sha},vendor/lib")
    git(repo, "commit", "-q", "-m", "add the submodule")
    failed = pushd.push(repo)
    assert failed.returncode != 0
    said = [line for line in failed.stderr.splitlines() if "Submodule vendor/lib" in line]
    assert len(said) == 1 and str(missing) in said[0], failed.stderr

    (repo / ".gitmodules").write_text(f'[submodule "lib"]\n\tpath = vendor/lib\n'
                                      f'\turl = file://{lib}\n')
    git(repo, "add", ".gitmodules")  # not -A: the gitlink has no folder in this checkout
    git(repo, "commit", "-q", "-m", "the submodule's real URL")
    result = pushd.push(repo)
    assert result.returncode == 0, result.stderr
    assert "Fetching submodule vendor/lib" in result.stderr
    pushd.wait_for("njs-submod", "superproject")
    assert pushd.http("njs-submod", "/vendor/lib/lib.txt").body == "from the submodule\n"


def test_submodule_pointing_into_pushds_state_is_refused(pushd: PushdUnderTest):
    files = {"index.html": "<h1>thief</h1>\n",
             ".gitmodules": f'[submodule "x"]\n\tpath = loot\n\turl = {pushd.state}/apps\n'}
    repo = pushd.new_app_repo("njs-subthief", files)
    subprocess.run(["git", "update-index", "--add", "--cacheinfo", f"160000,{'1' * 40},loot"],
                   cwd=repo, check=True, env=pushd.env())
    subprocess.run(["git", "commit", "-q", "-m", "steal"], cwd=repo, check=True, env=pushd.env())
    result = pushd.push(repo)
    assert result.returncode != 0
    assert "Submodule loot: submodule URL" in result.stderr and "refused" in result.stderr
