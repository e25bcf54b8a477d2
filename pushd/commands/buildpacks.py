"""buildpacks, buildpacks:set, buildpacks:add, buildpacks:remove, buildpacks:clear."""

from __future__ import annotations

from ..errors import UsageError
from ..governance import enforce
from ..models import App
from .registry import Context, command, no_more, number_option, one_arg, parse_options


def check_reference(ref: str) -> str:
    from ..build.buildpacks import validate_buildpack

    return validate_buildpack(ref)


def _show(ctx: Context, app: App, buildpacks: list[str]) -> None:
    if not buildpacks:
        ctx.line(f"{app.name} has no buildpack set: the bundled ones are detected at build.")
        return
    ctx.line(f"=== {app.name} Buildpack URLs")
    for number, url in enumerate(buildpacks, 1):
        ctx.line(f"{number}. {url}")


@command("buildpacks", "APP", "List the app's buildpacks")
def buildpacks_list(ctx: Context, app: App, args: list[str]) -> None:
    no_more(args)
    _show(ctx, app, list(app.buildpacks))


def _index(opts: dict[str, str], count: int) -> int | None:
    if "index" not in opts:
        return None
    index = number_option(opts, "index", "--index", 0)
    if not 1 <= index <= count + 1:
        raise UsageError(f"--index must be between 1 and {count + 1}")
    return index


INDEX_OPTION = {"-i": "index", "--index": "index"}


def _reference_at(args: list[str], command: str, app: App) -> tuple[str, int | None]:
    """`URL [-i N]`: the checked reference and the 1-based position asked for (or None)."""
    opts, rest = parse_options(args, INDEX_OPTION, {})
    url = check_reference(one_arg(rest, command, "one buildpack"))
    return url, _index(opts, len(app.buildpacks))


@command("buildpacks:set", "APP URL [-i|--index N]",
         "Set the buildpack (or the one at position N)", options=INDEX_OPTION)
def buildpacks_set(ctx: Context, app: App, args: list[str]) -> None:
    url, index = _reference_at(args, "buildpacks:set", app)
    current = list(app.buildpacks)
    if index is None:
        current = [url]
    elif index > len(current):
        current.append(url)
    else:
        current[index - 1] = url
    enforce.check_buildpacks(ctx.platform, app, [url])
    ctx.store.set_buildpacks(app.id, current)
    ctx.line(f"Buildpack set. Next release on {app.name} will use {url}.")
    _show(ctx, app, current)


@command("buildpacks:add", "APP URL [-i|--index N]", "Add a buildpack (last, or at N)",
         options=INDEX_OPTION)
def buildpacks_add(ctx: Context, app: App, args: list[str]) -> None:
    url, index = _reference_at(args, "buildpacks:add", app)
    current = list(app.buildpacks)
    if url in current:
        raise UsageError(f"{url} is already set on {app.name}")
    current.insert(len(current) if index is None else index - 1, url)
    enforce.check_buildpacks(ctx.platform, app, [url])
    ctx.store.set_buildpacks(app.id, current)
    ctx.line(f"Buildpack added. Next release on {app.name} will use:")
    _show(ctx, app, current)


@command("buildpacks:remove", "APP URL", "Remove one buildpack")
def buildpacks_remove(ctx: Context, app: App, args: list[str]) -> None:
    if len(args) != 1 or args[0] not in app.buildpacks:
        raise UsageError(f"buildpacks:remove needs one of: {', '.join(app.buildpacks) or '-'}")
    current = [b for b in app.buildpacks if b != args[0]]
    ctx.store.set_buildpacks(app.id, current)
    ctx.line(f"Buildpack removed from {app.name}.")


@command("buildpacks:clear", "APP", "Remove every buildpack: detection decides again")
def buildpacks_clear(ctx: Context, app: App, args: list[str]) -> None:
    no_more(args)
    ctx.store.set_buildpacks(app.id, [])
    ctx.line(f"Buildpacks cleared. Next release on {app.name} will detect buildpacks normally.")
