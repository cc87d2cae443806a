"""LLM definitions from the command line: ``--endpoint`` specs and ``--file`` (JSON or YAML).

An endpoint spec is ``key=value`` pairs separated by commas::

    spec=openai,url=https://api.openai.com/v1,model=gpt-4o-mini,key-env=OPENAI_API_KEY,label=us

Keys: ``spec`` (openai, azure, gemini, groq), ``url``, ``model``, ``key`` (the provider key
itself) or ``key-env`` (the name of an environment variable holding it), ``label``,
``priority``, ``api-version`` (Azure), ``context-window``. A file holds an ``Llm`` in the
protobuf JSON mapping (camelCase or snake_case names); an endpoint may say ``apiKeyEnv`` /
``api_key_env`` instead of putting its key in the file.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from google.protobuf import json_format
from switchboard.v1 import llm_pb2 as lpb

SPECS = {
    "openai": lpb.API_SPEC_OPENAI,
    "azure": lpb.API_SPEC_AZURE_OPENAI,
    "azure_openai": lpb.API_SPEC_AZURE_OPENAI,
    "gemini": lpb.API_SPEC_GEMINI,
    "groq": lpb.API_SPEC_GROQ,
}
SPEC_KEYS = ("spec", "url", "model", "key", "key-env", "label", "priority", "api-version",
             "context-window")


class SpecError(ValueError):
    """A bad ``--endpoint`` spec or ``--file``; the message says what to write instead."""


def _closest(word: str, choices: tuple[str, ...] | list[str]) -> str:
    import difflib

    match = difflib.get_close_matches(word, choices, n=1, cutoff=0.5)
    return f" (did you mean {match[0]!r}?)" if match else ""


def _key_from_env(name: str, where: str) -> str:
    value = os.environ.get(name, "")
    if not value:
        raise SpecError(f"{where}: environment variable {name} (named by key-env) is not set")
    return value


def parse_endpoint(text: str, where: str = "--endpoint") -> lpb.Endpoint:
    """One ``--endpoint`` spec as an ``Endpoint`` (``SpecError`` if it is malformed)."""
    fields: dict[str, str] = {}
    for item in (p.strip() for p in text.split(",")):
        if not item:
            continue
        name, sep, value = item.partition("=")
        name = name.strip().lower().replace("_", "-")
        if not sep:
            raise SpecError(f"{where}: {item!r} is not key=value; keys: {', '.join(SPEC_KEYS)}")
        if name not in SPEC_KEYS:
            raise SpecError(f"{where}: unknown key {name!r}{_closest(name, SPEC_KEYS)}; keys: "
                            f"{', '.join(SPEC_KEYS)}")
        fields[name] = value.strip()
    spec = fields.get("spec", "openai").lower()
    if spec not in SPECS:
        raise SpecError(f"{where}: spec={spec!r} is not one of {', '.join(sorted(SPECS))}"
                        f"{_closest(spec, sorted(SPECS))}")
    for required in ("url", "model"):
        if not fields.get(required):
            raise SpecError(f"{where}: {required}= is required, e.g. "
                            "spec=openai,url=https://api.openai.com/v1,model=gpt-4o-mini,"
                            "key-env=OPENAI_API_KEY")
    if "key" in fields and "key-env" in fields:
        raise SpecError(f"{where}: give key= or key-env=, not both")
    key = fields.get("key") or (_key_from_env(fields["key-env"], where)
                                if "key-env" in fields else "")
    ep = lpb.Endpoint(api_spec=SPECS[spec], base_url=fields["url"], model=fields["model"],
                      api_key=key, label=fields.get("label", ""),
                      api_version=fields.get("api-version", ""))
    for name, attr in (("priority", "priority"), ("context-window", "context_window_tokens")):
        if name in fields:
            try:
                setattr(ep, attr, int(fields[name]))
            except ValueError:
                raise SpecError(f"{where}: {name}={fields[name]!r} is not an integer") from None
    return ep


def _load_document(path: Path) -> Any:
    try:
        text = path.read_text()
    except OSError as exc:
        raise SpecError(f"--file {path}: {exc.strerror or exc}") from None
    if path.suffix.lower() in (".yaml", ".yml"):
        try:
            import yaml  # type: ignore[import-untyped]
        except ImportError:
            raise SpecError(f"--file {path}: reading YAML needs PyYAML (pip install pyyaml); "
                            "or write the same fields as JSON") from None
        try:
            return yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise SpecError(f"--file {path} is not valid YAML: {exc}") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise SpecError(f"--file {path} is not valid JSON: {exc}") from None


def load_llm_file(path: str) -> tuple[lpb.Llm, list[str]]:
    """The ``Llm`` a file describes, and its top-level fields (an update's field mask)."""
    document = _load_document(Path(path))
    if not isinstance(document, dict):
        raise SpecError(f"--file {path}: expected an object with displayName and endpoints")
    for i, endpoint in enumerate(document.get("endpoints") or ()):
        if isinstance(endpoint, dict):
            env = endpoint.pop("apiKeyEnv", None) or endpoint.pop("api_key_env", None)
            if env:
                endpoint["apiKey"] = _key_from_env(str(env), f"--file {path}: endpoints[{i}]")
    try:
        llm = json_format.ParseDict(document, lpb.Llm())
    except json_format.ParseError as exc:
        raise SpecError(f"--file {path}: {exc}") from None
    names: dict[str, str] = {str(f.json_name): f.name for f in lpb.Llm.DESCRIPTOR.fields}
    return llm, [names.get(str(k), str(k)) for k in document]
