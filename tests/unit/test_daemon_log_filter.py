"""The daemon's filter on paramiko's transport log: banner failures go, other errors stay."""

from __future__ import annotations

import logging

import paramiko
import pytest

from pushd.daemon import no_banner_tracebacks


def kept_while_handling(err: Exception) -> bool:
    record = logging.LogRecord("paramiko.transport", logging.ERROR, __file__, 1, "line", None,
                               None)
    try:
        raise err
    except Exception:
        return no_banner_tracebacks(record)
    raise AssertionError("unreachable")


def test_records_logged_while_a_banner_failure_is_handled_are_dropped():
    assert not kept_while_handling(paramiko.SSHException("Error reading SSH protocol banner"))
    assert not kept_while_handling(paramiko.SSHException(
        "Error reading SSH protocol banner[Errno 104] Connection reset by peer"))


@pytest.mark.parametrize("err", [paramiko.SSHException("Incompatible version (1.5 instead of "
                                                       "2.0)"),
                                 RuntimeError("Error reading SSH protocol banner")])
def test_other_errors_are_kept(err: Exception):
    assert kept_while_handling(err)


def test_records_outside_any_exception_are_kept():
    record = logging.LogRecord("paramiko.transport", logging.ERROR, __file__, 1, "x", None, None)
    assert no_banner_tracebacks(record)
