"""The demo's default driver: `overdrive load` (closed model), fed the shop workload as a scenario."""

from __future__ import annotations

from typing import TYPE_CHECKING

from overdrive.demo.results import EndpointResult, LatencySummary, ProfileResult
from overdrive.demo.workload import Request, RequestSpec, ShopWorkload
from overdrive.loadtest.runner import LoadOptions, Progress, run_load
from overdrive.loadtest.scenario import RequestTemplate, Scenario

if TYPE_CHECKING:
    import random
    from collections.abc import Callable

    from overdrive.demo.driver import DriveProgress, DriveSpec
    from overdrive.loadtest.result import LatencyStats, LoadResult

__all__ = ["LoadDriver", "shop_scenario", "to_profile_result"]

_JSON = {"Content-Type": "application/json"}


def shop_scenario(base_url: str, workload: ShopWorkload) -> Scenario:
    """The shop mix as a load scenario: one template per route, values drawn by the workload itself."""
    templates = []
    for spec in workload.mix:

        def draw(rng: random.Random, spec: RequestSpec = spec) -> Request:
            return workload.draw(spec, rng)

        if spec.method == "POST":
            body = {"body": lambda rng, draw=draw: (draw(rng).body or b"").decode()}
            post = {"method": "POST", "headers": _JSON, "body": "{body}", "values": body}
            templates.append(RequestTemplate(spec.route, name=spec.name, weight=spec.weight, **post))  # type: ignore[arg-type]
        else:
            rest = {"rest": lambda rng, draw=draw: draw(rng).path[1:]}
            templates.append(RequestTemplate("/{rest}", name=spec.name, weight=spec.weight, values=rest))
    return Scenario(base_url, templates)


def _summary(stats: LatencyStats) -> LatencySummary:
    p = stats.percentiles
    return LatencySummary(
        count=stats.count,
        mean=stats.mean,
        p50=p["p50"],
        p90=p["p90"],
        p95=p["p95"],
        p99=p["p99"],
        p999=p["p99.9"],
        max=stats.max,
    )


def to_profile_result(result: LoadResult) -> ProfileResult:
    """Translate a load result into the demo's per-profile figures."""
    elapsed = result.elapsed_s or 1.0
    endpoints = [
        EndpointResult(
            name=item.name,
            requests=item.requests,
            errors=item.errors,
            throughput=item.requests / elapsed,
            latency=_summary(item.latency),
            statuses=item.statuses,
        )
        for item in result.names
        if item.requests
    ]
    return ProfileResult(
        profile="",
        duration_s=result.elapsed_s,
        requests=result.attempted,
        errors=result.errors,
        throughput=result.rate,
        latency=_summary(result.latency),
        queries_per_request=None,
        endpoints=endpoints,
        timeline=[(float(p.second), float(p.requests), p.p95) for p in result.timeline],
    )


class LoadDriver:
    """Drives the shop with `overdrive load`: closed model, one worker process on the driver's cores."""

    name = "overdrive load (closed model)"

    def run(self, spec: DriveSpec, on_progress: Callable[[DriveProgress], None] | None = None) -> ProfileResult:
        """Run one measured drive and translate its result."""
        from overdrive.demo.driver import DriveProgress  # noqa: PLC0415 - avoids an import cycle

        scenario = shop_scenario(spec.base_url, ShopWorkload(spec.plan, seed=spec.seed))
        options = LoadOptions(
            connections=spec.concurrency,
            duration_s=spec.duration_s,
            procs=1,
            timeout_s=spec.timeout_s,
            cpus=spec.cpus,
        )

        def relay(p: Progress) -> None:
            if on_progress is not None:
                done = DriveProgress(
                    elapsed_s=p.elapsed_s, duration_s=p.duration_s, requests=p.completed, errors=p.errors
                )
                on_progress(done)

        return to_profile_result(run_load(scenario, options, on_progress=relay))
