"""The seccomp denylist of every sandbox (dynos, one-offs, builds), as the classic-BPF program
`bwrap --seccomp FD` loads just before the command runs.

Denied with EPERM: io_uring (a large kernel surface that seccomp cannot see into), the kernel
keyrings (shared by every uid of the host kernel, not namespaced), ptrace and the
process_vm_* and kcmp calls that read or compare other processes, and the classics no app
needs: kexec, kernel modules, bpf, perf_event_open, userfaultfd, open_by_handle_at, reboot.
Nested user namespaces are refused by bwrap's `--disable-userns` instead. A syscall made
with another architecture's calling convention (i386 or x32 on x86_64) could name other
numbers: an arch mismatch kills the process, x32 numbers are denied.

Built here, in Python, from the numbers of each architecture's syscall table: no libseccomp.
"""

from __future__ import annotations

import errno
import hashlib
import os
import platform
import struct
from pathlib import Path

from ..errors import RuntimeFailure

# name -> (x86_64, aarch64) syscall number, from asm/unistd_64.h and asm-generic/unistd.h
DENIED: dict[str, tuple[int, int]] = {
    "io_uring_setup": (425, 425), "io_uring_enter": (426, 426),
    "io_uring_register": (427, 427),
    "add_key": (248, 217), "request_key": (249, 218), "keyctl": (250, 219),
    "ptrace": (101, 117), "process_vm_readv": (310, 270), "process_vm_writev": (311, 271),
    "kcmp": (312, 272),
    "kexec_load": (246, 104), "kexec_file_load": (320, 294),
    "init_module": (175, 105), "finit_module": (313, 273), "delete_module": (176, 106),
    "bpf": (321, 280), "perf_event_open": (298, 241), "userfaultfd": (323, 282),
    "open_by_handle_at": (304, 265), "reboot": (169, 142),
}
# AUDIT_ARCH_* of linux/audit.h: EM_* | 64-bit | little-endian
ARCHES = {"x86_64": (0xC000003E, 0), "aarch64": (0xC00000B7, 1)}
X32_SYSCALL_BIT = 0x40000000

# classic BPF over struct seccomp_data {int nr; u32 arch; u64 ip; u64 args[6]}
LD_W_ABS, JEQ_K, JGE_K, RET_K = 0x20, 0x15, 0x35, 0x06
OFFSET_NR, OFFSET_ARCH = 0, 4
RET_KILL_PROCESS, RET_ERRNO, RET_ALLOW = 0x80000000, 0x00050000, 0x7FFF0000


def _insn(code: int, k: int, jt: int = 0, jf: int = 0) -> bytes:
    return struct.pack("=HBBI", code, jt, jf, k)  # struct sock_filter, in host byte order


def program(machine: str | None = None) -> bytes:
    """The filter for `machine` (default: this host's), as bwrap reads it."""
    machine = machine or platform.machine()
    if machine not in ARCHES:
        raise RuntimeFailure(f"No seccomp denylist for {machine}: sandboxes need x86_64 or "
                             "aarch64")
    audit_arch, column = ARCHES[machine]
    deny = _insn(RET_K, RET_ERRNO | errno.EPERM)
    code = [_insn(LD_W_ABS, OFFSET_ARCH),
            _insn(JEQ_K, audit_arch, jt=1),  # the expected arch skips the kill
            _insn(RET_K, RET_KILL_PROCESS),
            _insn(LD_W_ABS, OFFSET_NR)]
    if machine == "x86_64":
        code += [_insn(JGE_K, X32_SYSCALL_BIT, jf=1), deny]
    for number in sorted({numbers[column] for numbers in DENIED.values()}):
        code += [_insn(JEQ_K, number, jf=1), deny]  # each match falls onto its own deny
    code.append(_insn(RET_K, RET_ALLOW))
    return b"".join(code)


def program_fd(machine: str | None = None) -> int:
    """A descriptor bwrap reads the program from, to hand one bwrap (`--seccomp FD`, and in
    the pass_fds of the process that starts it); the caller closes it once that started. A
    pipe, filled and closed for writing: the program is far smaller than a pipe's buffer."""
    data = program(machine)
    read_end, write_end = os.pipe()
    try:
        os.write(write_end, data)
    finally:
        os.close(write_end)
    return read_end


FILTER_DIR = Path("/run/pushd")


def program_file(machine: str | None = None, folder: Path = FILTER_DIR) -> str:
    """The program in a root-owned file (written once, by content), for chains that open it
    themselves just before bwrap (`bwrap_argv(seccomp_file=...)`): no descriptor to carry
    through the code that builds and runs a step."""
    data = program(machine)
    path = folder / f"seccomp-{hashlib.sha256(data).hexdigest()[:16]}.bpf"
    if not path.exists():
        folder.mkdir(mode=0o755, parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_bytes(data)
        tmp.chmod(0o644)
        os.replace(tmp, path)
    return str(path)
