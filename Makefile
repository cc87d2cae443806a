# Every target installs what it needs into .venv first, so a fresh clone needs nothing else.
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
NODE_TOOLS := .tools/node_modules
BUF := $(NODE_TOOLS)/.bin/buf
PROTOS := $(wildcard protos/switchboard/v1/*.proto)
export PATH := $(CURDIR)/$(BIN):$(PATH)
export PYTHONPATH := $(CURDIR):$(CURDIR)/generated:$(CURDIR)/clients/python

.PHONY: help venv demo test test-unit test-integration generate check-generated lint typecheck \
        bench bench-router soak run clean buf-lint buf-breaking

help:
	@echo "make demo | test | generate | check-generated | lint | typecheck | bench | bench-router | soak | run"

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

$(BUF):
	mkdir -p .tools
	cd .tools && npm install --silent --no-audit --no-fund @bufbuild/buf@1 >/dev/null

demo: $(STAMP)
	$(BIN)/python -m server.demo

run: $(STAMP)
	$(BIN)/switchboard serve

generate: $(STAMP)
	rm -rf generated/switchboard
	$(BIN)/python -m grpc_tools.protoc -I protos \
	  --python_out=generated --grpc_python_out=generated \
	  --mypy_out=generated --mypy_grpc_out=generated $(PROTOS)
	touch generated/switchboard/__init__.py generated/switchboard/v1/__init__.py

check-generated: $(STAMP)
	rm -rf .gen-check && mkdir -p .gen-check
	$(BIN)/python -m grpc_tools.protoc -I protos \
	  --python_out=.gen-check --grpc_python_out=.gen-check \
	  --mypy_out=.gen-check --mypy_grpc_out=.gen-check $(PROTOS)
	touch .gen-check/switchboard/__init__.py .gen-check/switchboard/v1/__init__.py
	diff -r generated/switchboard .gen-check/switchboard --exclude=__pycache__ \
	  || (echo "generated/ is stale: run 'make generate' and commit the result" && exit 1)
	rm -rf .gen-check

buf-lint: $(BUF)
	$(BUF) lint

buf-breaking: $(BUF)
	@if git rev-parse --verify -q origin/main >/dev/null || git rev-parse --verify -q main~0 >/dev/null; then \
	  $(BUF) breaking --against '.git#branch=main'; else echo "no main branch to compare against"; fi

lint: $(STAMP) buf-lint
	$(BIN)/ruff check server clients tests

typecheck: $(STAMP)
	$(BIN)/mypy server clients/python

test-unit: $(STAMP)
	$(BIN)/pytest tests/unit -q

test-integration: $(STAMP)
	$(BIN)/pytest tests/integration -q

test: $(STAMP) check-generated lint typecheck
	$(BIN)/pytest -q

bench: $(STAMP)
	$(BIN)/python -m tests.bench.run

bench-router: $(STAMP)
	$(BIN)/python -m server.routing.regret

soak: $(STAMP)
	$(BIN)/python -m tests.bench.soak

clean:
	rm -rf $(VENV) .tools .gen-check .pytest_cache .mypy_cache
