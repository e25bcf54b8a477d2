"""cron.py: 5-field schedules parsed, validated and matched (UTC), app.json's `cron` read."""

from __future__ import annotations

import calendar

import pytest

from pushd.appjson import AppJsonError, parse
from pushd.cron import parse_schedule
from pushd.errors import InvalidValue


def at(text: str) -> float:
    """'2026-11-28 14:05' (a Saturday) as epoch seconds, UTC."""
    day, clock = text.split()
    y, mo, d = map(int, day.split("-"))
    h, mi = map(int, clock.split(":"))
    return float(calendar.timegm((y, mo, d, h, mi, 30, 0, 0, 0)))


@pytest.mark.parametrize("schedule, when, due", [
    ("* * * * *", "2026-11-28 14:05", True),
    ("*/5 * * * *", "2026-11-28 14:05", True),
    ("*/5 * * * *", "2026-11-28 14:06", False),
    ("0 3 * * *", "2026-11-28 03:00", True),
    ("0 3 * * *", "2026-11-28 04:00", False),
    ("15,45 8-10 * * *", "2026-11-28 09:45", True),
    ("15,45 8-10 * * *", "2026-11-28 11:45", False),
    ("0 0 * * sat", "2026-11-28 00:00", True),  # 2026-11-28 is a Saturday
    ("0 0 * * 7", "2026-11-29 00:00", True),  # 7 is Sunday too
    ("0 0 * * mon-fri", "2026-11-28 00:00", False),
    ("0 0 1 jan *", "2027-01-01 00:00", True),
    ("0 0 13 * fri", "2026-11-13 00:00", True),  # both restricted: either matches
    ("0 0 13 * fri", "2026-11-27 00:00", True),
    ("0 0 13 * fri", "2026-11-28 00:00", False),
    ("10-50/20 * * * *", "2026-11-28 14:30", True),
    ("10-50/20 * * * *", "2026-11-28 14:40", False),
    ("@hourly", "2026-11-28 14:00", True),
    ("@daily", "2026-11-28 14:00", False),
])
def test_schedules_fire_in_their_minutes(schedule, when, due):
    assert parse_schedule(schedule).due(at(when)) is due


@pytest.mark.parametrize("bad", [
    "", "* * * *", "* * * * * *", "60 * * * *", "* 24 * * *", "* * 0 * *", "* * * 13 *",
    "* * * * 8", "*/0 * * * *", "5-1 * * * *", "a * * * *", "1,,2 * * * *", "-1 * * * *",
    "* * * * * ; rm -rf /", "*\n* * * *", "@reboot", "1" * 300, "999 * * * *",
])
def test_malformed_schedules_are_one_line_errors(bad):
    with pytest.raises(InvalidValue) as err:
        parse_schedule(bad)
    assert "\n" not in str(err.value)


def test_app_json_cron_is_read_and_validated():
    raw = b'{"cron": [{"command": "python3 task.py", "schedule": "*/5 * * * *"}]}'
    [entry] = parse(raw).cron
    assert entry.command == "python3 task.py"
    assert parse_schedule(entry.schedule).text == "*/5 * * * *"
    assert parse(b'{"name": "x"}').cron == ()
    for bad in (b"{", b'{"cron": {}}', b'{"cron": [{"command": "x"}]}',
                b'{"cron": [{"command": " ", "schedule": "* * * * *"}]}',
                b'{"cron": [{"command": "x", "schedule": "61 * * * *"}]}',
                b'{"cron": [' + b",".join([b'{"command": "x", "schedule": "* * * * *"}'] * 51)
                + b"]}"):
        with pytest.raises(AppJsonError):
            parse(bad)
