"""Issue 19: a failed validation's error details stay well under gRPC's metadata limit.

``grpc-status-details-bin`` travels as trailing metadata (default soft limit 8 KiB for all
headers together). The full report of an LLM with several broken endpoints was about 8 KB and
intermittently reached the client as RESOURCE_EXHAUSTED "received metadata size exceeds soft
limit". The details now hold only the failing checks; ValidateLlm has the full report.
"""

from __future__ import annotations

import contextlib

import grpc
import pytest
from grpc_status import rpc_status
from switchboard.v1 import llm_pb2 as lpb
from switchboard.v1 import registry_pb2 as rpb
from switchboard_client import AsyncClient

from server.simulator import Behavior, Fault, FaultKind, Simulator
from tests.support import endpoint

BROKEN_ENDPOINTS = 6


async def test_the_details_of_many_failing_checks_stay_under_4_kb(client: AsyncClient) -> None:
    async with contextlib.AsyncExitStack() as stack:
        sims = [await stack.enter_async_context(
            Simulator("openai", Behavior(fault=Fault(FaultKind.GARBAGE))))
            for _ in range(BROKEN_ENDPOINTS)]
        llm = lpb.Llm(display_name="broken", endpoints=[
            endpoint(s, "openai", model=f"model-{i}-" + "x" * 40) for i, s in enumerate(sims)])
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await client.create_llm(llm)
        full = [e async for e in client.validate_llm(llm=llm)][-1].report
    err = caught.value
    assert err.code() is grpc.StatusCode.FAILED_PRECONDITION, err.details()
    trailing = dict(err.trailing_metadata() or ())
    details_bin = trailing["grpc-status-details-bin"]
    assert isinstance(details_bin, bytes) and len(details_bin) < 4096, len(details_bin)
    status = rpc_status.from_call(err)
    assert status is not None
    reports = [d for d in status.details if d.Is(rpb.ValidationReport.DESCRIPTOR)]
    report = rpb.ValidationReport()
    reports[0].Unpack(report)
    failing = {c.check for r in report.endpoints for c in r.checks}
    assert failing and all(c.status == rpb.CHECK_STATUS_FAIL and c.hint
                           for r in report.endpoints for c in r.checks)
    # The full report (ValidateLlm) is what did not fit: every check of every endpoint.
    assert full.ByteSize() > 4096 and len(full.endpoints) == BROKEN_ENDPOINTS
    assert failing <= {c.check for r in full.endpoints for c in r.checks
                       if c.status == rpb.CHECK_STATUS_FAIL}
