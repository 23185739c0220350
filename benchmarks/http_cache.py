"""Throughput of `HTTPCacheMiddleware`: a cached 200 and a 304 against the uncached FastAPI handler.

The server is granian (one worker, uvloop) pinned to core 0; the load is `overdrive load` (one process,
closed model, 64 connections) pinned to core 1. Each round runs the three variants in a rotated order; reported
are median req/s over the rounds and the median of the per-round ratios to the uncached handler.

Handlers (FastAPI, `response_model` validation, `Cache-Control: max-age=60`):
- `/products`: a catalogue page, 50 products serialised through a pydantic model (no I/O);
- `/ping`: a constant 15-byte JSON body (the cheapest possible FastAPI handler: the cache's worst case).

Run from the repository root:

    PYTHONPATH=src:. /work/main/.venv/bin/python -m benchmarks.http_cache --rounds 3 --duration 10

Other tenants of a shared VM are measured, not assumed: for each run the CPU that neither the server nor the load
generator used on their cores ("foreign CPU", `benchmarks.servers.CPUMeter`) is printed next to its req/s.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from benchmarks.servers import CPUMeter
from fastapi import FastAPI, Response
from pydantic import BaseModel

from overdrive.cache import Cache, Freshness, HTTPCacheMiddleware, MemoryTier
from overdrive.loadtest.result import LoadResult

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


class Product(BaseModel):
    """One catalogue row."""

    id: int
    name: str
    price_cents: int
    tags: list[str]
    in_stock: bool


PRODUCTS = [
    {"id": i, "name": f"Product {i}", "price_cents": 100 + i, "tags": ["a", "b"], "in_stock": i % 3 != 0}
    for i in range(50)
]


def create_app() -> FastAPI:
    """The uncached shop endpoints."""
    app = FastAPI()

    @app.get("/products", response_model=list[Product])
    async def products(response: Response) -> list[dict[str, Any]]:
        response.headers["cache-control"] = "max-age=60"
        return PRODUCTS

    @app.get("/ping")
    async def ping(response: Response) -> dict[str, str]:
        response.headers["cache-control"] = "max-age=60"
        return {"status": "ok"}

    return app


def create_cached_app() -> HTTPCacheMiddleware:
    """The same endpoints behind the HTTP cache (memory tier)."""
    cache = Cache(MemoryTier(10_000), freshness=Freshness(ttl=60, jitter=0))
    return HTTPCacheMiddleware(create_app(), cache=cache)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def serve(factory: str, port: int) -> subprocess.Popen[bytes]:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT / "src"), str(ROOT)]))
    command = ["taskset", "-c", "0", str(BIN / "granian"), "--host", "127.0.0.1", "--port", str(port)]
    command += ["--workers", "1", "--loop", "uvloop", "--no-access-log", "--log-level", "warning"]
    command += ["--interface", "asgi", "--http", "1", "--no-ws", "--factory", f"benchmarks.http_cache:{factory}"]
    process = subprocess.Popen(command, env=env, cwd=ROOT, start_new_session=True)  # its own group, for CPUMeter
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=1):
                return process
        except OSError:
            time.sleep(0.1)
    process.kill()
    msg = "The server did not start."
    raise RuntimeError(msg)


def etag(port: int, path: str) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
        return str(response.headers["etag"])


def load(port: int, path: str, headers: list[str], duration: int) -> LoadResult:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "r.json"
        command = ["taskset", "-c", "1", str(BIN / "overdrive"), "load", f"http://127.0.0.1:{port}{path}"]
        command += ["-c", "64", "-d", f"{duration}s", "--procs", "1", "--quiet", "--json", str(out)]
        for header in headers:
            command += ["-H", header]
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
        result = LoadResult.from_json(out.read_bytes())
    if result.errors:
        msg = f"{result.errors} failed requests on {path}."
        raise RuntimeError(msg)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--paths", nargs="+", default=["/products", "/ping"])
    args = parser.parse_args()
    variants = ["uncached", "cached 200", "304"]
    for path in args.paths:
        rates: dict[str, list[float]] = {name: [] for name in variants}
        for round_ in range(args.rounds):
            order = variants[round_ % 3 :] + variants[: round_ % 3]
            for name in order:
                port = free_port()
                server = serve("create_app" if name == "uncached" else "create_cached_app", port)
                try:
                    headers = [f"If-None-Match: {etag(port, path)}"] if name == "304" else []
                    load(port, path, headers, 2)  # warm-up, not recorded
                    with CPUMeter(server.pid) as meter:
                        rate = load(port, path, headers, args.duration).rate
                finally:
                    server.terminate()
                    server.wait()
                rates[name].append(rate)
                foreign = f"foreign CPU core0 {meter.foreign_server_core:.0%} core1 {meter.foreign_loadgen_core:.0%}"
                print(f"{path} round {round_ + 1} {name}: {rate:,.0f} req/s  {foreign}", flush=True)
        base = rates["uncached"]
        print(f"\n{path}: median req/s, and median (min-max) per-round ratio to uncached")
        for name in variants:
            ratios = [rate / b for rate, b in zip(rates[name], base, strict=True)]
            median = statistics.median(rates[name])
            spread = f"{statistics.median(ratios):.2f}x ({min(ratios):.2f}-{max(ratios):.2f})"
            print(f"  {name:<11} {median:>9,.0f}  {spread}")


if __name__ == "__main__":
    main()
