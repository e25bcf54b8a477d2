"""The static buildpack's static.json reader (buildpacks/static/lib/site.py)."""

import importlib.util
import json
from pathlib import Path

import pytest

LIB = Path(__file__).resolve().parents[2] / "buildpacks" / "static" / "lib" / "site.py"
_spec = importlib.util.spec_from_file_location("static_site", LIB)
assert _spec and _spec.loader
site = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(site)


def make(tmp_path: Path, config: object | None, *folders: str) -> str:
    for folder in folders:
        (tmp_path / folder).mkdir(parents=True, exist_ok=True)
    if config is not None:
        (tmp_path / "static.json").write_text(json.dumps(config))
    return str(tmp_path)


def test_defaults_root_public_or_the_app_and_a_404_page_when_there_is_one(tmp_path):
    app = make(tmp_path, None, "public")
    assert site.settings(app) == {"root": "public", "clean_urls": False, "error_page": ""}
    (tmp_path / "public" / "404.html").write_text("x")
    assert site.settings(app)["error_page"] == "404.html"
    (tmp_path / "index.html").write_text("x")
    assert site.settings(app)["root"] == ""


def test_static_json_root_clean_urls_error_page(tmp_path):
    app = make(tmp_path, {"root": "dist/", "clean_urls": True, "error_page": "errors/404.html"},
               "dist")
    block = site.server_block(site.settings(app))
    assert "root /app/dist;" in block
    assert "try_files $uri $uri.html $uri/ =404;" in block
    assert "error_page 404 /errors/404.html;" in block
    assert "location ~ /\\. { return 404; }" in block


@pytest.mark.parametrize("config", [
    {"root": "../etc"}, {"root": "/etc"}, {"root": "dist; include /etc/passwd"},
    {"root": "missing"}, {"error_page": "../../etc/passwd"}, {"error_page": "a b.html"},
    {"clean_urls": "yes"}, ["not", "an", "object"], {"root": "link"}])
def test_bad_static_json_is_refused(tmp_path, config):
    (tmp_path / "link").symlink_to("/etc")
    with pytest.raises(site.SiteError):
        site.settings(make(tmp_path, config, "dist"))


def test_main_fails_in_one_line(tmp_path, capsys):
    (tmp_path / "static.json").write_text("{nope")
    assert site.main(["site.py", str(tmp_path), str(tmp_path / "out")]) == 1
    said = capsys.readouterr().out
    assert said.startswith(" !     static.json is not valid JSON") and said.count("\n") == 1
