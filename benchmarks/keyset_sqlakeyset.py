"""sqlakeyset, the peer in benchmarks/keyset.py: its page calls, and checks of its SQL and its bookmarks.

Imported by benchmarks/keyset.py only under --peers; sqlakeyset lives in the benchmark venv, never in the project's
dependencies. Every function takes the session and statements from the caller, so this module knows no model.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import sqlakeyset
import sqlakeyset.asyncio
from sqlakeyset.paging import can_use_native_tuples

from overdrive.exceptions import InvalidCursor

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    import sqlalchemy as sa
    from sqlalchemy.ext.asyncio import AsyncSession
    from sqlalchemy.orm import Session

    from overdrive.db import Paginator

PAGE = 20


def bookmark(values: Sequence[object] | None) -> str | None:
    """sqlakeyset's bookmark for the page after the row with sort-key ``values`` (None: the first page)."""
    if values is None:
        return None
    return sqlakeyset.serialize_bookmark(sqlakeyset.Marker(tuple(values), backwards=False))


def page_sync(session: Session, query: sa.Select[Any], mark: str | None) -> Sequence[Any]:
    """One page and both of its bookmarks, as a response with next/previous links needs them."""
    page = sqlakeyset.select_page(session, query, per_page=PAGE, page=mark)
    _links = (page.paging.bookmark_next, page.paging.bookmark_previous)
    return page


async def page_async(session: AsyncSession, query: sa.Select[Any], mark: str | None) -> Sequence[Any]:
    """`page_sync` through sqlakeyset's asyncio API."""
    page = await sqlakeyset.asyncio.select_page(session, query, per_page=PAGE, page=mark)
    _links = (page.paging.bookmark_next, page.paging.bookmark_previous)
    return page


def row_values_used(session: Session) -> bool:
    """Whether sqlakeyset compares row values, ``(a, b) > (x, y)``, on this session's dialect."""
    return bool(can_use_native_tuples(session.get_bind().dialect))


def quiet() -> None:
    """Silence the warnings sqlakeyset repeats on every call for a nullable key (recorded once by `warnings_for`)."""
    warnings.filterwarnings("ignore", category=UserWarning, module=r"sqlakeyset\.")


def warnings_for(session: Session, query: sa.Select[Any]) -> list[str]:
    """The first sentence of each warning sqlakeyset emits for one page of ``query``."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        sqlakeyset.select_page(session, query, per_page=PAGE)
    return sorted({str(w.message).split(". ")[0] for w in caught})


def bare_nulls_last(session: Session, query: sa.Select[Any]) -> str:
    """What sqlakeyset does with page 1 of ``query`` when a key says ``nulls_last()`` without ``asc()``."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return _outcome(session, lambda: sqlakeyset.select_page(session, query, per_page=PAGE))


@dataclass(frozen=True, slots=True)
class Attempt:
    """A crafted position handed to both libraries, and what each did with it."""

    what: str
    sqlakeyset: str
    overdrive: str


def _outcome(session: Session, run: Callable[[], Sequence[Any]]) -> str:
    try:
        rows = run()
    except InvalidCursor:
        return "rejected: InvalidCursor"
    except Exception as error:  # noqa: BLE001 -- the type of whatever the peer raises is the finding
        session.rollback()
        return f"raised {type(error).__name__}"
    return f"accepted, {len(rows)} rows"


def tampering(
    session: Session,
    paginator: Paginator,
    queries: tuple[sa.Select[Any], sa.Select[Any]],
    values: tuple[int, int],
    cursor: str,
) -> list[Attempt]:
    """Edited and foreign positions: ``values`` and ``cursor`` mark the same row in the first of ``queries``."""
    query, other = queries
    mark = bookmark(values)
    if mark is None:
        msg = "The tampering checks need the position of a row."
        raise ValueError(msg)
    forged_mark = mark.replace(f"i:{values[1]}", "i:1")
    # Flip one character in the middle of the signed cursor: the payload, not the padding.
    middle = len(cursor) // 2
    forged_cursor = cursor[:middle] + ("A" if cursor[middle] != "A" else "B") + cursor[middle + 1 :]

    def ours(q: sa.Select[Any], c: str) -> Callable[[], Sequence[Any]]:
        return lambda: paginator.paginate_sync(session, q, first=PAGE, after=c).items

    def theirs(q: sa.Select[Any], m: str) -> Callable[[], Sequence[Any]]:
        return lambda: sqlakeyset.select_page(session, q, per_page=PAGE, page=m)

    cases = [
        ("edited position (id of the row before changed to 1)", theirs(query, forged_mark), ours(query, forged_cursor)),
        ("position anywhere, written by hand (>i:1~i:1)", theirs(query, ">i:1~i:1"), ours(query, forged_cursor)),
        ("wrong type in a key (>s:x~i:1)", theirs(query, ">s:x~i:1"), ours(query, forged_cursor)),
        ("cursor of another ordering", theirs(other, mark), ours(other, cursor)),
    ]
    return [Attempt(what, _outcome(session, peer), _outcome(session, own)) for what, peer, own in cases]


def null_boundary(
    session: Session, paginator: Paginator, query: sa.Select[Any], values: tuple[int, int], cursor: str
) -> tuple[int, bool, int, bool]:
    """The page after the last non-NULL row of a NULLS LAST ordering: (sqlakeyset rows, has_next, ours, has_next)."""
    mark = bookmark(values)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = sqlakeyset.select_page(session, query, per_page=PAGE, page=mark)
    own = paginator.paginate_sync(session, query, first=PAGE, after=cursor)
    return len(theirs), theirs.paging.has_next, len(own.items), own.has_next
