# Every target creates what it needs: a fresh clone runs `make demo` or `make test` as is.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
SAM_VENV := .venv-sam
SAM := $(SAM_VENV)/bin/sam
SAM_CLI_VERSION := 1.170.0
SAM_STAMP := $(SAM_VENV)/.installed-$(SAM_CLI_VERSION)
REGION ?= us-east-1
# `sam build` needs the functions' runtime, python3.12, on PATH. Override with
# `make sam-build PY312=/path/to/python3.12`; otherwise a python3.12 that runs, else
# pyenv's newest 3.12 (a pyenv shim alone fails when 3.12 is not the active version),
# else one under $PYENV_ROOT/versions. Looked up once, and only by the targets that use it.
ifeq ($(origin PY312),undefined)
PY312 = $(eval PY312 := $(shell { python3.12 -c 'import sys; print(sys.executable)' || \
	{ v=$$(pyenv versions --bare | grep -E '^3\.12(\.[0-9]+)?$$' | sort -V | tail -n 1) && [ -n "$$v" ] && \
	  echo "$$(pyenv prefix "$$v")/bin/python3.12"; } || \
	ls -d "$${PYENV_ROOT:-$$HOME/.pyenv}"/versions/3.12*/bin/python3.12 | sort -V | tail -n 1; } 2>/dev/null))$(PY312)
endif
export SAM_CLI_TELEMETRY := 0

.PHONY: venv test lint fmt typecheck sam-validate sam-build sam-build-local sam-local demo dev bench clean \
	dashboard-vendor chromium test-browser screenshots

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

venv: $(BIN)/.installed

test: venv chromium
	$(BIN)/pytest -q -n 2 --dist loadfile

# The Data Quality Pipeline, three scenarios at once, on the stack `make dev` runs (else one started
# for the demo). Options: make demo DEMO_ARGS='--records 100,200 --seed 7'
demo: venv
	$(BIN)/python -m local.demo $(DEMO_ARGS)

# The whole system on this machine with the real handlers: moto, the HTTP and WebSocket APIs on
# 127.0.0.1:8000, the step pollers. Ctrl-C stops it. Its data stays in .local-stack/data/ (docs/local-stack.md).
# Options: make dev DEV_ARGS='--fresh' (start empty), '--json-logs', '--port 0 --workers 8'
dev: venv
	$(BIN)/python -m local.stack $(DEV_ARGS)

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

fmt: venv
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# The dashboard's vendored libraries (functions/api/dashboard/vendor/, checked in with their
# licences): fetched with npm at the pinned versions, only by this target, never at run time.
MERMAID_VERSION := 11.17.2
AWS4FETCH_VERSION := 1.0.20
DASHBOARD_VENDOR := functions/api/dashboard/vendor
dashboard-vendor:
	rm -rf .dashboard-vendor && mkdir -p .dashboard-vendor
	cd .dashboard-vendor && npm pack --silent mermaid@$(MERMAID_VERSION) aws4fetch@$(AWS4FETCH_VERSION) >/dev/null
	mkdir -p .dashboard-vendor/mermaid .dashboard-vendor/aws4fetch $(DASHBOARD_VENDOR)
	tar -xzf .dashboard-vendor/mermaid-$(MERMAID_VERSION).tgz -C .dashboard-vendor/mermaid
	tar -xzf .dashboard-vendor/aws4fetch-$(AWS4FETCH_VERSION).tgz -C .dashboard-vendor/aws4fetch
	cp .dashboard-vendor/mermaid/package/dist/mermaid.min.js $(DASHBOARD_VENDOR)/mermaid.min.js
	cp .dashboard-vendor/mermaid/package/LICENSE $(DASHBOARD_VENDOR)/mermaid.LICENSE
	cp .dashboard-vendor/aws4fetch/package/dist/aws4fetch.esm.mjs $(DASHBOARD_VENDOR)/aws4fetch.esm.mjs
	cp .dashboard-vendor/aws4fetch/package/LICENSE $(DASHBOARD_VENDOR)/aws4fetch.LICENSE
	printf 'mermaid %s\naws4fetch %s\n' $(MERMAID_VERSION) $(AWS4FETCH_VERSION) > $(DASHBOARD_VENDOR)/VERSIONS
	rm -rf .dashboard-vendor

