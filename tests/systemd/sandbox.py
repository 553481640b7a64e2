"""Run a program under the system-call restrictions ``systemd/flowcapd.service`` asks
for, without systemd: a seccomp filter built the way systemd 252 builds its own.

- ``MemoryDenyWriteExecute=yes``: mmap with PROT_WRITE|PROT_EXEC, mprotect and
  pkey_mprotect adding PROT_EXEC, shmat with SHM_EXEC fail with EPERM
  (systemd's ``seccomp_memory_deny_write_execute``).
- ``RestrictAddressFamilies=``: socket() of another family fails with EAFNOSUPPORT.
- ``SystemCallFilter=`` (groups expanded by ``systemd-analyze syscall-filter``, so the
  sets are this systemd's) and ``SystemCallErrorNumber=``: anything else fails with
  that errno; ``SystemCallArchitectures=native``: a foreign ABI kills the process.

This cannot be had by starting the unit (no systemd as PID 1 in CI containers), and it
is the part of the hardening that can break the program itself: an interpreter, uvloop,
numpy or pyarrow that needs W+X memory or a missing system call dies or misbehaves here
exactly as it would under the unit. (Mount, user and capability settings only take
things flowcapd never uses; ``ProcSubset=`` is checked in test_unit.py.)

Usage: ``python sandbox.py FILTER_FILE PROGRAM ARG...`` installs the filter from
FILTER_FILE (``build_filter``'s bytes) and execs PROGRAM. x86-64 Linux only.
"""

from __future__ import annotations

import ctypes
import errno
import os
import platform
import re
import struct
import subprocess
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Final

UNISTD_64: Final = Path("/usr/include/x86_64-linux-gnu/asm/unistd_64.h")
AUDIT_ARCH_X86_64: Final = 0xC000003E
# linux/filter.h, linux/seccomp.h
BPF_LD_W_ABS: Final = 0x20
BPF_ALU_AND_K: Final = 0x54
BPF_JEQ_K: Final = 0x15
BPF_JSET_K: Final = 0x45
BPF_RET_K: Final = 0x06
SECCOMP_RET_KILL_PROCESS: Final = 0x80000000
SECCOMP_RET_ERRNO: Final = 0x00050000
SECCOMP_RET_ALLOW: Final = 0x7FFF0000
# struct seccomp_data: nr, arch, instruction_pointer, args[6] (low word first, LE)
OFFSET_NR: Final = 0
OFFSET_ARCH: Final = 4


def _arg(index: int) -> int:
    return 16 + 8 * index


PROT_WRITE, PROT_EXEC, SHM_EXEC = 0x2, 0x4, 0o100000
ADDRESS_FAMILIES: Final = {"AF_UNIX": 1, "AF_INET": 2, "AF_INET6": 10, "AF_NETLINK": 16}


def supported() -> str | None:
    """None if this machine can run the sandbox, else why not."""
    if sys.platform != "linux" or platform.machine() != "x86_64":
        return "the seccomp emulation is written for x86-64 Linux"
    if not UNISTD_64.is_file():
        return f"{UNISTD_64} (system call numbers) not found"
    return None


def unit_directives(unit: Path) -> dict[str, list[str]]:
    """Every ``Key=value`` of a unit file, values in order (keys repeat)."""
    directives: dict[str, list[str]] = {}
    for line in unit.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";", "[")):
            continue
        key, _, value = line.partition("=")
        directives.setdefault(key.strip(), []).append(value.strip())
    return directives


def syscall_numbers() -> dict[str, int]:
    text = UNISTD_64.read_text()
    return {m[1]: int(m[2]) for m in re.finditer(r"#define __NR_(\w+)\s+(\d+)", text)}


def syscall_groups() -> dict[str, list[str]]:
    """``@group`` -> its entries (names and nested groups), from systemd-analyze."""
    text = subprocess.run(
        ["systemd-analyze", "syscall-filter"], capture_output=True, text=True, check=True
    ).stdout
    groups: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in text.splitlines():
        if line.startswith("@"):
            current = groups.setdefault(line.split()[0], [])
        elif line.strip() and not line.strip().startswith("#") and current is not None:
            current.append(line.strip())
        elif not line.strip():
            current = None
    return groups


def _expand(names: Iterable[str], groups: Mapping[str, list[str]]) -> set[str]:
    found: set[str] = set()
    for name in names:
        if name.startswith("@"):
            found |= _expand(groups[name], groups)
        else:
            found.add(name)
    return found


def allowed_syscalls(filters: list[str], groups: Mapping[str, list[str]]) -> set[str]:
    """systemd's reading of ``SystemCallFilter=`` lines: the first allow list sets the
    set, ``~`` lines take from it."""
    allowed: set[str] = set()
    for line in filters:
        deny = line.startswith("~")
        names = _expand(line.removeprefix("~").split(), groups)
        allowed = allowed - names if deny else allowed | names
    return allowed


