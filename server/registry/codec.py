"""Llm <-> store record body. Secrets are sealed on the way in and opened on the way out."""

from __future__ import annotations

from typing import Any, Protocol

from server.chat import Generation, ReasoningEffort
from server.registry.llm import ApiSpec, Endpoint, Llm, RoutingPolicy
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


def to_record_body(llm: Llm, sealer: Sealer) -> dict[str, Any]:
    endpoints = []
    for ep in llm.endpoints:
        headers = []
        for name, value in ep.extra_headers:
            headers.append({"name": name, "value": value})
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
                "api_key": sealer.seal(ep.api_key, llm.account_id, llm.id, ep.id, "api_key"),
                "api_key_hint": ep.key_hint,
                "extra_headers": headers,
                "capabilities": ep.capabilities,
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
            extra_headers=tuple((h["name"], h["value"]) for h in e.get("extra_headers", ())),
            capabilities=e.get("capabilities", {}),
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
