from pushd.build.stackhint import StackWatch


def test_a_refusal_naming_the_stack_gets_a_hint_and_every_line_passes_on():
    seen: list[str] = []
    watch = StackWatch(seen.append, "pushd-22")
    watch("-----> Fetching\n")
    assert watch.hint() is None
    refusal = " !     Stack pushd-22 is not supported by this buildpack\n"
    watch(refusal)
    assert seen == ["-----> Fetching\n", refusal]
    hint = watch.hint() or ""
    assert hint.startswith("Hint: this buildpack does not support the pushd-22 stack")
    assert "\n" not in hint


def test_other_failures_get_no_hint():
    watch = StackWatch(lambda line: None, "pushd-22")
    watch("npm ERR! missing script: build\n")
    watch("haystacks are not stacks\n")
    assert watch.hint() is None


def test_pushds_own_stack_line_is_no_refusal():
    watch = StackWatch(lambda line: None, "pushd-22")
    watch("-----> Building on the pushd-22 stack\n")
    assert watch.hint() is None
    watch("This buildpack requires the heroku-24 stack.\n")
    assert watch.hint() is not None


def test_a_bundled_buildpacks_version_error_is_no_stack_refusal():
    watch = StackWatch(lambda line: None, "pushd-22")
    watch(" !     Python 3.99 (from .python-version) is not available on this stack; "
          "available: 3.11.2\n")
    assert watch.hint() is None
