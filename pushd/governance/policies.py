"""Policies as code: the rules of `policies.yaml` and their evaluation against an app's state.
Pure: the text comes in, verdicts go out (`policyfile.py` reads the file, `enforce.py`
gathers an app's state).

    rules:
      - name: max-web-dynos
        message: at most 4 web dynos
        max_dynos: {web: 4}                     # per process type; "*" for any other type
      - name: trusted-buildpacks
        message: buildpacks come from github.com/heroku only
        buildpack_sources: [https://github.com/heroku/]   # URL prefixes or git host names
      - name: web-healthcheck
        message: web apps declare healthchecks.web in app.json
        web_healthcheck: true
      - name: no-debug
        message: DEBUG and AWS keys are not allowed
        forbidden_config: [DEBUG, "AWS_*"]      # names or globs
      - name: domains
        message: custom domains under your own zone
        allowed_domains: {alice: ["*.alice.example"], "*": ["*.apps.example"]}

Each rule judges one aspect of an app (its formation, buildpacks, code, config or domains).
An action is judged on what it changes: `ps:scale` on the dynos it adds, `config:set` on the
keys it sets, `domains:add` on the new domain, a push on its buildpacks, its code and the
formation it would start. `policies:check` judges the app's whole current state.
"""

from __future__ import annotations

import fnmatch
import json
import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import yaml

from ..errors import Refused

RULE_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
# the aspect of an app each kind of rule judges
ASPECTS = {"max_dynos": "formation", "buildpack_sources": "buildpacks",
           "web_healthcheck": "code", "forbidden_config": "config",
           "allowed_domains": "domains"}
KINDS = tuple(ASPECTS)
BUNDLED = ("python", "nodejs", "static", "procfile")
BUNDLED_PREFIXES = ("", "pushd/", "heroku/")


class PolicyError(ValueError):
    """policies.yaml cannot be used; the message is one line."""


@dataclass(frozen=True)
class Rule:
    name: str
    kind: str
    message: str
    value: Any  # the kind's parameters, normalised by `parse`

    @property
    def aspect(self) -> str:
        return ASPECTS[self.kind]


@dataclass(frozen=True)
class AppState:
    """What rules look at. An action fills in what it would change (the rest stays empty);
    `policies:check` fills in everything the app has now."""

    app: str
    owner: str
    formation: Mapping[str, int] = field(default_factory=dict)
    buildpacks: Sequence[str] = ()  # references asked for; none means the bundled ones
    process_types: Collection[str] = ()  # of the code judged
    app_json: bytes | None = None  # the code's app.json, None without one
    config: Mapping[str, str] = field(default_factory=dict)
    domains: Sequence[str] = ()


@dataclass(frozen=True)
class Verdict:
    rule: Rule
    failures: tuple[str, ...] = ()  # what breaks the rule; none: it holds

    @property
    def passed(self) -> bool:
        return not self.failures


def parse(text: str) -> tuple[Rule, ...]:
    """The rules of a policies.yaml text, or PolicyError with one line saying what is wrong."""
    try:
        data = yaml.safe_load(text) if text.strip() else None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        problem = getattr(err, "problem", None) or "invalid YAML"
        raise PolicyError(f"not valid YAML{where}: {problem}") from None
    if data is None:
        return ()
    if not isinstance(data, dict) or set(data) != {"rules"}:
        raise PolicyError("expected a mapping with one key, rules: a list of rules")
    items = data["rules"] or []
    if not isinstance(items, list):
        raise PolicyError("rules must be a list")
    rules: list[Rule] = []
    for number, item in enumerate(items, 1):
        rule = _rule(number, item)
        if any(r.name == rule.name for r in rules):
            raise PolicyError(f"rule {number}: the name {rule.name} is used twice")
        rules.append(rule)
    return tuple(rules)


def _rule(number: int, item: object) -> Rule:
    if not isinstance(item, dict):
        raise PolicyError(f"rule {number}: expected a mapping with name, message and a kind")
    name, message = item.get("name"), item.get("message")
    if not isinstance(name, str) or not RULE_NAME_RE.fullmatch(name):
        raise PolicyError(f"rule {number}: name must be letters, digits, '-', '_', '.'")
    if not isinstance(message, str) or not message.strip() or "\n" in message.strip():
        raise PolicyError(f"rule {name}: message must be one line of text")
    kinds = [k for k in item if k not in ("name", "message")]
    unknown = [k for k in kinds if k not in ASPECTS]
    if unknown:
        raise PolicyError(f"rule {name}: unknown key {unknown[0]!r}; a rule has one of "
                          f"{', '.join(KINDS)}")
    if len(kinds) != 1:
        raise PolicyError(f"rule {name}: needs exactly one of {', '.join(KINDS)}")
    kind = kinds[0]
    return Rule(name, kind, message.strip(), _value(name, kind, item[kind]))


def _strings(name: str, kind: str, value: object) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not value or not all(
            isinstance(v, str) and v.strip() for v in value):
        raise PolicyError(f"rule {name}: {kind} must be a list of strings")
    return tuple(v.strip() for v in value)


