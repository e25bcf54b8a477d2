"""The static site's nginx server block, from its optional static.json.

`python3 site.py BUILD_DIR OUT`: reads BUILD_DIR/static.json (heroku-buildpack-static's
keys: "root", "clean_urls", "error_page"), checks every value (a tenant's file: paths stay
inside the app, plain names only, nothing reaches nginx's syntax unchecked) and writes the
`server { }` body to OUT. A bad static.json fails in one line.
"""

from __future__ import annotations

import json
import os
import re
import sys

SAFE_PATH = re.compile(r"^[A-Za-z0-9._/-]{1,200}$")


class SiteError(ValueError):
    """static.json asks for something this buildpack will not serve."""


def _relative(value: object, key: str) -> str:
    if not isinstance(value, str) or not SAFE_PATH.match(value):
        raise SiteError(f'"{key}" must be a relative path of letters, digits, ".", "_", "-"')
    parts = [p for p in value.split("/") if p not in ("", ".")]
    if value.startswith("/") or ".." in parts:
        raise SiteError(f'"{key}" must stay inside the app')
    return "/".join(parts)


def settings(build_dir: str) -> dict[str, object]:
    """root (relative to the app, "" for the app itself), clean_urls, error_page."""
    config: dict[str, object] = {}
    path = os.path.join(build_dir, "static.json")
    if os.path.isfile(path) and not os.path.islink(path):
        try:
            with open(path, encoding="utf-8") as fh:
                config = json.loads(fh.read(65536))
        except ValueError as err:
            raise SiteError(f"static.json is not valid JSON: {err}") from None
        if not isinstance(config, dict):
            raise SiteError("static.json must hold an object")
    if "root" in config:
        root = _relative(config["root"], "root")
    elif os.path.isfile(os.path.join(build_dir, "index.html")) \
            or not os.path.isdir(os.path.join(build_dir, "public")):
        root = ""
    else:
        root = "public"
    full = os.path.realpath(os.path.join(build_dir, root))
    if not (full + "/").startswith(os.path.realpath(build_dir) + "/") or not os.path.isdir(full):
        raise SiteError(f'root "{root or "."}" is not a folder of the app')
    clean = config.get("clean_urls", False)
    if not isinstance(clean, bool):
        raise SiteError('"clean_urls" must be true or false')
    error_page = config.get("error_page")
    if error_page is None:
        error_page = "404.html" if os.path.isfile(os.path.join(full, "404.html")) else ""
    else:
        error_page = _relative(error_page, "error_page")
    return {"root": root, "clean_urls": clean, "error_page": error_page}


def server_block(site: dict[str, object]) -> str:
    root = f"/app/{site['root']}".rstrip("/")
    tries = "$uri $uri.html $uri/ =404" if site["clean_urls"] else "$uri $uri/ =404"
    lines = [f"root {root};", "index index.html;",
             # the slug's own dotfiles (.profile.d, .static, .git…) are never served
             "location ~ /\\. { return 404; }",
             f"location / {{ try_files {tries}; }}"]
    if site["error_page"]:
        lines.append(f"error_page 404 /{site['error_page']};")
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> int:
    try:
        site = settings(argv[1])
    except SiteError as err:
        print(f" !     {err}")
        return 1
    with open(argv[2], "w", encoding="utf-8") as fh:
        fh.write(server_block(site))
    where = f"{site['root']}/" if site["root"] else "the app's root folder"
    extras = [word for word, on in (("clean URLs", site["clean_urls"]),
                                    (f"404 page {site['error_page']}", site["error_page"]))
              if on]
    print(f"       Serving {where} with nginx" + (f" ({', '.join(extras)})" if extras else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
