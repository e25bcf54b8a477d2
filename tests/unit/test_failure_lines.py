from pushd.failurelines import app_lines

NPM_START_CRASH = [
    "> app@1.0.0 start",
    "> node server.js",
    "/app/server.js:3",
    "throw new Error('DATABASE_URL is not set');",
    "Error: DATABASE_URL is not set",
    "    at Object.<anonymous> (/app/server.js:3:7)",
    "Node.js v22.23.5",
    "npm notice",
    "npm notice New major version of npm available! 10.9.3 -> 11.6.0",
    "npm notice Changelog: https://github.com/npm/cli/releases/tag/v11.6.0",
    "npm notice To update run: npm install -g npm@11.6.0",
    "npm notice",
    "npm error A complete log of this run can be found in: /app/.npm/_logs/x-debug-0.log",
    "npm WARN config production Use `--omit=dev` instead.",
]


def test_the_apps_error_survives_npm_notices():
    shown = app_lines(NPM_START_CRASH)
    assert "Error: DATABASE_URL is not set" in shown
    assert not any(line.startswith("npm notice") or line.startswith("npm WARN")
                   for line in shown)
    assert shown[-1] == "Node.js v22.23.5"
    assert shown == NPM_START_CRASH[:7]


def test_nothing_but_notices_is_shown_as_it_was():
    lines = ["npm notice", "npm notice New minor version of npm available!"]
    assert app_lines(lines) == lines
    assert app_lines([]) == []
    assert app_lines(["a", "b", "c"], keep=2) == ["b", "c"]
