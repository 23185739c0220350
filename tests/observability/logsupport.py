"""Real sinks for the logging tests: a file, and a pipe whose reader can be stalled."""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

import orjson


def read_lines(path: Path) -> list[dict[str, Any]]:
    """Every JSON line of a log file, parsed (a line that does not parse fails the test)."""
    return [orjson.loads(line) for line in path.read_bytes().splitlines()]


class StallablePipe:
    """An OS pipe: the logs write to one end, a reader thread drains the other unless stalled.

    The pipe's kernel buffer (64 KiB on Linux) fills while the reader is stalled, and then the writer's `write`
    really blocks, as it would on a full disk or a stuck log shipper.
    """

    def __init__(self) -> None:
        read_fd, write_fd = os.pipe()
        self.sink = os.fdopen(write_fd, "wb", buffering=0)
        self._source = os.fdopen(read_fd, "rb", buffering=0)
        self._running = threading.Event()
        self._running.set()
        self._chunks: list[bytes] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def stall(self) -> None:
        """Stop reading: the pipe fills, then writes block."""
        self._running.clear()

    def resume(self) -> None:
        """Read again."""
        self._running.set()

    def close(self) -> list[dict[str, Any]]:
        """Close the write end, wait for the reader to drain, and return every line read."""
        self.resume()
        self.sink.close()
        self._reader.join(10)
        return [orjson.loads(line) for line in b"".join(self._chunks).splitlines()]

    def _read(self) -> None:
        with self._source:
            while True:
                self._running.wait()
                chunk = self._source.read(65536)
                if not chunk:
                    return
                self._chunks.append(chunk)
