from pathlib import Path

from pushd.build.unsupported import found_markers, refusal


def test_a_ruby_app_with_a_procfile_is_refused_naming_both_sides(tmp_path: Path):
    (tmp_path / "Gemfile").write_text("source 'https://rubygems.org'\n")
    (tmp_path / "Procfile").write_text("web: bundle exec rails s\n")
    line = refusal(tmp_path, "Procfile")
    assert line is not None and "\n" not in line
    assert line.startswith("Unsupported app: found Gemfile (Ruby); the bundled buildpacks build")
    assert "Node.js (package.json)" in line and "Python" in line


def test_nothing_detected_and_several_markers(tmp_path: Path):
    for name in ("go.mod", "pom.xml", "composer.json"):
        (tmp_path / name).write_text("")
    (tmp_path / "Dockerfile").symlink_to("/etc/passwd")  # a name is enough; never followed
    assert found_markers(tmp_path) == ["go.mod (Go)", "pom.xml (Java (Maven))",
                                       "composer.json (PHP)", "Dockerfile"]
    assert "go.mod (Go), pom.xml" in (refusal(tmp_path, None) or "")


def test_a_language_buildpack_that_accepted_wins(tmp_path: Path):
    (tmp_path / "Gemfile").write_text("")
    assert refusal(tmp_path, "Node.js") is None  # package.json + Gemfile: a Node app
    assert refusal(tmp_path / "nothing-here", None) is None
