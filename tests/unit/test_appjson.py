"""app.json parsing: Dokku's healthchecks shape, formation, scripts, cron; hostile input is
one line naming what is wrong."""

from __future__ import annotations

import json

import pytest

from pushd import appjson
from pushd.appjson import AppJsonError, Check, CronEntry, Formation


def parse(doc: object) -> appjson.AppJson:
    return appjson.parse(json.dumps(doc).encode())


def test_no_app_json_gives_the_defaults():
    parsed = appjson.parse(None)
    assert parsed.checks("web") == (Check(),)
    assert parsed.checks("web")[0].accepts(404, "") and not parsed.checks("web")[0].accepts(500, "")
    worker = parsed.checks("worker")[0]
    assert worker.path is None and worker.uptime == 10
    assert parsed.formation == {} and parsed.cron == () and parsed.predeploy is None


def test_dokku_healthchecks_shape():
    parsed = parse({"healthchecks": {"web": [
        {"type": "startup", "name": "ready", "path": "/health", "content": "ok",
         "attempts": 2, "timeout": 3, "wait": 0.5, "initialDelay": 1, "status": 200},
        {"type": "liveness", "path": "/live", "expected": [200, 204]}],
        "worker": [{"type": "startup", "uptime": 3}]}})
    ready, live = parsed.checks("web")
    assert (ready.name, ready.path, ready.content, ready.statuses, ready.attempts,
            ready.timeout, ready.wait, ready.initial_delay) == (
        "ready", "/health", "ok", (200,), 2, 3.0, 0.5, 1.0)
    assert not ready.accepts(200, "nope") and ready.accepts(200, "all ok")
    assert live.type == "liveness" and live.statuses == (200, 204)
    assert not live.accepts(302, "")
    assert parsed.checks("worker")[0].path is None and parsed.checks("worker")[0].uptime == 3
    assert "'ok'" in ready.expected()


def test_formation_scripts_and_cron():
    parsed = parse({"formation": {"web": {"quantity": 2, "size": "basic"},
                                  "worker": {"quantity": 0}},
                    "scripts": {"dokku": {"predeploy": "echo pre", "postdeploy": "echo post"},
                                "postdeploy": "echo heroku"},
                    "cron": [{"command": "echo tick", "schedule": "*/5 * * * *"}]})
    assert parsed.formation == {"web": Formation(2, "basic"), "worker": Formation(0)}
    assert (parsed.predeploy, parsed.postdeploy) == ("echo pre", "echo post")
    assert parsed.cron == (CronEntry("echo tick", "*/5 * * * *"),)
    assert parse({"scripts": {"postdeploy": "echo heroku"}}).postdeploy == "echo heroku"


def test_invalid_json_names_its_line():
    with pytest.raises(AppJsonError, match=r"not valid JSON: .* at line 3 column"):
        appjson.parse(b'{\n  "formation": {}\n  "scripts": {}\n}')


@pytest.mark.parametrize("doc, says", [
    ([], "app.json must be an object"),
    ({"healthchecks": {"web": {}}}, "healthchecks.web must be a list"),
    ({"healthchecks": {"../x": []}}, "invalid process type"),
    ({"healthchecks": {"web": [{"type": "sometimes"}]}}, "type must be one of"),
    ({"healthchecks": {"web": [{"path": "no-slash"}]}}, "absolute URL path"),
    ({"healthchecks": {"web": [{"path": "/a b"}]}}, "absolute URL path"),
    ({"healthchecks": {"web": [{"path": "/\r\nX-Evil: 1"}]}}, "absolute URL path"),
    ({"healthchecks": {"web": [{"attempts": 10**9}]}}, "attempts must be a whole number"),
    ({"healthchecks": {"web": [{"timeout": True}]}}, "timeout must be a number"),
    ({"healthchecks": {"web": [{}] * 11}}, "more than 10 checks"),
    ({"healthchecks": {"web": [{"content": "x" * 5000}]}}, "at most 1024"),
    ({"formation": {"web": {"quantity": -1}}}, "quantity must be a whole number"),
    ({"formation": {"web": {"quantity": 1000}}}, "quantity must be a whole number"),
    ({"cron": [{"command": "x"}]}, "needs a command and a schedule"),
    ({"cron": {"a": 1}}, "cron must be a list"),
    ({"scripts": {"dokku": {"predeploy": ["rm"]}}}, "predeploy must be a string"),
])
def test_hostile_values_are_one_line(doc, says):
    with pytest.raises(AppJsonError, match=says) as err:
        parse(doc)
    assert "\n" not in str(err.value)


def test_bounds_on_size_nesting_and_encoding():
    with pytest.raises(AppJsonError, match="larger than"):
        appjson.parse(b" " * (appjson.MAX_BYTES + 1))
    with pytest.raises(AppJsonError):
        appjson.parse(b"[" * 100000 + b"]" * 100000)
    with pytest.raises(AppJsonError, match="UTF-8"):
        appjson.parse(b'{"x": "\xff"}')


def test_formation_sizes_are_herokus_names():
    parsed = appjson.parse(b'{"formation": {"web": {"size": "Performance-M"}, "worker": {}}}')
    assert parsed.formation["web"].size == "performance-m"
    assert parsed.formation["worker"].size is None
    with pytest.raises(AppJsonError, match=r"^app.json: formation.web.size must be one of "
                                           r"eco, basic, standard-1x, standard-2x, "):
        appjson.parse(b'{"formation": {"web": {"size": "../../x"}}}')
