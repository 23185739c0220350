"""Find the application line that caused a query: the innermost stack frame outside libraries.

Frames of the standard library, SQLAlchemy, drivers, web frameworks, servers and Overdrive itself (its demo app
excepted) are skipped. Under SQLAlchemy's asyncio extension a query runs in a greenlet whose own stack stops at
the greenlet's start; the walk then continues in the parent greenlet, where the awaiting coroutines are, so async
code gets its real call site too. Whether a code object is library code is decided once and cached.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from types import CodeType, FrameType

__all__ = ["CallSiteFinder"]

LIBRARY_ROOTS = frozenset(
    {
        "sqlalchemy", "greenlet", "aiosqlite", "asyncpg", "psycopg", "psycopg2", "pymysql", "aiomysql",
        "starlette", "fastapi", "litestar", "anyio", "sniffio", "uvicorn", "granian", "uvloop", "httpx", "httpcore",
        "pydantic", "pydantic_core", "_pytest", "pytest", "pluggy", "pytest_asyncio", "anyio_pytest",
    }
)  # fmt: skip
_MAX_DEPTH = 200


def _is_library(code: CodeType, module: str) -> bool:
    root = module.partition(".")[0]
    if root == "overdrive":
        return not module.startswith("overdrive.demo")
    if root in LIBRARY_ROOTS or root in sys.stdlib_module_names:
        return True
    return code.co_filename.startswith("<")  # generated code: dataclasses, exec'd strings


class CallSiteFinder:
    """Finds ``file:line`` of the innermost application frame, with a per-code-object cache."""

    __slots__ = ("_library",)

    def __init__(self) -> None:
        self._library: dict[CodeType, bool] = {}

    def _app_frame(self, frame: FrameType | None) -> FrameType | None:
        library = self._library
        depth = 0
        while frame is not None and depth < _MAX_DEPTH:
            code = frame.f_code
            is_library = library.get(code)
            if is_library is None:
                is_library = library[code] = _is_library(code, frame.f_globals.get("__name__", ""))
            if not is_library:
                return frame
            frame = frame.f_back
            depth += 1
        return None

    def find(self, *, skip: int = 1) -> str | None:
        """``file:line`` of the caller's nearest application frame, or None when the stack holds none."""
        frame = self._app_frame(sys._getframe(skip))
        if frame is None:
            frame = self._app_frame(_parent_greenlet_frame())
        if frame is None:
            return None
        return f"{frame.f_code.co_filename}:{frame.f_lineno}"


def _parent_greenlet_frame() -> FrameType | None:
    greenlet = sys.modules.get("greenlet")
    if greenlet is None:
        return None
    parent = greenlet.getcurrent().parent
    frame: FrameType | None = None if parent is None else parent.gr_frame
    return frame
