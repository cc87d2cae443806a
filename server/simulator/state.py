"""The simulator's mutable state, shared by the HTTP handlers and the ``Simulator`` facade."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Iterable
from typing import Any

from server.simulator.behavior import STREAM_ONLY_FAULTS, Behavior, Fault, Spec
from server.simulator.formats import WireFormat, wire_formats
from server.simulator.log import RecordedRequest, RequestLog


class SimState:
    """Behaviour, fault bookkeeping, the request log and the in-flight handler tasks."""

    def __init__(
        self,
        behavior: Behavior,
        *,
        api_key: str | None,
        known_models: Iterable[str] | None,
        seed: int | None,
    ) -> None:
        self._behavior = behavior
        self.api_key = api_key
        self.known_models = frozenset(known_models) if known_models is not None else None
        # Serving any model name, the simulator lists the ones it has served (GET /models).
        self.served_models: set[str] = set()
        self.log = RequestLog()
        self.rng = random.Random(seed)
        self.formats: dict[Spec, WireFormat] = wire_formats()
        self.faults_enabled = True
        self.fault_count = 0
        self.closing = False
        self.tasks: set[asyncio.Task[Any]] = set()

    @property
    def behavior(self) -> Behavior:
        return self._behavior

    @behavior.setter
    def behavior(self, value: Behavior) -> None:
        """A new behaviour restarts the ``fault_times`` count."""
        self._behavior = value
        self.fault_count = 0

    def take_fault(self, streaming: bool) -> Fault | None:
        """The fault for the next chat request, counting it against ``fault_times``.

        Stream-shaped faults skip non-streaming requests without being counted.
        """
        behavior = self._behavior
        fault = behavior.fault
        if fault is None or not self.faults_enabled:
            return None
        if behavior.fault_times is not None and self.fault_count >= behavior.fault_times:
            return None
        if behavior.fault_until is not None and time.monotonic() >= behavior.fault_until:
            return None
        if not streaming and fault.kind in STREAM_ONLY_FAULTS:
            return None
        self.fault_count += 1
        return fault

    def completed(self, record: RecordedRequest) -> None:
        if not record.ended:
            record.completed_at = time.monotonic()
            self.log.notify()

    def disconnected(self, record: RecordedRequest) -> None:
        if not record.ended and not self.closing:
            record.disconnected_at = time.monotonic()
            self.log.notify()
