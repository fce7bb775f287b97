# The appeals pipeline. `make run` runs everything locally; `make test` runs the whole suite.
# Every install step lives here: a fresh clone needs only Python 3.11, Java 17 + Maven and Go
# (and apt-get, for Debian's Prometheus package).

SHELL := /bin/bash
.DEFAULT_GOAL := help

include deploy/local/versions.env

PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
CACHE_DIR ?= $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/appeals-pipeline
# Cache keys are the versions plus a digest of the recipe, never file dates: a fresh clone (whose
# files are all new) still finds what an earlier clone fetched or built.
KAFKA_RECIPE := $(shell cat deploy/local/pom.xml | sha256sum | cut -c1-10)
FERRETDB_RECIPE := $(shell cat deploy/local/build-ferretdb.sh deploy/local/patches/ferretdb-*.patch | sha256sum | cut -c1-10)
JAEGER_RECIPE := $(shell cat deploy/local/build-jaeger.sh | sha256sum | cut -c1-10)
KAFKA_LIBS := $(CACHE_DIR)/kafka-$(KAFKA_VERSION)-$(KAFKA_RECIPE)/libs
FERRETDB_BIN := $(CACHE_DIR)/ferretdb-$(FERRETDB_VERSION)-$(FERRETDB_RECIPE)/ferretdb
JAEGER_BIN := $(CACHE_DIR)/jaeger-$(JAEGER_VERSION)-$(JAEGER_RECIPE)/jaeger
VENV_STAMP := $(VENV)/.installed

export APPEALS_CACHE_DIR := $(CACHE_DIR)
export APPEALS_KAFKA_LIBS := $(KAFKA_LIBS)
export APPEALS_FERRETDB_BIN := $(FERRETDB_BIN)
export APPEALS_JAEGER_BIN := $(JAEGER_BIN)

# The ops stack (Jaeger for traces, Prometheus with our rules) runs with `make run` / `make up`
# unless OPS=0. Jaeger is skipped too when OTEL_EXPORTER_OTLP_ENDPOINT names a collector.
OPS ?= 1
export APPEALS_OPS := $(OPS)

# Debian's Chromium drives the ops page's browser test (headless, over the DevTools protocol).
CHROMIUM := /usr/bin/chromium
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)

# Local servers are needed only when the environment does not point at existing ones.
RUN_INFRA := $(if $(KAFKA_BOOTSTRAP_SERVERS),,$(KAFKA_LIBS)/.complete) $(if $(MONGODB_URL),,$(FERRETDB_BIN)) \
	$(if $(filter 0,$(OPS)),,$(if $(OTEL_EXPORTER_OTLP_ENDPOINT),,$(JAEGER_BIN)) prometheus)
TEST_INFRA := $(KAFKA_LIBS)/.complete $(FERRETDB_BIN) $(JAEGER_BIN) prometheus

.PHONY: help run up down status test lint typecheck unit integration e2e proto openapi bootstrap kafka ferretdb jaeger prometheus chromium constraints clean

help: ## List the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

run: $(VENV_STAMP) $(RUN_INFRA) ## Set up and run the whole pipeline and its ops stack in the foreground (OPS=0: no Jaeger/Prometheus)
	@$(BIN)/python -m appeals_devstack run

up: $(VENV_STAMP) $(RUN_INFRA) ## Start the whole pipeline in the background; returns when all are ready
	@$(BIN)/python -m appeals_devstack up

down: $(VENV_STAMP) ## Stop what `make up` started
	@$(BIN)/python -m appeals_devstack down

status: $(VENV_STAMP) ## Show what is running
	@$(BIN)/python -m appeals_devstack status

test: $(VENV_STAMP) $(TEST_INFRA) $(CHROMIUM) lint typecheck ## Lint, type-check, then unit, integration and e2e tests on a private broker and store
	@echo "==> tests (the session starts its own Kafka, FerretDB, Jaeger and Prometheus on free ports)"
	@$(BIN)/pytest -q

lint: $(VENV_STAMP) ## ruff lint and format check
	@echo "==> ruff"
	@$(BIN)/ruff check .
	@$(BIN)/ruff format --check .

typecheck: $(VENV_STAMP) ## mypy (strict)
	@echo "==> mypy"
	@$(BIN)/mypy libs services tests bench

unit: $(VENV_STAMP) ## Only the unit tests (no broker, no store)
	@$(BIN)/pytest -q tests/unit

integration: $(VENV_STAMP) $(TEST_INFRA) ## Only the integration tests (the session starts its own broker and store)
	@$(BIN)/pytest -q tests/integration

e2e: $(VENV_STAMP) $(TEST_INFRA) $(CHROMIUM) ## Only the end-to-end tests (service processes on a private broker and store)
	@$(BIN)/pytest -q tests/e2e

