"""A seccomp filter (classic BPF, built here: no libseccomp) for everything a build runs in its sandbox.

It refuses, with EPERM, what a container build never needs and what breaks out or reaches past the
sandbox: new user namespaces (clone/unshare with CLONE_NEWUSER; clone3 answers ENOSYS so libc falls
back to clone), ptrace and reading other processes' memory, kernel keyrings, BPF, perf events,
userfaultfd, io_uring, module loading, kexec, reboot, swap, clocks, handle-based opens (the
"shocker" escape) and TIOCSTI. buildah applies its own default profile to RUN steps on top of it.
The filter is for x86-64 only; `filter_program()` returns None on other architectures.
"""

from __future__ import annotations

import errno
import platform
import struct

AUDIT_ARCH_X86_64 = 0xC000003E
X32_SYSCALL_BIT = 0x40000000
CLONE_NEWUSER = 0x10000000
TIOCSTI = 0x5412

RET_ALLOW = 0x7FFF0000
RET_ERRNO = 0x00050000
RET_KILL_PROCESS = 0x80000000

LD_ABS_W = 0x20
JEQ_K = 0x15
JSET_K = 0x45
JGE_K = 0x35
RET_K = 0x06

OFFSET_NR, OFFSET_ARCH, OFFSET_ARG0, OFFSET_ARG1 = 0, 4, 16, 24

# x86-64 numbers of the refused system calls.
REFUSED_X86_64 = {
    "ptrace": 101, "syslog": 103, "uselib": 134, "modify_ldt": 154, "vhangup": 153, "adjtimex": 159,
    "acct": 163, "settimeofday": 164, "swapon": 167, "swapoff": 168, "reboot": 169, "iopl": 172, "ioperm": 173,
    "init_module": 175, "delete_module": 176, "quotactl": 179, "lookup_dcookie": 212, "clock_settime": 227,
    "kexec_load": 246, "add_key": 248, "request_key": 249, "keyctl": 250, "perf_event_open": 298,
    "name_to_handle_at": 303, "open_by_handle_at": 304, "clock_adjtime": 305, "setns": 308,
    "process_vm_readv": 310, "process_vm_writev": 311, "kcmp": 312, "finit_module": 313,
    "kexec_file_load": 320, "bpf": 321, "userfaultfd": 323, "io_uring_setup": 425, "io_uring_enter": 426,
    "io_uring_register": 427, "pidfd_getfd": 438,
}
CLONE, UNSHARE, CLONE3, IOCTL = 56, 272, 435, 16


def _insn(code: int, k: int, jt: int = 0, jf: int = 0) -> bytes:
    return struct.pack("<HBBI", code, jt, jf, k)


def filter_program() -> bytes | None:
    """The filter as `struct sock_filter` bytes (what `bwrap --seccomp FD` reads), or None off x86-64."""
    if platform.machine() not in ("x86_64", "amd64"):
        return None
    eperm = RET_ERRNO | errno.EPERM
    program = [
        _insn(LD_ABS_W, OFFSET_ARCH),
        _insn(JEQ_K, AUDIT_ARCH_X86_64, jt=1),
        _insn(RET_K, RET_KILL_PROCESS),  # another ABI (i386 int 0x80) would bypass the numbers below
        _insn(LD_ABS_W, OFFSET_NR),
        _insn(JGE_K, X32_SYSCALL_BIT, jf=1),
        _insn(RET_K, RET_KILL_PROCESS),
        _insn(JEQ_K, CLONE3, jf=1),
        _insn(RET_K, RET_ERRNO | errno.ENOSYS),
    ]
    for number in (CLONE, UNSHARE):  # a new user namespace: refused; other namespaces: allowed
        program += [_insn(JEQ_K, number, jf=4), _insn(LD_ABS_W, OFFSET_ARG0), _insn(JSET_K, CLONE_NEWUSER, jf=1),
                    _insn(RET_K, eperm), _insn(LD_ABS_W, OFFSET_NR)]
    program += [_insn(JEQ_K, IOCTL, jf=4), _insn(LD_ABS_W, OFFSET_ARG1), _insn(JEQ_K, TIOCSTI, jf=1),
                _insn(RET_K, eperm), _insn(LD_ABS_W, OFFSET_NR)]
    for number in sorted(REFUSED_X86_64.values()):
        program += [_insn(JEQ_K, number, jf=1), _insn(RET_K, eperm)]
    program.append(_insn(RET_K, RET_ALLOW))
    return b"".join(program)
