"""The sandbox's seccomp program, decoded back from the bytes bwrap loads."""

from __future__ import annotations

import errno
import os
import struct

import pytest

from pushd.errors import RuntimeFailure
from pushd.runtime.bwrap import bwrap_argv
from pushd.runtime.seccomp import program, program_fd

ALLOW, KILL, EPERM = 0x7FFF0000, 0x80000000, 0x00050000 | errno.EPERM


def run(code: bytes, nr: int, arch: int) -> int:
    """A tiny classic-BPF interpreter for the instructions the program uses."""
    insns = [struct.unpack("=HBBI", code[i:i + 8]) for i in range(0, len(code), 8)]
    data = struct.pack("=iI", nr, arch)
    pc, acc = 0, 0
    while True:
        op, jt, jf, k = insns[pc]
        if op == 0x20:  # ld [k]
            acc = struct.unpack_from("=I", data, k)[0]
            pc += 1
        elif op in (0x15, 0x35):  # jeq / jge
            hit = acc == k if op == 0x15 else acc >= k
            pc += 1 + (jt if hit else jf)
        elif op == 0x06:
            return k
        else:
            raise AssertionError(f"unexpected instruction {op:#x}")


X86_64, AARCH64, I386 = 0xC000003E, 0xC00000B7, 0x40000003


def test_x86_64_denies_the_listed_calls_with_eperm_and_allows_the_rest():
    code = program("x86_64")
    for nr in (425, 426, 427, 250, 248, 249, 101, 321, 298, 323, 246, 320):
        assert run(code, nr, X86_64) == EPERM, nr
    for nr in (0, 1, 39, 56, 59, 231, 272, 435):  # read, write, getpid, clone, execve...
        assert run(code, nr, X86_64) == ALLOW, nr
    assert run(code, 0x40000000 + 250, X86_64) == EPERM  # x32 keyctl
    assert run(code, 20, I386) == KILL  # int 0x80: another table of numbers


def test_aarch64_uses_its_own_numbers():
    code = program("aarch64")
    for nr in (425, 219, 217, 117, 280, 241, 282, 104):
        assert run(code, nr, AARCH64) == EPERM, nr
    assert run(code, 101, AARCH64) == ALLOW  # ptrace on x86_64, nanosleep here
    assert run(code, 101, X86_64) == KILL


def test_other_architectures_are_refused():
    with pytest.raises(RuntimeFailure, match="No seccomp denylist for riscv64"):
        program("riscv64")


def test_the_descriptor_holds_the_program_once():
    fd = program_fd()
    try:
        assert os.read(fd, 65536) == program() and os.read(fd, 1) == b""
    finally:
        os.close(fd)


def test_bwrap_gets_the_filter_and_no_nested_user_namespaces():
    argv = bwrap_argv(40001, [], {}, ["true"], seccomp_fd=9)
    assert "--disable-userns" in argv and argv[argv.index("--seccomp") + 1] == "9"
    assert argv.index("--unshare-user") < argv.index("--disable-userns")
