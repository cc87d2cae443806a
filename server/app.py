"""The composition root: builds the object graph from settings and runs the gRPC server.

Nothing else constructs long-lived objects. Reading this file shows every part of the service
and how they connect: store -> vault -> registry and sessions -> router and upstream client
-> turn engine -> turn runner (metrics and tracing observers) -> gRPC servicers behind the
metrics and edge interceptors, the HTTP port (OpenAI-compatible front door), the metrics port, plus
health, reflection and the background loops (session sweeper, probes).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import json
import random
import signal
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import grpc
import structlog
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1._async import HealthServicer
from switchboard.v1 import (
    conversations_pb2,
    conversations_pb2_grpc,
    registry_pb2,
    registry_pb2_grpc,
)

from server.accounts import StoreAuthenticator
from server.clock import Clock, SystemClock
from server.config import AUTO_PORT, ConfigError, Settings
from server.connect import ConnectRoutes
from server.edge.conversations_servicer import ConversationsServicer, MessageLimits
from server.edge.health import fill_health
from server.edge.interceptor import EdgeInterceptor
from server.edge.reflection import add_reflection
from server.edge.registry_servicer import RegistryServicer
from server.edge.routing_state import routing_reader
from server.edge.validator import ConformanceValidator
from server.http.app import FrontDoor, FrontDoorConfig
from server.http.lab import LabPages
from server.listening import bind_error, cannot_listen, os_reason
from server.memory import MemoryTrimmer
from server.netguard import GuardedResolver, NetPolicy, check_base_url, resolve_with
from server.providers.transport import UpstreamClient
from server.registry.codec import sealed_secrets
from server.registry.llm import Llm
from server.registry.service import RegistryService
from server.routing.config import RouterConfig
from server.routing.router import Router
from server.sessions import SessionService
from server.store.base import Store
from server.store.open import open_store
from server.telemetry.attempt_log import AttemptLog
from server.telemetry.grpc_metrics import GrpcMetricsInterceptor
from server.telemetry.metrics import Metrics
from server.telemetry.scrape import MetricsListener
from server.timeouts import Timeouts
from server.turns.engine import TurnEngine
from server.turns.observer import fan_out
from server.turns.probe_runner import ProbeRunner
from server.turns.runner import TurnRunner
from server.validation import Validation
from server.vault.checks import verify_key_material
from server.vault.keys import KeyringError
from server.vault.redact import KnownSecrets
from server.vault.sealer import VaultSealer
from server.vault.source import open_key_source

if TYPE_CHECKING:
    from aiohttp.abc import AbstractResolver
    from opentelemetry.sdk.trace.export import SpanExporter

    from server.telemetry.tracing import Tracing

log = structlog.get_logger("switchboard.app")

SERVICES = (
    registry_pb2.DESCRIPTOR.services_by_name["LlmRegistry"].full_name,
    conversations_pb2.DESCRIPTOR.services_by_name["Conversations"].full_name,
)
# Their RPCs are wrapped by the EdgeInterceptor, which also reports them to the gRPC metrics.
EDGE_PREFIXES = tuple(f"/{name}/" for name in SERVICES)


@dataclass
class Switchboard:
    """One running server. ``await start()``, then ``await stop()``."""

    settings: Settings
    known_secrets: KnownSecrets = field(default_factory=KnownSecrets)
    clock: Clock = field(default_factory=SystemClock)  # routing decisions; tests use FakeClock
    # (also the auth cache TTL and the key-file re-check interval)
    upstream_resolver: AbstractResolver | None = None  # tests: fake DNS for upstream hosts
    port: int = 0
    store: Store | None = None
    router: Router | None = None
    registry: RegistryService | None = None
    sessions: SessionService | None = None
    interceptor: EdgeInterceptor | None = None
    _server: grpc.aio.Server | None = None
    _health: HealthServicer | None = None
    _client: UpstreamClient | None = None
    probes: ProbeRunner | None = None
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)
    # Observability: this server's own Prometheus registry (served on /metrics of the metrics
    # port, never a tenant port), tracing.
    metrics: Metrics = field(default_factory=Metrics)
    span_exporter: SpanExporter | None = None  # tests: spans go here (tracing on without OTLP)
    turns: TurnRunner | None = None
    _tracing: Tracing | None = None
    # The HTTP port; tests hand in a socket bound to port 0 (``http_sock``).
    http_sock: socket.socket | None = None
    http_port: int = 0
    _front_door: FrontDoor | None = None
    # The metrics listener; tests hand in a socket bound to port 0 (``metrics_sock``).
    metrics_sock: socket.socket | None = None
    metrics_port: int = 0
    _metrics_listener: MetricsListener | None = None

    async def start(self) -> None:
        s = self.settings
        try:
            keys = open_key_source(master_keys=s.master_keys, key_file=s.master_key_file,
                                   primary_key_id=s.primary_key_id, clock=self.clock)
            policy = NetPolicy.parse(allow_http=s.allow_http_upstreams,
                                     allow_hosts=s.upstream_allow_hosts,
                                     allow_cidrs=s.upstream_allow_cidrs)
        except (KeyringError, ValueError) as exc:
            raise ConfigError(str(exc)) from None
        self.store = store = await open_store(s.database)
        sealer = VaultSealer(keys, self.known_secrets)
        await self._check_key_ids(sealer)
        clock = self.clock
        self.router = router = Router(clock, random.Random(), RouterConfig(
            max_attempts=s.max_attempts))

        resolve = resolve_with(self.upstream_resolver) if self.upstream_resolver else None

        async def guard(url: str, path: str) -> None:
            await check_base_url(url, policy, resolve, field=path)

        def forget_endpoints(llm: Llm) -> None:
            for endpoint in llm.endpoints:
                router.forget(endpoint.id)
                self.metrics.forget(endpoint.id)

        # A changed key, URL, model or spec is a new upstream: its breaker and latency start
        # afresh on every replica (each learns the change from its own registry reads).
        self.registry = registry = RegistryService(store, sealer, url_guard=guard,
                                                   on_delete=forget_endpoints,
                                                   on_endpoint_change=router.forget,
                                                   clock=clock)
        await registry.seal_legacy_headers()
        self.probes = probes = ProbeRunner(router, clock, probes_per_hour=s.probes_per_hour)
        self.sessions = sessions = SessionService(store, registry, s.default_idle_ttl_s,
                                                  on_active=probes.touch,
                                                  on_end=probes.session_ended)
        await sessions.holds.start()  # barge-in interrupts and freed sessions, across replicas
        # Every upstream connection (turns, probes, validation) is checked against the policy.
        guarded = GuardedResolver(policy, self.upstream_resolver)
        pool = 2 * s.max_concurrent_streams  # a streaming turn holds a connection (a hedge: 2)
        self._client = client = UpstreamClient(
            max_event_bytes=s.max_upstream_event_bytes, limit=pool, limit_per_host=pool,
            resolver=guarded)
        timeouts = Timeouts(s.connect_timeout_s, s.first_token_timeout_s,
                            s.between_chunks_timeout_s, s.turn_timeout_s)
        engine = TurnEngine(router, client, timeouts)
        probes.bind(registry, client, timeouts)
        if s.otlp_endpoint or self.span_exporter is not None:
            from server.telemetry.tracing import Tracing  # only imported when tracing is on

            self._tracing = Tracing.build(s.otlp_endpoint, self.span_exporter)
        self.turns = turns = TurnRunner(
            engine, max_concurrent=s.max_concurrent_streams,
            max_output_tokens=s.max_output_tokens, max_turn_s=s.turn_timeout_s,
            observer=fan_out(self.metrics.observer(), self._tracing, AttemptLog(), probes))
        self.metrics.routing(circuit_state=lambda e: router.snapshot(e).state.value,
                             probes_sent=lambda: probes.sent,
                             turns_in_flight=lambda: turns.in_flight)

        auth = StoreAuthenticator(store, s.api_keys, clock=clock)
        grpc_metrics = GrpcMetricsInterceptor(self.metrics, timed_by_edge=EDGE_PREFIXES)
        self.interceptor = EdgeInterceptor(auth, timer=grpc_metrics,
                                           max_metadata_bytes=s.max_metadata_bytes)
        pending = max(10 * s.max_concurrent_streams, 20_000)
        server = grpc.aio.server(
            interceptors=[grpc_metrics, self.interceptor],
            options=[("grpc.max_receive_message_length", s.max_request_bytes),
                     ("grpc.so_reuseport", 0),
                     # Announced to callers; a caller that never acknowledges SETTINGS is not
                     # held to them, so the interceptor also refuses oversized metadata.
                     ("grpc.max_metadata_size", s.max_metadata_bytes),
                     ("grpc.absolute_max_metadata_size", 2 * s.max_metadata_bytes),
                     # Calls arrived but not yet taken up by the server: past grpc's default
                     # (1,000: some cancelled at random; 3,000: all) a burst beyond
                     # max_concurrent_streams got a bare CANCELLED instead of our
                     # RESOURCE_EXHAUSTED with RetryInfo (tests/security/test_overload.py).
                     ("grpc.server.max_pending_requests", pending),
                     ("grpc.server.max_pending_requests_hard_limit", pending)],
        )
        health = fill_health(router)
        registry_servicer = RegistryServicer(registry, ConformanceValidator(
            registry, router, Validation(resolver=guarded)), health,
            routing_reader(router, health))
        conversations_servicer = ConversationsServicer(registry, sessions, turns, MessageLimits(
            s.max_message_bytes, s.max_messages))
        registry_pb2_grpc.add_LlmRegistryServicer_to_server(registry_servicer, server)
        conversations_pb2_grpc.add_ConversationsServicer_to_server(conversations_servicer,
                                                                   server)
        self._health = HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(self._health, server)
        add_reflection(server, (*SERVICES,
                                health_pb2.DESCRIPTOR.services_by_name["Health"].full_name))
        address = f"{s.host}:{s.grpc_port}"
        if s.tls_cert_file:
            key = await asyncio.to_thread(Path(s.tls_key_file).read_bytes)
            cert = await asyncio.to_thread(Path(s.tls_cert_file).read_bytes)
            creds = grpc.ssl_server_credentials([(key, cert)])
        why = bind_error(s.host, s.grpc_port)
        if why is not None:
            raise cannot_listen(address, "SWITCHBOARD_GRPC_PORT", why)
        try:
            self.port = (server.add_secure_port(address, creds) if s.tls_cert_file
                         else server.add_insecure_port(address))
        except RuntimeError:  # grpc says only "Failed to bind to address"
            raise cannot_listen(address, "SWITCHBOARD_GRPC_PORT",
                                 "the address cannot be bound") from None
        await server.start()
        self._server = server
        for name in ("", *SERVICES):
            await self._health.set(name, health_pb2.HealthCheckResponse.SERVING)
        if s.http_port or self.http_sock is not None:
            # The same servicers and interceptor over Connect, for browsers (the Lab).
            connect = ConnectRoutes(self.interceptor, {
                registry_pb2.DESCRIPTOR.services_by_name["LlmRegistry"]: registry_servicer,
                conversations_pb2.DESCRIPTOR.services_by_name["Conversations"]:
                    conversations_servicer,
            })
            self._front_door = FrontDoor(auth, registry, turns, FrontDoorConfig(
                s.max_request_bytes, s.max_messages, s.max_message_bytes, s.tls_cert_file,
                s.tls_key_file, header_timeout_s=s.http_header_timeout_s), self.metrics,
                surfaces=(connect, LabPages()))
            try:
                self.http_port = await self._front_door.start(s.host, _listen_port(s.http_port),
                                                              self.http_sock)
            except OSError as exc:
                await server.stop(0)
                raise cannot_listen(f"{s.host}:{_listen_port(s.http_port)}",
                                     "SWITCHBOARD_HTTP_PORT",
                                     os_reason(exc), any_port="auto") from None
        if s.metrics_port or self.metrics_sock is not None:
            self._metrics_listener = MetricsListener(self.metrics)
            try:
                self.metrics_port = await self._metrics_listener.start(
                    s.metrics_host or s.host, _listen_port(s.metrics_port), self.metrics_sock)
            except OSError as exc:
                await server.stop(0)
                raise cannot_listen(f"{s.metrics_host or s.host}:{_listen_port(s.metrics_port)}",
                                     "SWITCHBOARD_METRICS_PORT", os_reason(exc),
                                     any_port="auto") from None
        self._tasks.append(asyncio.create_task(self._sweep_sessions(), name="session-sweeper"))
        self._tasks.append(asyncio.create_task(probes.run(), name="probes"))
        interceptor = self.interceptor
        self._tasks.append(asyncio.create_task(
            MemoryTrimmer(lambda: interceptor.refused_oversized).run(), name="memory-trimmer"))
        log.info("serving", address=f"{s.host}:{self.port}", tls=bool(s.tls_cert_file),
                 http_port=self.http_port or None, metrics_port=self.metrics_port or None,
                 tracing=self._tracing is not None,
                 database=s.database.split("@")[-1])

    async def pause_background(self) -> None:
        """Stops the session sweeper and the probe loop (tests drive probes by hand)."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()

    async def _check_key_ids(self, sealer: VaultSealer) -> None:
        """Fails startup when a stored secret names a master key that is not loaded, or when a
        loaded key's material is not the one that sealed the stored secrets."""
        assert self.store is not None
        loaded = set(sealer.keyring.key_ids)
        samples: dict[str, Callable[[], bool]] = {}
        for record in await self.store.all_llms():
            for e in record.body.get("endpoints", ()):
                for name, sealed in sealed_secrets(e):
                    key_id = sealer.key_id_of(sealed)
                    if key_id not in loaded:
                        raise ConfigError(
                            f"LLM {record.id} endpoint {e['id']} {name} is sealed with master "
                            f"key {key_id!r}, which is not loaded (loaded: "
                            f"{', '.join(sorted(loaded))}); add that key to "
                            "SWITCHBOARD_MASTER_KEYS or the key file")
                    samples.setdefault(key_id, functools.partial(
                        sealer.unwraps, sealed, record.account_id, record.id, e["id"], name))
        try:
            await verify_key_material(self.store, sealer.keyring,
                                      self.settings.database.split("@")[-1], samples)
        except KeyringError as exc:
            raise ConfigError(str(exc)) from None

    async def _sweep_sessions(self) -> None:
        assert self.sessions is not None
        while True:
            await asyncio.sleep(60)
            try:
                await self.sessions.sweep()
            except Exception:
                log.exception("session sweep failed")

    async def _drain_grpc(self, grace: float) -> None:
        """Keeps listening while turns are in flight, so that health answers NOT_SERVING and
        new calls get UNAVAILABLE/DRAINING (grpc's own stop refuses connections, and new calls
        on open ones, without either); then stops, cutting what is left when grace ends."""
        assert self._server is not None
        loop = asyncio.get_running_loop()
        end = loop.time() + grace
        if self.turns is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.turns.idle(), grace)
        await self._server.stop(max(0.0, end - loop.time()))

    async def stop(self, grace_s: float | None = None) -> None:
        """Drains: NOT_SERVING, refuse new calls, let in-flight streams finish, then close."""
        grace = self.settings.grace_period_s if grace_s is None else grace_s
        if self.interceptor is not None:
            self.interceptor.draining = True
        if self._front_door is not None:
            self._front_door.draining = True
        if self._health is not None:
            await self._health.enter_graceful_shutdown()
        drains = [self._drain_grpc(grace)] if self._server is not None else []
        if self._front_door is not None:
            drains.append(self._front_door.stop(grace))
        await asyncio.gather(*drains)
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._metrics_listener is not None:
            await self._metrics_listener.stop()
        if self._client is not None:
            await self._client.close()
        if self.store is not None:
            await self.store.close()
        if self._tracing is not None:
            await self._tracing.shutdown()
        log.info("stopped")


