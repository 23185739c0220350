"""Replica routing under injected lag: stale reads of one's own writes, replica share, and the router's overhead.

Starts a throwaway primary and a streaming replica whose replay is delayed by ``recovery_min_apply_delay``
(200 ms by default), both pinned to --server-cpu; this process then pins itself to --client-cpu.

1. Consistency (asyncpg, through `ReadYourWritesMiddleware` and httpx's ASGI transport): --users virtual clients,
   each with its own cookie jar, run --requests requests in turns. A request writes with probability --write-share:
   it inserts a note, commits, reads it back in the same session and in a new session; otherwise it reads the
   client's latest note and one random older note. A read of one's own write that misses it is *stale*. The same
   workload runs on a *recipe* router (SQLAlchemy's documented partitioning recipe: flushes and DML to the primary,
   everything else to a replica, no read-your-writes), which shows the stale reads the router prevents. A read-only
   phase (no writes at all) gives the share of reads replicas serve when nothing writes.
2. Overhead (sync psycopg): --pairs pairs of sessions, a plain `Session(bind=replica)` and a routed session (which
   picks that replica) timed back to back in alternating order; reported are the median µs of each and the median
   of the paired differences. Three cases: no query (session, routing decision, pool checkout), one ``SELECT 1``,
   and one INSERT + COMMIT against a plain session on the primary (the router adds one autocommit round trip after
   each write commit, to read the WAL position).

Run from the repository root (takes about a minute):

    PYTHONPATH=src:. .venv/bin/python -m benchmarks.replica_routing --server-cpu 0 --client-cpu 1
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import statistics
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import Session
from sqlalchemy.sql.dml import UpdateBase
from tests.db.replication import IN_RECOVERY, Note, NoteBase, url, wait_for_replay
from tests.services import ReplicaPair, postgres_replica_pair

from overdrive.db import ReadYourWritesMiddleware, ReplicaRouter

if TYPE_CHECKING:
    from collections.abc import Callable

    from sqlalchemy.engine import Engine

    from overdrive.types import ASGIApp, Receive, Scope, Send

RESULTS = Path(__file__).resolve().parent / "results"
SECRET = b"benchmark-secret-0123456789"
SEED_NOTES = 1000


# ---------------------------------------------------------------- the recipe, for comparison


class RecipeSession(Session):
    """Routing as in SQLAlchemy's partitioning recipe: writes to the leader, any other statement to a follower."""

    def __init__(self, bind: Any = None, *, leader: Engine, followers: list[Engine], **options: Any) -> None:  # noqa: ARG002
        super().__init__(bind=leader, **options)
        self.leader = leader
        self.followers = followers

    def get_bind(self, mapper: Any = None, *, clause: Any = None, **kw: Any) -> Engine:  # noqa: ARG002
        if clause is None or isinstance(clause, UpdateBase):
            return self.leader
        return random.choice(self.followers)


# ---------------------------------------------------------------- the app


def notes_app(sessions: async_sessionmaker[AsyncSession]) -> ASGIApp:
    """POST /write: store a note, read it back twice. GET /read/<own>/<other>: read two notes."""

    async def visible(session: AsyncSession, body: str) -> tuple[bool, bool]:
        row = (await session.execute(sa.select(sa.func.pg_is_in_recovery(), Note.id).where(Note.body == body))).first()
        if row is not None:
            return True, bool(row[0])
        return False, bool(await session.scalar(IN_RECOVERY))

    async def app(scope: Scope, receive: Receive, send: Send) -> None:  # noqa: ARG001
        parts = scope["path"].strip("/").split("/")
        reads: list[tuple[str, bool, bool]] = []
        if parts[0] == "write":
            body = uuid.uuid4().hex
            async with sessions() as session:
                session.add(Note(body=body))
                await session.commit()
                reads.append(("own", *await visible(session, body)))
            async with sessions() as session:
                reads.append(("own", *await visible(session, body)))
            payload: dict[str, Any] = {"written": body, "reads": reads}
        else:
            async with sessions() as session:
                if parts[1]:
                    reads.append(("own", *await visible(session, parts[1])))
                reads.append(("other", *await visible(session, parts[2])))
            payload = {"reads": reads}
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": json.dumps(payload).encode()})

    return app