# Debian's chromium, for the browser tests (tests/browser: Playwright's Python package drives
# /usr/bin/chromium; no browser is downloaded). Installed if missing, as root (CI runs on a fresh
# machine), as scripts/lambda_image/with_docker.sh installs docker.io. `make test` runs the browser
# tests when chromium is there and skips them (saying why) when it is not.
chromium:
	@test -x /usr/bin/chromium || { \
	  if [ "$$(id -u)" != 0 ]; then echo "chromium: missing and not root: the browser tests will be skipped (apt-get install chromium)" >&2; exit 0; fi; \
	  echo "chromium: installing Debian's chromium"; apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null; }

test-browser: venv chromium
	$(BIN)/pytest -q -p no:cacheprovider tests/browser

# docs/screenshots/run.png and editor.png, taken by the browser tests' code on a fresh local stack.
screenshots: venv chromium
	GRAPHFLOW_SCREENSHOTS=docs/screenshots $(BIN)/pytest -q -p no:cacheprovider tests/browser/test_screenshots.py

bench: venv
	$(BIN)/pip install --quiet -e '.[dev,bench]'
	$(BIN)/python bench/core.py

# SAM CLI pins boto3 and pydantic exactly: it lives in its own virtualenv, never in $(VENV).
$(SAM_STAMP):
	rm -rf $(SAM_VENV)
	$(PYTHON) -m venv $(SAM_VENV)
	$(SAM_VENV)/bin/pip install --quiet --disable-pip-version-check aws-sam-cli==$(SAM_CLI_VERSION)
	touch $@

# The instruction set of the functions and of DependenciesLayer: template.yaml's Architecture
# parameter, arm64 (its default) unless `make sam-build ARCHITECTURE=x86_64`. `sam build` passes
# a makefile build none of the template's parameters, so build-DependenciesLayer reads the
# architecture from GRAPHFLOW_ARCHITECTURE in its environment, which sam-build and
# sam-build-local set; unset (a plain `sam build`), the layer is built for arm64. A plain
# `sam build --parameter-overrides Architecture=x86_64` needs GRAPHFLOW_ARCHITECTURE=x86_64 as
# well; scripts/check_sam_build.py fails a layer built for another architecture than the functions.
ARCHITECTURE ?= arm64

sam-validate: $(SAM_STAMP)
	$(SAM) validate --lint --region $(REGION) --template-file template.yaml

# Builds into .aws-sam/build with samconfig.toml's defaults, then checks the artifacts
# (packages, layer architecture, handler imports): scripts/check_sam_build.py.
.PHONY: check-py312
check-py312:
	@if [ -z "$(PY312)" ] || ! "$(PY312)" -c 'import sys; assert sys.version_info[:2] == (3, 12)' 2>/dev/null; then \
	  echo "$(MAKECMDGOALS): no python3.12 found (the Lambda runtime is python3.12): install one (e.g. pyenv install 3.12)," >&2; \
	  echo "           or pass its path: make $(MAKECMDGOALS) PY312=/path/to/python3.12" >&2; exit 1; fi

sam-build: $(SAM_STAMP) check-py312
	PATH="$(dir $(PY312)):$$PATH" GRAPHFLOW_ARCHITECTURE=$(ARCHITECTURE) $(SAM) build --region $(REGION) \
	  --template-file template.yaml --parameter-overrides Architecture=$(ARCHITECTURE)
	$(SAM_VENV)/bin/python scripts/check_sam_build.py --python "$(PY312)" --parameter Architecture=$(ARCHITECTURE) .aws-sam/build

# `sam local` where Docker is (docs/sam-local.md): the functions built for x86_64 (the local
# image's architecture) into their own build directory, the Lambda image (pulled, else a
# stand-in built by scripts/lambda_image/build.sh; kept between runs), then tests/sam_local:
# every event in events/ and a whole run through `sam local start-lambda` and `sam local invoke`,
# against moto on the Docker bridge. A dockerd is started for it only if none is running.
SAM_LOCAL_IMAGE ?= graphflow/lambda-python:3.12-x86_64
SAM_LOCAL_BUILD := .aws-sam/build-x86_64

sam-build-local: $(SAM_STAMP) check-py312
	PATH="$(dir $(PY312)):$$PATH" GRAPHFLOW_ARCHITECTURE=x86_64 $(SAM) build --region $(REGION) --template-file template.yaml \
	  --parameter-overrides Architecture=x86_64 --build-dir $(SAM_LOCAL_BUILD) --cache-dir .aws-sam/cache-x86_64
	$(SAM_VENV)/bin/python scripts/check_sam_build.py --python "$(PY312)" --parameter Architecture=x86_64 $(SAM_LOCAL_BUILD)