class _Program:
    """A tiny BPF assembler: forward jumps to labels, resolved at the end."""

    def __init__(self) -> None:
        self.code: list[tuple[int, object, object, int]] = []
        self.labels: dict[str, int] = {}

    def op(self, code: int, k: int, jt: object = 0, jf: object = 0) -> None:
        self.code.append((code, jt, jf, k))

    def label(self, name: str) -> None:
        self.labels[name] = len(self.code)

    def assemble(self) -> bytes:
        out = bytearray()
        for index, (code, jt, jf, k) in enumerate(self.code):
            offsets = []
            for target in (jt, jf):
                offset = self.labels[target] - index - 1 if isinstance(target, str) else target
                if not 0 <= int(offset) <= 255:  # type: ignore[call-overload]
                    raise ValueError(f"jump of {offset} at {index}")
                offsets.append(int(offset))  # type: ignore[call-overload]
            out += struct.pack("<HBBI", code, offsets[0], offsets[1], k)
        return bytes(out)


def build_filter(unit: Path) -> bytes:
    """The seccomp program for ``unit``'s directives (see the module docstring)."""
    directives = unit_directives(unit)
    numbers = syscall_numbers()
    program = _Program()
    program.op(BPF_LD_W_ABS, OFFSET_ARCH)
    program.op(BPF_JEQ_K, AUDIT_ARCH_X86_64, 1, 0)
    program.op(BPF_RET_K, SECCOMP_RET_KILL_PROCESS)
    program.op(BPF_LD_W_ABS, OFFSET_NR)
    if directives.get("MemoryDenyWriteExecute", ["no"])[-1] == "yes":
        eperm = SECCOMP_RET_ERRNO | errno.EPERM
        program.op(BPF_JEQ_K, numbers["mmap"], 0, "not-mmap")
        program.op(BPF_LD_W_ABS, _arg(2))
        program.op(BPF_ALU_AND_K, PROT_WRITE | PROT_EXEC)
        program.op(BPF_JEQ_K, PROT_WRITE | PROT_EXEC, 0, "checks-done")
        program.op(BPF_RET_K, eperm)
        program.label("not-mmap")
        for name in ("mprotect", "pkey_mprotect"):
            program.op(BPF_JEQ_K, numbers[name], 0, f"not-{name}")
            program.op(BPF_LD_W_ABS, _arg(2))
            program.op(BPF_JSET_K, PROT_EXEC, 0, "checks-done")
            program.op(BPF_RET_K, eperm)
            program.label(f"not-{name}")
        program.op(BPF_JEQ_K, numbers["shmat"], 0, "not-shmat")
        program.op(BPF_LD_W_ABS, _arg(2))
        program.op(BPF_JSET_K, SHM_EXEC, 0, "checks-done")
        program.op(BPF_RET_K, eperm)
        program.label("not-shmat")
    if "RestrictAddressFamilies" in directives:
        families = [ADDRESS_FAMILIES[f] for f in directives["RestrictAddressFamilies"][-1].split()]
        program.op(BPF_JEQ_K, numbers["socket"], 0, "checks-done")
        program.op(BPF_LD_W_ABS, _arg(0))
        for family in families:
            program.op(BPF_JEQ_K, family, "checks-done", 0)
        program.op(BPF_RET_K, SECCOMP_RET_ERRNO | errno.EAFNOSUPPORT)
    program.label("checks-done")
    program.op(BPF_LD_W_ABS, OFFSET_NR)
    if "SystemCallFilter" in directives:
        allowed = allowed_syscalls(directives["SystemCallFilter"], syscall_groups())
        for number in sorted(numbers[name] for name in allowed if name in numbers):
            program.op(BPF_JEQ_K, number, 0, 1)
            program.op(BPF_RET_K, SECCOMP_RET_ALLOW)
        error_name = directives.get("SystemCallErrorNumber", [""])[-1]
        denied = (
            SECCOMP_RET_ERRNO | getattr(errno, error_name)
            if error_name
            else SECCOMP_RET_KILL_PROCESS  # systemd's default action is SIGSYS
        )
        program.op(BPF_RET_K, denied)
    else:
        program.op(BPF_RET_K, SECCOMP_RET_ALLOW)
    return program.assemble()


def install_filter(program: bytes) -> None:
    """No new privileges (seccomp requires it without CAP_SYS_ADMIN), then the filter;
    both are inherited by children and kept across execve."""

    class SockFprog(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]

    libc = ctypes.CDLL(None, use_errno=True)
    buffer = ctypes.create_string_buffer(program, len(program))
    fprog = SockFprog(len(program) // 8, ctypes.cast(buffer, ctypes.c_void_p))
    pr_set_no_new_privs, pr_set_seccomp, seccomp_mode_filter = 38, 22, 2
    if libc.prctl(pr_set_no_new_privs, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_NO_NEW_PRIVS)")
    if libc.prctl(pr_set_seccomp, seccomp_mode_filter, ctypes.byref(fprog), 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_SECCOMP)")


if __name__ == "__main__":
    install_filter(Path(sys.argv[1]).read_bytes())
    os.execv(sys.argv[2], sys.argv[2:])