proto: $(VENV_STAMP) ## Regenerate Python code from protos/ (commit the result)
	@$(BIN)/python -m appeals_devstack.protogen

openapi: $(VENV_STAMP) ## Rewrite services/intake/openapi.json (commit the result)
	@$(BIN)/python -m services.intake.openapi

bootstrap: $(VENV_STAMP) $(TEST_INFRA) $(CHROMIUM) ## Install everything without running anything

# `make bench`: the whole pipeline under load on a stack of its own (bench/, README "Performance"),
# then the audit log's own figures. RATES: offered appeals/s, open loop, STEP_S seconds each, then
# saturation; HISTORY=10000,500000 also grows the stores to each size and measures again;
# BENCH_ARGS: any other option of `python -m bench --help`.
RATES ?= 25,50,100,200
STEP_S ?= 20
HISTORY ?=
BENCH_ARGS ?=

.PHONY: bench bench-pipeline bench-audit
bench: bench-pipeline bench-audit ## Run the benchmarks: the pipeline against its limits (RATES, STEP_S, HISTORY), then the audit log

bench-pipeline: $(VENV_STAMP) $(KAFKA_LIBS)/.complete $(FERRETDB_BIN) $(JAEGER_BIN) ## The pipeline at fixed rates and saturation vs. the limits on the same broker; results in .local/bench/
	@$(BIN)/python -m bench --rates $(RATES) --step-s $(STEP_S) $(if $(HISTORY),--history $(HISTORY)) $(BENCH_ARGS)

bench-audit: $(VENV_STAMP) $(FERRETDB_BIN) $(KAFKA_LIBS)/.complete ## Audit log append rate and full-verify time (1M in memory, 20k via FerretDB)
	@$(BIN)/python -m bench.audit_appends

$(VENV_STAMP): pyproject.toml constraints.txt
	@echo "==> Python virtualenv in $(VENV)"
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -m pip install --quiet --upgrade pip
	@$(BIN)/python -m pip install --progress-bar off -c constraints.txt -e '.[dev]' | grep -v '^Requirement already satisfied' || true
	@$(BIN)/python -c 'import appeals_runtime, aiokafka, pymongo' # fails loudly if the install did not work
	@touch $@

kafka: $(KAFKA_LIBS)/.complete ## Fetch the Kafka broker jars from Maven Central (cached per version)

$(KAFKA_LIBS)/.complete:
	@echo "==> Apache Kafka $(KAFKA_VERSION) jars from Maven Central into $(KAFKA_LIBS) (first time: about 100 MB)"
	@mkdir -p $(KAFKA_LIBS)
	@mvn -B -Dstyle.color=never -f deploy/local/pom.xml -Dkafka.version=$(KAFKA_VERSION) \
		dependency:copy-dependencies -DoutputDirectory=$(KAFKA_LIBS) -DincludeScope=runtime \
		| sed -E 's/\x1b\[[0-9;]*m//g' | grep -E 'Downloaded from|BUILD|ERROR' | sed -E 's/^\[INFO\] /    /'; test $${PIPESTATUS[0]} -eq 0
	@touch $@

ferretdb: $(FERRETDB_BIN) ## Build FerretDB from the Go module proxy (cached per version)

$(FERRETDB_BIN):
	@bash deploy/local/build-ferretdb.sh $(FERRETDB_VERSION) $@

jaeger: $(JAEGER_BIN) ## Build Jaeger (v2 all-in-one) from the Go module proxy (cached per version)

$(JAEGER_BIN):
	@bash deploy/local/build-jaeger.sh $(JAEGER_VERSION) $@

prometheus: ## Install Prometheus and promtool from Debian's packages (skipped when present)
	@bash deploy/local/install-prometheus.sh

chromium: $(CHROMIUM) ## Install Debian's chromium for the browser test (apt-get; sudo unless root)

$(CHROMIUM):
	@echo "==> Debian's chromium for the ops page's browser test (apt-get, first time only)"
	@$(SUDO) apt-get update -q
	@$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends chromium
	@test -x $@

constraints: ## Re-pin constraints.txt from a fresh resolution of pyproject.toml
	@rm -rf /tmp/appeals-constraints-venv && $(PYTHON) -m venv /tmp/appeals-constraints-venv
	@/tmp/appeals-constraints-venv/bin/pip install --quiet -e '.[dev]'
	@{ head -2 constraints.txt; /tmp/appeals-constraints-venv/bin/pip freeze --exclude-editable; } > constraints.txt.new
	@mv constraints.txt.new constraints.txt

clean: down ## Remove the virtualenv and local runtime state (the per-user caches stay)
	rm -rf $(VENV) .local .mypy_cache .ruff_cache .pytest_cache
