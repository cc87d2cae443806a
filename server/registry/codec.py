"""Llm <-> store record body. Secrets are sealed on the way in and opened on the way out.

An endpoint's secrets are its ``api_key`` and the values of its secret extra headers
(``{"name", "secret": true, "value": <sealed>, "hint"}``, bound to the vault field
``header:<lower-case name>``). A header stored before secret headers existed has no ``secret``
key; ``legacy_headers_sealed`` seals those whose name says they carry a credential.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any, Protocol

from server.chat import Generation, ReasoningEffort
from server.registry.endpoint_capabilities import Capabilities
from server.registry.llm import ApiSpec, Endpoint, HeaderValue, Llm, RoutingPolicy, header_field
from server.secret import Secret
from server.store.base import LlmRecord


class Sealer(Protocol):
    """Encrypts a secret bound to its record; see ``server.vault``."""

    def seal(self, plaintext: Secret, account_id: str, llm_id: str, endpoint_id: str,
             field: str) -> str: ...

    def open(self, sealed: str, account_id: str, llm_id: str, endpoint_id: str,
             field: str) -> Secret: ...

    def lazy(self, sealed: str, account_id: str, llm_id: str, endpoint_id: str, field: str,
             hint: str) -> Secret: ...


def generation_to_dict(g: Generation) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if g.temperature is not None:
        out["temperature"] = g.temperature
    if g.top_p is not None:
        out["top_p"] = g.top_p
    if g.max_output_tokens is not None:
        out["max_output_tokens"] = g.max_output_tokens
    if g.stop:
        out["stop"] = list(g.stop)
    if g.seed is not None:
        out["seed"] = g.seed
    if g.reasoning_effort is not None:
        out["reasoning_effort"] = g.reasoning_effort.value
    return out


def generation_from_dict(d: dict[str, Any]) -> Generation:
    effort = d.get("reasoning_effort")
    return Generation(
        temperature=d.get("temperature"),
        top_p=d.get("top_p"),
        max_output_tokens=d.get("max_output_tokens"),
        stop=tuple(d.get("stop", ())),
        seed=d.get("seed"),
        reasoning_effort=ReasoningEffort(effort) if effort else None,
    )


# Header names that carry credentials: a legacy (pre-``secret``) header so named is sealed.
_CREDENTIAL_NAME = re.compile(r"(?i)auth|key|token|secret|passw|cookie|signature|credential")


def _header_to_dict(name: str, value: HeaderValue, sealer: Sealer, where: tuple[str, str, str]
                    ) -> dict[str, Any]:
    if isinstance(value, Secret):
        return {"name": name, "secret": True, "hint": value.hint,
                "value": sealer.seal(value, *where, header_field(name))}
    return {"name": name, "secret": False, "value": value}


def _header_from_dict(h: dict[str, Any], sealer: Sealer, where: tuple[str, str, str]
                      ) -> tuple[str, HeaderValue]:
    if h.get("secret"):
        return h["name"], sealer.lazy(h["value"], *where, header_field(h["name"]),
                                      h.get("hint", ""))
    return h["name"], h["value"]


def sealed_secrets(endpoint: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """(vault field, sealed text) of every secret stored in one endpoint record."""
    yield "api_key", endpoint["api_key"]
    for h in endpoint.get("extra_headers", ()):
        if h.get("secret"):
            yield header_field(h["name"]), h["value"]


def resealed(endpoint: dict[str, Any], change: Callable[[str, str], str]) -> dict[str, Any]:
    """The endpoint record with each sealed text replaced by ``change(field, sealed)``."""
    headers = [
        {**h, "value": change(header_field(h["name"]), h["value"])} if h.get("secret") else h
        for h in endpoint.get("extra_headers", ())
    ]
    out = {**endpoint, "api_key": change("api_key", endpoint["api_key"])}
    if "extra_headers" in endpoint:
        out["extra_headers"] = headers
    return out


def legacy_headers_sealed(body: dict[str, Any], sealer: Sealer, account_id: str, llm_id: str
                          ) -> dict[str, Any] | None:
    """The body with its pre-``secret`` headers migrated; None when there is nothing to do.

    Such headers were stored in plaintext whatever the caller asked. One whose name carries a
    credential (``Authorization``, ``X-Api-Key``, ``...-Token``, ...) is sealed now; any other
    stays a plain header, marked as such (it was already shown in full, so nothing is lost).
    """
    changed = False
    endpoints = []
    for e in body.get("endpoints", ()):
        headers = []
        for h in e.get("extra_headers", ()):
            if "secret" not in h:
                changed = True
                value: HeaderValue = h["value"]
                if _CREDENTIAL_NAME.search(h["name"]):
                    value = Secret(h["value"])
                h = _header_to_dict(h["name"], value, sealer, (account_id, llm_id, e["id"]))
            headers.append(h)
        endpoints.append({**e, "extra_headers": headers} if "extra_headers" in e else e)
    return {**body, "endpoints": endpoints} if changed else None


def to_record_body(llm: Llm, sealer: Sealer) -> dict[str, Any]:
    endpoints = []
    for ep in llm.endpoints:
        where = (llm.account_id, llm.id, ep.id)
        headers = [_header_to_dict(name, value, sealer, where)
                   for name, value in ep.extra_headers]
        endpoints.append(
            {
                "id": ep.id,
                "api_spec": ep.api_spec.value,
                "base_url": ep.base_url,
                "model": ep.model,
                "api_version": ep.api_version,
                "label": ep.label,
                "priority": ep.priority,
                "context_window_tokens": ep.context_window_tokens,
                "continues_partial_answer": ep.continues_partial_answer,
                "api_key": sealer.seal(ep.api_key, llm.account_id, llm.id, ep.id, "api_key"),
                "api_key_hint": ep.key_hint,
                "extra_headers": headers,
                "capabilities": ep.capabilities.stored(),
            }
        )
    return {
        "endpoints": endpoints,
        "generation": generation_to_dict(llm.generation),
        "routing": {
            "hedging": llm.policy.hedging_enabled,
            "failover_after_first_token": llm.policy.failover_after_first_token,
        },
    }


def from_record(record: LlmRecord, sealer: Sealer) -> Llm:
    body = record.body
    endpoints = tuple(
        Endpoint(
            id=e["id"],
            api_spec=ApiSpec(e["api_spec"]),
            base_url=e["base_url"],
            model=e["model"],
            api_key=sealer.lazy(e["api_key"], record.account_id, record.id, e["id"], "api_key",
                                e.get("api_key_hint", "")),
            api_version=e.get("api_version", ""),
            label=e.get("label", ""),
            priority=e.get("priority", 0),
            context_window_tokens=e.get("context_window_tokens", 0),
            continues_partial_answer=e.get("continues_partial_answer"),
            extra_headers=tuple(_header_from_dict(h, sealer, (record.account_id, record.id,
                                                              e["id"]))
                                for h in e.get("extra_headers", ())),
            capabilities=Capabilities.from_stored(e.get("capabilities")),
        )
        for e in body["endpoints"]
    )
    routing = body.get("routing", {})
    return Llm(
        id=record.id,
        account_id=record.account_id,
        display_name=record.display_name,
        endpoints=endpoints,
        generation=generation_from_dict(body.get("generation", {})),
        policy=RoutingPolicy(
            hedging_enabled=routing.get("hedging", True),
            failover_after_first_token=routing.get("failover_after_first_token", True),
        ),
        create_time=record.create_time,
        update_time=record.update_time,
        etag=record.etag,
    )