def _listen_port(setting: int) -> int:
    """The port to bind for an HTTP or metrics port setting: ``AUTO_PORT`` binds port 0."""
    return 0 if setting == AUTO_PORT else setting


async def serve(settings: Settings, known_secrets: KnownSecrets | None = None,
                json_lines: bool = False) -> int:
    """Runs until SIGTERM or SIGINT, then drains within the grace period; returns 0.

    ``known_secrets``: the instance the log redactor masks (``server.main`` shares it)."""
    app = Switchboard(settings, known_secrets=known_secrets or KnownSecrets())
    await app.start()
    # What startup built (modules, descriptors, the object graph) lives as long as the process:
    # keep it out of the cyclic collector, whose full passes then stay short (tests/bench).
    gc.collect()
    gc.freeze()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    # Scripts wait for the banner and read every bound port from it (``auto`` ports included).
    also = {name: port for name, port in (("http_port", app.http_port),
                                          ("metrics_port", app.metrics_port)) if port}
    banner = f"SWITCHBOARD listening on {settings.host}:{app.port}"
    if also:
        banner += " (" + ", ".join(f"{name.removesuffix('_port')} {port}"
                                   for name, port in also.items()) + ")"
    if json_lines:  # one format per output: the banner too is a JSON line among the logs
        banner = json.dumps({"event": banner, "address": f"{settings.host}:{app.port}",
                             **also, "level": "info"})
    print(banner, flush=True)
    await stop.wait()
    log.info("draining", grace_s=settings.grace_period_s)
    await app.stop()
    return 0
