"""quotas, quotas:set, policies, policies:check."""

from __future__ import annotations

from .. import names
from ..errors import Forbidden, NotFound, UsageError
from ..governance import audit, enforce, quotas
from ..governance.policies import check_all
from ..governance.policyfile import FILE_NAME
from ..models import App
from .registry import Context, command, no_more


def _known_user(ctx: Context, name: str) -> str:
    names.key_name(name)
    if name not in {key.name for key in ctx.store.keys()}:
        raise NotFound(f"No key named {name}")
    return name


@command("quotas", "[USER]", "Show a user's quotas and use (addons: shown, enforced once "
         "add-ons exist)", app=False)
def quotas_show(ctx: Context, args: list[str]) -> None:
    if len(args) > 1:
        raise UsageError("quotas takes at most one USER")
    user = args[0] if args else ctx.user.name
    if user != ctx.user.name and not ctx.user.is_admin:
        raise Forbidden("Only admins can see other users' quotas")
    user = _known_user(ctx, user)
    limits = ctx.store.quotas(user)
    used = enforce.usage(ctx.platform, user)
    ctx.line(f"=== {user} Quotas")
    rows = [("quota", "limit", "in use", "counts")]
    rows += [(kind, quotas.limit_text(kind, limits.get(kind)),
              quotas.amount(kind, used.of(kind)), quotas.DESCRIPTIONS[kind])
             for kind in quotas.KINDS]
    widths = [max(len(row[i]) for row in rows) + 2 for i in range(3)]
    for kind, limit, used_text, counts in rows:
        ctx.line(f"{kind:<{widths[0]}}{limit:<{widths[1]}}{used_text:<{widths[2]}}{counts}")


@command("quotas:set", "USER KIND=LIMIT ...",
         "Set a user's quotas: apps, dynos, memory (512m, 4g), oneoffs, builds, addons; "
         "a number (0 allows none) or unlimited", app=False, admin=True)
def quotas_set(ctx: Context, args: list[str]) -> None:
    if not args:
        raise UsageError("quotas:set needs a USER and KIND=LIMIT ...")
    user = _known_user(ctx, args[0])
    limits = quotas.parse_assignments(args[1:])
    ctx.store.set_quotas(user, limits)
    text = " ".join(f"{k}={quotas.limit_text(k, v)}" for k, v in limits.items())
    trail = audit.Trail(ctx.platform.paths.audit_log)
    trail.record(ctx.user.name, f"quotas:set {user}", text)
    ctx.line(f"Quotas of {user} set: {text}")


@command("policies", "", f"List the policies ({FILE_NAME} in the state dir, read on change)",
         app=False)
def policies_list(ctx: Context, args: list[str]) -> int:
    no_more(args)
    current = ctx.platform.policies.current()
    if current.error is not None:
        ctx.err(f" !    {FILE_NAME} is invalid ({current.error}); pushes and the commands "
                "it governs are refused until an admin fixes it\n")
        return 1
    if not current.rules:
        ctx.line(f"No policies ({FILE_NAME} in the state dir has no rules)")
        return 0
    ctx.line("=== Policies")
    rows = [("name", "kind", "message")] + [(r.name, r.kind, r.message) for r in current.rules]
    widths = [max(len(row[i]) for row in rows) + 2 for i in range(2)]
    for name, kind, message in rows:
        ctx.line(f"{name:<{widths[0]}}{kind:<{widths[1]}}{message}")
    return 0


@command("policies:check", "APP", "Check the app's current state against every policy")
def policies_check(ctx: Context, app: App, args: list[str]) -> int:
    no_more(args)
    rules = enforce.rules(ctx.platform)
    if not rules:
        ctx.line(f"No policies to check {app.name} against")
        return 0
    verdicts = check_all(rules, enforce.current_state(ctx.platform, app))
    ctx.line(f"=== {app.name} Policies")
    width = max(len(v.rule.name) for v in verdicts) + 2
    for verdict in verdicts:
        if verdict.passed:
            ctx.line(f"pass  {verdict.rule.name}")
        else:
            ctx.line(f"FAIL  {verdict.rule.name + ':':<{width}}{verdict.rule.message} "
                     f"({'; '.join(verdict.failures)})")
    failed = sum(not v.passed for v in verdicts)
    ctx.line(f"{failed} of {len(verdicts)} failed" if failed else f"All {len(verdicts)} pass")
    return 1 if failed else 0