@dataclass
class Tally:
    reads: Counter[str] = field(default_factory=Counter)

    def add(self, reads: list[list[Any]]) -> None:
        for kind, found, on_replica in reads:
            self.reads["reads"] += 1
            self.reads["replica"] += on_replica
            if kind == "own":
                self.reads["own"] += 1
                self.reads["own_replica"] += on_replica
                self.reads["stale"] += not found

    def summary(self) -> dict[str, Any]:
        total, own = self.reads["reads"], self.reads["own"]
        return {
            "reads": total,
            "replica_share": self.reads["replica"] / total if total else 0.0,
            "own_reads": own,
            "own_replica_share": self.reads["own_replica"] / own if own else 0.0,
            "stale": self.reads["stale"],
        }


async def run_workload(
    app: ASGIApp, old: list[str], args: argparse.Namespace, *, write_share: float, think: float
) -> Tally:
    tally = Tally()
    rng = random.Random(args.seed)
    per_user = args.requests // args.users

    async def user(index: int) -> None:
        latest = ""
        user_rng = random.Random(rng.random() + index)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
            for _ in range(per_user):
                if user_rng.random() < write_share:
                    answer = (await client.post("/write")).json()
                    latest = answer["written"]
                else:
                    answer = (await client.get(f"/read/{latest}/{user_rng.choice(old)}")).json()
                tally.add(answer["reads"])
                if think:
                    await asyncio.sleep(user_rng.expovariate(1 / think))

    await asyncio.gather(*(user(index) for index in range(args.users)))
    return tally


async def consistency(pair: ReplicaPair, args: argparse.Namespace) -> dict[str, Any]:
    primary = create_async_engine(url(pair.primary_url, "asyncpg"), pool_size=args.users)
    replica = create_async_engine(url(pair.replica_url, "asyncpg"), pool_size=args.users, pool_pre_ping=True)
    try:
        async with primary.begin() as conn:
            old = [uuid.uuid4().hex for _ in range(SEED_NOTES)]
            await conn.execute(sa.insert(Note), [{"body": body} for body in old])
        await asyncio.to_thread(wait_for_replay, pair)
        router = ReplicaRouter(primary=primary, replicas=[replica])
        await router.refresh_async()  # as an app's start-up would: until a first poll, reads go to the primary
        routed = ReadYourWritesMiddleware(notes_app(router.async_sessionmaker()), router=router, secret=SECRET)
        recipe_sessions = async_sessionmaker(
            sync_session_class=RecipeSession, leader=primary.sync_engine, followers=[replica.sync_engine]
        )
        recipe = notes_app(recipe_sessions)
        results: dict[str, Any] = {}
        think = args.think_ms / 1000
        for name, app, share, pause in [
            ("read-only, router", routed, 0.0, 0.0),
            ("mixed, router", routed, args.write_share, 0.0),
            ("mixed, recipe", recipe, args.write_share, 0.0),
            (f"mixed + {args.think_ms:g} ms think, router", routed, args.write_share, think),
            (f"mixed + {args.think_ms:g} ms think, recipe", recipe, args.write_share, think),
        ]:
            started = time.perf_counter()
            tally = await run_workload(app, old, args, write_share=share, think=pause)
            results[name] = tally.summary() | {"seconds": time.perf_counter() - started}
            print(f"{name:<34} {json.dumps(results[name])}", flush=True)
        return results
    finally:
        await primary.dispose()
        await replica.dispose()


# ---------------------------------------------------------------- overhead


def one_session_us(factory: Callable[[], Session], statement: Callable[[Session], object]) -> float:
    started = time.perf_counter_ns()
    with factory() as session:
        statement(session)
    return (time.perf_counter_ns() - started) / 1000