def _value(name: str, kind: str, value: object) -> Any:
    if kind == "max_dynos":
        if not isinstance(value, dict) or not value or not all(
                isinstance(k, str) and isinstance(v, int) and not isinstance(v, bool)
                and v >= 0 for k, v in value.items()):
            raise PolicyError(f"rule {name}: max_dynos must map process types to counts "
                              "(web: 4)")
        return dict(value)
    if kind == "web_healthcheck":
        if value is not True:
            raise PolicyError(f"rule {name}: web_healthcheck takes true")
        return True
    if kind == "allowed_domains":
        if not isinstance(value, dict) or not value:
            raise PolicyError(f"rule {name}: allowed_domains must map users (or \"*\") to "
                              "lists of domain globs")
        return {str(user): tuple(g.lower() for g in _strings(name, kind, globs))
                for user, globs in value.items()}
    return _strings(name, kind, value)


def evaluate(rule: Rule, state: AppState) -> Verdict:
    """Judge one rule against `state`."""
    failures = tuple(_CHECKS[rule.kind](rule.value, state))
    return Verdict(rule, failures)


def check_all(rules: Sequence[Rule], state: AppState) -> list[Verdict]:
    return [evaluate(rule, state) for rule in rules]


def judge(rules: Sequence[Rule], state: AppState, aspects: Collection[str]) -> None:
    """Refuse (Refused, naming the rule and its message) if a rule about one of `aspects`
    fails for `state`."""
    for rule in rules:
        if rule.aspect in aspects:
            verdict = evaluate(rule, state)
            if not verdict.passed:
                raise Refused(f"Refused by policy {rule.name}: {rule.message} "
                              f"({'; '.join(verdict.failures)})")


def _max_dynos(limits: dict[str, int], state: AppState) -> list[str]:
    found = []
    for ptype, quantity in sorted(state.formation.items()):
        limit = limits.get(ptype, limits.get("*"))
        if limit is not None and quantity > limit:
            found.append(f"{ptype}={quantity}, at most {limit}")
    return found


def _bundled(ref: str) -> bool:
    return any(ref == prefix + name for prefix in BUNDLED_PREFIXES for name in BUNDLED)


def source_allowed(ref: str, allowed: Sequence[str]) -> bool:
    """Whether a buildpack reference comes from an allowed source. A bundled buildpack always
    does. An entry with `://` or a leading `/` is a prefix that must end at a path boundary
    (`https://github.com/heroku` allows `https://github.com/heroku/x.git`, not
    `https://github.com/herokuevil/x.git`); any other entry is a git host name
    (`github.com` allows https://github.com/..., git@github.com:... and ssh://...)."""
    if _bundled(ref):
        return True
    url = ref.split("#", 1)[0]
    if "/../" in f"{url}/" or "/./" in f"{url}/" or "\\" in url:
        return False  # no climbing out of an allowed prefix
    for entry in allowed:
        if "://" in entry or entry.startswith("/"):
            stem = entry.rstrip("/")
            if url == stem or url.startswith(stem + "/"):
                return True
        elif host_of(url) == entry.lower():
            return True
    return False


def host_of(url: str) -> str | None:
    """The host of a git URL (https://host/..., ssh://user@host/..., user@host:path)."""
    if "://" in url:
        try:
            return (urlsplit(url).hostname or "").lower() or None
        except ValueError:
            return None
    user_host, sep, _ = url.partition(":")
    if sep and "@" in user_host and "/" not in user_host:
        return user_host.rsplit("@", 1)[1].lower() or None
    return None


def _buildpack_sources(allowed: tuple[str, ...], state: AppState) -> list[str]:
    return [f"{ref} is not an allowed source" for ref in state.buildpacks
            if not source_allowed(ref, allowed)]


def _web_healthcheck(_value: bool, state: AppState) -> list[str]:
    if "web" not in state.process_types:
        return []
    if state.app_json is None:
        return ["no app.json with healthchecks.web"]
    try:
        data = json.loads(state.app_json)
    except (ValueError, UnicodeDecodeError):
        return ["app.json is not valid JSON"]
    checks = data.get("healthchecks") if isinstance(data, dict) else None
    web = checks.get("web") if isinstance(checks, dict) else None
    if not web or not isinstance(web, (list, dict)):
        return ["app.json has no healthchecks.web"]
    return []


def _forbidden_config(globs: tuple[str, ...], state: AppState) -> list[str]:
    return [f"{key} is set" for key in sorted(state.config)
            if any(fnmatch.fnmatchcase(key, glob) for glob in globs)]


def _allowed_domains(by_user: dict[str, tuple[str, ...]], state: AppState) -> list[str]:
    globs = by_user.get(state.owner, by_user.get("*", ()))
    return [f"{host} is not allowed for {state.owner}" for host in state.domains
            if not any(fnmatch.fnmatchcase(host.lower(), glob) for glob in globs)]


_CHECKS = {"max_dynos": _max_dynos, "buildpack_sources": _buildpack_sources,
           "web_healthcheck": _web_healthcheck, "forbidden_config": _forbidden_config,
           "allowed_domains": _allowed_domains}
