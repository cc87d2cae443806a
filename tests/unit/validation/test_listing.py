"""Issue 19: what GET /models and llama.cpp's /props say about the model and its window."""

from __future__ import annotations

import orjson

from server.validation.listing import parse_models, parse_props

LLAMA_CPP_MODELS = {"object": "list", "models": [{"name": "tiny-llama"}], "data": [{
    "id": "tiny-llama", "aliases": ["tiny"], "object": "model", "owned_by": "llamacpp",
    "meta": {"vocab_type": 1, "n_vocab": 32000, "n_ctx": 256, "n_ctx_train": 4096}}]}


def test_llama_cpp_lists_its_alias_and_a_slots_window() -> None:
    found = parse_models(orjson.dumps(LLAMA_CPP_MODELS), "whatever")
    assert found.models == ("tiny-llama", "tiny") and found.llama_cpp
    assert found.window_tokens == 256  # the only entry: its window, whatever the name asked
    assert not found.lists("whatever") and found.lists("tiny")


def test_vllm_groq_and_openrouter_windows() -> None:
    body = {"data": [{"id": "a", "max_model_len": 32768}, {"id": "b", "context_window": 8192},
                     {"id": "c", "context_length": 200000}, {"id": "d"}]}
    for model, window in (("a", 32768), ("b", 8192), ("c", 200000), ("d", 0)):
        assert parse_models(orjson.dumps(body), model).window_tokens == window
    assert not parse_models(orjson.dumps(body), "a").llama_cpp


def test_no_usable_list_lists_everything() -> None:
    for body in (b"<html>", b"{}", orjson.dumps({"data": "x"})):
        found = parse_models(body, "m")
        assert found.models == () and found.lists("m") and found.window_tokens == 0


def test_props_window() -> None:
    props = {"default_generation_settings": {"n_ctx": 4096, "params": {}}, "total_slots": 1}
    assert parse_props(orjson.dumps(props)) == 4096
    assert parse_props(b"not json") == 0 and parse_props(b"{}") == 0
