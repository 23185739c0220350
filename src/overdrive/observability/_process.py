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
    except OSError:
        return "0"


def current_identity() -> ProcessIdentity:
    """The identity of the calling process."""
    pid = os.getpid()
    stat = _stat(pid)
    return ProcessIdentity(boot_id(), pid, stat[1] if stat else 0)


def is_running(identity: ProcessIdentity, boot: str) -> bool:
    """Whether the process `identity` names still runs (and can still write); `boot` is this boot's `boot_id`."""
    if identity.boot != boot:
        return False
    stat = _stat(identity.pid)
    if stat is not None:
        state, start = stat
        return state not in "ZX" and start == identity.start
    if _PROC.joinpath("self").exists():
        return False  # /proc works here, so the pid has no entry: it is gone
    try:
        os.kill(identity.pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process exists under that pid
    return True


def _stat(pid: int) -> tuple[str, int] | None:
    """The state letter and start time of `pid`, or None if it has no ``/proc`` entry."""
    try:
        raw = (_PROC / str(pid) / "stat").read_bytes()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: split after its last ")".
    fields = raw[raw.rindex(b")") + 2 :].split()
    return fields[0].decode(), int(fields[19])
