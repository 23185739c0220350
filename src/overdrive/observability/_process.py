"""Which process wrote a snapshot, and whether it still runs.

A process is named by boot id, pid and start time (clock ticks since boot, from ``/proc/<pid>/stat``), so a pid the
kernel hands to a new process, or a directory that outlived a reboot, is never mistaken for the writer. A zombie
(killed, not yet reaped by its parent) counts as gone: it can write nothing more. Without ``/proc`` (macOS) the start
time is 0 and liveness falls back to ``kill(pid, 0)``, which cannot tell a reused pid apart.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

_PROC = Path("/proc")


@dataclass(frozen=True, slots=True)
class ProcessIdentity:
    """A process as boot id (8 hex digits), pid and start time; its `token` is safe in a file name."""

    boot: str
    pid: int
    start: int

    @property
    def token(self) -> str:
        """``<boot>-<pid>-<start>``."""
        return f"{self.boot}-{self.pid}-{self.start}"


def boot_id() -> str:
    """The running kernel's boot id, shortened; ``0`` where the system has none."""
    try:
        return (_PROC / "sys/kernel/random/boot_id").read_text().replace("-", "")[:8]
    except FileNotFoundError:
        return "0"


def current_identity() -> ProcessIdentity:
    """The identity of the calling process."""
    identity = identity_of(os.getpid())
    if identity is None:  # pragma: no cover (a process can always read its own entry)
        msg = "This process has no /proc entry."
        raise RuntimeError(msg)
    return identity


def identity_of(pid: int) -> ProcessIdentity | None:
    """The identity of the running process `pid`, or None if there is none (start time 0 without ``/proc``)."""
    stat = _stat(pid)
    if stat is not None:
        return ProcessIdentity(boot_id(), pid, stat[1])
    return ProcessIdentity(boot_id(), pid, 0) if _exists_without_proc(pid) else None


def is_running(identity: ProcessIdentity, boot: str) -> bool:
    """Whether the process `identity` names still runs (and can still write); `boot` is this boot's `boot_id`."""
    if identity.boot != boot:
        return False
    stat = _stat(identity.pid)
    if stat is not None:
        state, start = stat
        return state not in "ZX" and start == identity.start
    return _exists_without_proc(identity.pid)


def _exists_without_proc(pid: int) -> bool:
    """Whether `pid` exists, on a system without ``/proc`` (where /proc works, no entry means no process)."""
    if _PROC.joinpath("self").exists():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process
    return True


def _stat(pid: int) -> tuple[str, int] | None:
    """The state letter and start time of `pid`, or None if it has no ``/proc`` entry.

    Only "no such process" means gone; any other error (out of file descriptors...) propagates, since taking a
    live worker for dead would count its requests twice.
    """
    try:
        raw = (_PROC / str(pid) / "stat").read_bytes()
    except (FileNotFoundError, ProcessLookupError):
        return None
    # The command name (field 2) may hold spaces and parentheses: split after its last ")".
    fields = raw[raw.rindex(b")") + 2 :].split()
    return fields[0].decode(), int(fields[19])