def paired(
    plain: tuple[Callable[[], Session], Callable[[Session], object]],
    routed: tuple[Callable[[], Session], Callable[[Session], object]],
    pairs: int,
) -> dict[str, float]:
    """Time ``pairs`` plain and routed sessions back to back, alternating which goes first."""
    for _ in range(50):  # warm pools and caches
        one_session_us(*plain)
        one_session_us(*routed)
    plain_us, routed_us, differences = [], [], []
    for index in range(pairs):
        if index % 2:
            b, a = one_session_us(*routed), one_session_us(*plain)
        else:
            a, b = one_session_us(*plain), one_session_us(*routed)
        plain_us.append(a)
        routed_us.append(b)
        differences.append(b - a)
    return {
        "plain_us": statistics.median(plain_us),
        "routed_us": statistics.median(routed_us),
        "paired_difference_us": statistics.median(differences),
        "ratio": statistics.median(routed_us) / statistics.median(plain_us),
    }


def overhead(pair: ReplicaPair, args: argparse.Namespace) -> dict[str, Any]:
    primary = sa.create_engine(url(pair.primary_url, "psycopg"))
    replica = sa.create_engine(url(pair.replica_url, "psycopg"))
    router = ReplicaRouter(primary=primary, replicas=[replica])
    router.refresh()
    routed = router.sessionmaker()
    statement = sa.select(sa.literal(1))

    def route(session: Session) -> object:
        # Session, routing decision and pool checkout, without a query (psycopg sends BEGIN with the first one).
        return session.connection(bind_arguments={"bind": session.get_bind(clause=statement)})

    def read(session: Session) -> object:
        return session.execute(statement).scalar_one()

    def write(session: Session) -> object:
        session.add(Note(body="overhead"))
        session.commit()
        return None

    cases = {
        "session + routing + checkout, no query": ((lambda: Session(replica), route), (routed, route)),
        "session with one SELECT 1 (replica)": ((lambda: Session(replica), read), (routed, read)),
        "session with one INSERT + COMMIT (primary)": ((lambda: Session(primary), write), (routed, write)),
    }
    results: dict[str, Any] = {}
    try:
        for name, (plain, routed_case) in cases.items():
            results[name] = paired(plain, routed_case, args.pairs)
            row = results[name]
            print(
                f"{name:<44} plain {row['plain_us']:8.1f} µs  routed {row['routed_us']:8.1f} µs  "
                f"paired difference {row['paired_difference_us']:+7.1f} µs  ratio {row['ratio']:.2f}",
                flush=True,
            )
        return results
    finally:
        primary.dispose()
        replica.dispose()


# ---------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--apply-delay", default="200ms", help="the replica's recovery_min_apply_delay")
    parser.add_argument("--users", type=int, default=16)
    parser.add_argument("--requests", type=int, default=3200)
    parser.add_argument("--write-share", type=float, default=0.2)
    parser.add_argument("--think-ms", type=float, default=250.0, help="mean pause between a user's requests")
    parser.add_argument("--pairs", type=int, default=5000, help="plain/routed session pairs per overhead case")
    parser.add_argument("--skip-consistency", action="store_true", help="measure the overhead only")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--server-cpu", type=int, default=None)
    parser.add_argument("--client-cpu", type=int, default=None)
    args = parser.parse_args()
    if args.server_cpu is not None:
        os.sched_setaffinity(0, {args.server_cpu})  # the servers inherit it, and so do their backends
    with postgres_replica_pair(replica_settings=(f"recovery_min_apply_delay={args.apply_delay}",)) as pair:
        if args.client_cpu is not None:
            os.sched_setaffinity(0, {args.client_cpu})
        engine = sa.create_engine(url(pair.primary_url, "psycopg"))
        NoteBase.metadata.create_all(engine)
        engine.dispose()
        wait_for_replay(pair)
        print(f"replica apply delay {args.apply_delay}; {args.users} users, {args.requests} requests", flush=True)
        results = {
            "consistency": None if args.skip_consistency else asyncio.run(consistency(pair, args)),
            "overhead": overhead(pair, args),
            "args": vars(args),
            "python": platform.python_version(),
            "sqlalchemy": sa.__version__,
        }
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"replica_routing-{stamp}.json"
    path.write_text(json.dumps(results, indent=2))
    print(f"results: {path}")


if __name__ == "__main__":
    main()
