"""``GetRoutingState``: the router's live view of an LLM's endpoints, as protos.

The router and its journal keep monotonic readings; here they become wall-clock timestamps
(now minus their age), so grpcurl and the Lab show real times.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from google.protobuf.timestamp_pb2 import Timestamp
from switchboard.v1 import llm_pb2 as lpb
from switchboard.v1 import registry_pb2 as rpb

from server.registry.llm import Llm
from server.routing.router import Router

RoutingReader = Callable[[Llm], rpb.GetRoutingStateResponse]


def _at(wall_now: float, age_s: float) -> Timestamp:
    stamp = Timestamp()
    stamp.FromNanoseconds(int((wall_now - age_s) * 1e9))  # a negative age: the future
    return stamp


def routing_reader(router: Router, fill_health: Callable[[str, lpb.Endpoint], None],
                   wall: Callable[[], float] = time.time) -> RoutingReader:
    def read(llm: Llm) -> rpb.GetRoutingStateResponse:
        now = wall()
        plan = router.preview(llm)
        ranks = {c.endpoint_id: i + 1 for i, c in enumerate(plan.candidates)}
        skipped = dict(plan.skipped)
        out = rpb.GetRoutingStateResponse(llm_id=llm.id, read_time=_at(now, 0.0))
        ordered = sorted(llm.endpoints, key=lambda e: ranks.get(e.id, len(ranks) + 1))
        for endpoint in ordered:
            holder = lpb.Endpoint()
            fill_health(endpoint.id, holder)
            state = out.endpoints.add(
                endpoint_id=endpoint.id, label=endpoint.label, model=endpoint.model,
                rank=ranks.get(endpoint.id, 0),
                skip_reason=str(skipped[endpoint.id]) if endpoint.id in skipped else "")
            state.health.CopyFrom(holder.health)
            wait = holder.health.cooldown_remaining_seconds
            if wait > 0:
                state.reopen_time.CopyFrom(_at(now, -wait))
            view = router.journal(endpoint.id)
            for sample in view.ttfts:
                state.recent_ttfts.add(time=_at(now, sample.age_s), ttft_ms=sample.ttft_ms,
                                       probe=sample.probe)
            for probe in view.probes:
                state.recent_probes.add(time=_at(now, probe.age_s), ok=probe.ok,
                                        ttft_ms=probe.ttft_ms or 0.0, error=probe.error)
            for f in view.failovers:
                state.recent_failovers.add(time=_at(now, f.age_s),
                                           from_endpoint_id=f.from_endpoint_id,
                                           to_endpoint_id=f.to_endpoint_id, cause=f.cause)
        return out

    return read