sam-local: venv sam-build-local
	scripts/lambda_image/with_docker.sh sh -c '\
	  scripts/lambda_image/build.sh "$(SAM_LOCAL_IMAGE)" "$(PY312)" && \
	  GRAPHFLOW_SAM_LOCAL=1 SAM_LOCAL_SAM="$(abspath $(SAM))" SAM_LOCAL_IMAGE="$(SAM_LOCAL_IMAGE)" \
	  SAM_LOCAL_TEMPLATE="$(abspath $(SAM_LOCAL_BUILD))/template.yaml" $(BIN)/pytest -q -p no:cacheprovider --durations=5 tests/sam_local'

# Called by `sam build` (BuildMethod: makefile, built in source) with ARTIFACTS_DIR set and the
# PATH it was started with (`make sam-build` puts $(PY312) first): a function's artifact is the two
# packages it imports, with their bytecode compiled by python3.12, the functions' runtime, so that
# a cold start does not compile them. Unchecked-hash .pyc: Lambda's code directory is read-only
# and zip archives keep file times to 2 s only, so timestamp-checked .pyc could be found stale and
# compiled again at every cold start. Local caches are left out.
SAM_FUNCTIONS := ApiFunction JwtApiFunction AuthorizerFunction StepFunction DeadLetterFunction WebSocketFunction TriggerFunction
.PHONY: $(addprefix build-,$(SAM_FUNCTIONS))
$(addprefix build-,$(SAM_FUNCTIONS)):
	@test -n "$(ARTIFACTS_DIR)" || { echo "$@ is run by sam build" >&2; exit 1; }
	@python3.12 -c 'import sys; assert sys.version_info[:2] == (3, 12)' 2>/dev/null || \
	  { echo "$@: python3.12 (the Lambda runtime) must be on PATH to compile the bytecode" >&2; exit 1; }
	tar -cf - --exclude='__pycache__' --exclude='*.py[co]' engine functions | tar -xf - -C "$(ARTIFACTS_DIR)"
	python3.12 -m compileall -q --invalidation-mode unchecked-hash "$(ARTIFACTS_DIR)/engine" "$(ARTIFACTS_DIR)/functions"

# DependenciesLayer (its Metadata says `BuildMethod: makefile`; run from the repository root,
# its ProjectRootDirectory): layer/requirements.txt installed by python3.12's pip for python3.12
# on GRAPHFLOW_ARCHITECTURE (arm64 when unset: the Architecture parameter's default), from
# manylinux wheels only, then compiled as the functions are. SAM's own Python builder ships the
# layer without bytecode, so every cold start compiled the layer modules it imports (pydantic,
# Powertools, and the layer's botocore, which shadows the runtime's compiled one).
LAYER_PLATFORMS_arm64 := aarch64
LAYER_PLATFORMS_x86_64 := x86_64
LAYER_MACHINE = $(LAYER_PLATFORMS_$(or $(GRAPHFLOW_ARCHITECTURE),arm64))
.PHONY: build-DependenciesLayer
build-DependenciesLayer:
	@test -n "$(ARTIFACTS_DIR)" || { echo "$@ is run by sam build" >&2; exit 1; }
	@test -n "$(LAYER_MACHINE)" || \
	  { echo "$@: GRAPHFLOW_ARCHITECTURE is '$(GRAPHFLOW_ARCHITECTURE)', not arm64 or x86_64" >&2; exit 1; }
	@python3.12 -c 'import sys; assert sys.version_info[:2] == (3, 12)' 2>/dev/null || \
	  { echo "$@: python3.12 (the Lambda runtime) must be on PATH to install and compile the layer" >&2; exit 1; }
	rm -rf "$(ARTIFACTS_DIR)/python"
	python3.12 -m pip install --quiet --disable-pip-version-check --no-compile --only-binary=:all: \
	  --platform manylinux_2_28_$(LAYER_MACHINE) --platform manylinux2014_$(LAYER_MACHINE) \
	  --implementation cp --python-version 3.12 --target "$(ARTIFACTS_DIR)/python" -r layer/requirements.txt
	rm -rf "$(ARTIFACTS_DIR)/python/bin"
	python3.12 -m compileall -q --invalidation-mode unchecked-hash "$(ARTIFACTS_DIR)/python"

clean:
	rm -rf $(VENV) $(SAM_VENV) .aws-sam .pytest_cache .mypy_cache .ruff_cache
