"""The check that keeps dyno endpoint ports out of the kernel's ephemeral ports."""

from __future__ import annotations

from pathlib import Path

import pytest

from pushd.ports import ephemeral_clash, kernel_ephemeral_range

EPHEMERAL = (32768, 60999)


@pytest.mark.parametrize("port_range", [(20000, 29999), (1024, 32767), (61000, 65535),
                                        (32767, 32767)])
def test_a_range_outside_the_ephemeral_ports_passes(port_range):
    assert ephemeral_clash(port_range, EPHEMERAL) is None


@pytest.mark.parametrize("port_range", [(33000, 33999), (32768, 60999), (20000, 32768),
                                        (60999, 62000), (1024, 65535)])
def test_any_overlap_is_one_line_naming_both_ranges_and_the_setting(port_range):
    message = ephemeral_clash(port_range, EPHEMERAL)
    low, high = port_range
    assert message == (f"port_range {low}-{high} overlaps the kernel's ephemeral ports "
                       "32768-60999 (net.ipv4.ip_local_port_range): set port_range in "
                       "pushd.yaml outside 32768-60999, or narrow that sysctl")
    assert "\n" not in message


def test_an_unknown_ephemeral_range_passes():
    assert ephemeral_clash((33000, 33999), None) is None


def test_the_kernel_range_is_read_from_its_file(tmp_path: Path):
    path = tmp_path / "ip_local_port_range"
    path.write_text("32768\t60999\n")
    assert kernel_ephemeral_range(path) == (32768, 60999)
    path.write_text("garbage\n")
    assert kernel_ephemeral_range(path) is None
    assert kernel_ephemeral_range(tmp_path / "missing") is None
