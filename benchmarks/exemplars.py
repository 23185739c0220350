"""What exemplars add to a request through ObservabilityMiddleware, in CPU µs of the loop's thread.

In-process, no server and no sockets: a minimal ASGI app answering 5 bytes is called directly. Stacks, each with
exemplars off and on (``exemplars=sampled_trace_id``):

- the middleware alone (tracing off: the getter finds no span and returns None);
- inside `traced` with a 0.0 ratio (a span per request, never sampled: the getter returns None);
- inside `traced` with a 1.0 ratio (every request sampled: the getter returns an id and an exemplar is recorded).

Rounds are interleaved (order reversed every other round) and the report gives medians over them, and the on/off
ratio of each pair per round. A second table times the two pieces alone (the getter, `RequestMetrics.exemplar`),
medians over the same rounds. Run from the repository root:

    taskset -c 1 python benchmarks/exemplars.py --rounds 7
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
import timeit
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.access_log import SCOPE, _app, _receive, _send

from overdrive.observability import ObservabilityMiddleware, RequestMetrics
from overdrive.observability.tracing import sampled_trace_id, traced, tracer_provider


async def _serve(app: Any, requests: int) -> float:
    """Loop-thread CPU µs per request."""
    start = time.thread_time()
    for _ in range(requests):
        await app(dict(SCOPE), _receive, _send)
    return (time.thread_time() - start) / requests * 1e6


def _stacks() -> dict[str, Any]:
    def middleware(*, exemplars: bool) -> ObservabilityMiddleware:
        getter = sampled_trace_id if exemplars else None
        return ObservabilityMiddleware(_app, metrics=RequestMetrics(), exemplars=getter)

    never, always = (tracer_provider(service_name="bench", sample_ratio=ratio) for ratio in (0.0, 1.0))
    return {
        "middleware, exemplars off": middleware(exemplars=False),
        "middleware, exemplars on": middleware(exemplars=True),
        "traced 0.0 + middleware, exemplars off": traced(middleware(exemplars=False), never),
        "traced 0.0 + middleware, exemplars on": traced(middleware(exemplars=True), never),
        "traced 1.0 + middleware, exemplars off": traced(middleware(exemplars=False), always),
        "traced 1.0 + middleware, exemplars on": traced(middleware(exemplars=True), always),
    }


def main() -> None:
    """Interleave the stacks for the given rounds and print medians and on/off ratios."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--requests", type=int, default=20_000, help="per stack and round")
    args = parser.parse_args()
    stacks = _stacks()
    results: dict[str, list[float]] = {name: [] for name in stacks}
    for round_index in range(args.rounds):
        order = list(stacks) if round_index % 2 == 0 else list(reversed(stacks))
        for name in order:
            results[name].append(asyncio.run(_serve(stacks[name], args.requests)))
    print("| stack | loop-thread CPU µs/request (median) | on/off (median of per-round ratios, min-max) |")
    print("|---|---:|---|")
    for name, runs in results.items():
        ratio = ""
        if name.endswith("on"):
            off = results[name.removesuffix("on") + "off"]
            ratios = [on / base for on, base in zip(runs, off, strict=True)]
            ratio = f"{statistics.median(ratios):.3f}x ({min(ratios):.3f}-{max(ratios):.3f})"
        print(f"| {name} | {statistics.median(runs):.2f} | {ratio} |")
    print()
    print("| call | µs (median) |")
    print("|---|---:|")
    for name, runs in _pieces(args.rounds).items():
        print(f"| {name} | {statistics.median(runs):.3f} |")


def _pieces(rounds: int, calls: int = 200_000) -> dict[str, list[float]]:
    """The getter without a span, in an unsampled and in a sampled span; `exemplar` on an existing series."""
    metrics = RequestMetrics()
    metrics.started("GET")
    metrics.finished("GET", "/items/{id}", 200, 0.004)
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    never, always = (tracer_provider(service_name="bench", sample_ratio=r).get_tracer("b") for r in (0.0, 1.0))
    results: dict[str, list[float]] = {}
    for _ in range(rounds):
        results.setdefault("sampled_trace_id(), no span", []).append(_per_call(sampled_trace_id, calls))
        with never.start_as_current_span("unsampled"):
            results.setdefault("sampled_trace_id(), unsampled span", []).append(_per_call(sampled_trace_id, calls))
        with always.start_as_current_span("sampled"):
            results.setdefault("sampled_trace_id(), sampled span", []).append(_per_call(sampled_trace_id, calls))
        record = lambda: metrics.exemplar("GET", "/items/{id}", 200, 0.004, trace_id)  # noqa: E731
        results.setdefault("RequestMetrics.exemplar(...)", []).append(_per_call(record, calls))
    return results


def _per_call(function: Any, calls: int) -> float:
    return timeit.timeit(function, number=calls) / calls * 1e6


if __name__ == "__main__":
    main()
