# TruckLLM: make install | run | test | lint | bench | dist | lock | audit | sbom
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
CONFIG ?= config/truckllm.yaml
PLUGINS := $(sort $(wildcard plugins/*))

.PHONY: install install-runtime run test test-agents test-browser lint typecheck bench dist clean deploy-check \
	lock lock-check audit sbom

# Locked, hashed dependencies (README, "Supply chain"): requirements/build.txt (pip and the build
# backend), runtime.txt (what serving needs: the kernel, every plugin, the `standard` extra) and
# dev.txt (runtime.txt plus the test and dev extras), made by `make lock` (tools/lock.py, uv).
# Every distribution comes from a lock, pinned, each file checked against its sha256
# (--require-hashes), as a wheel (nothing is built from an unpinned source), with --no-deps (nothing
# outside the lock is fetched). Then the repository's own packages (the kernel, the plugins, the
# test kit: local folders, never looked up on an index), editable, --no-deps, built with the
# locked hatchling (--no-build-isolation). A lock that disagrees with the pyproject.toml files stops
# the install, naming `make lock`. `make run` installs the runtime lock alone; `make install`
# (and test, lint...) adds the dev lock.
BUILD_LOCK   := requirements/build.txt
RUNTIME_LOCK := requirements/runtime.txt
DEV_LOCK     := requirements/dev.txt
PIP_LOCKED   := $(PIP) install --quiet --require-hashes --no-deps --only-binary :all:
PIP_LOCAL    := $(PIP) install --quiet --no-deps --no-build-isolation

$(VENV)/.runtime: $(BUILD_LOCK) $(RUNTIME_LOCK) pyproject.toml $(wildcard plugins/*/pyproject.toml)
	$(PYTHON) tools/lock.py --check
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP_LOCKED) -r $(BUILD_LOCK)
	$(PIP_LOCKED) -r $(RUNTIME_LOCK)
	$(PIP_LOCAL) -e . $(foreach p,$(PLUGINS),-e $(p))
	$(PIP) check
	touch $@

$(VENV)/.dev: $(VENV)/.runtime $(DEV_LOCK) testing/pyproject.toml
	$(PIP_LOCKED) -r $(DEV_LOCK)
	$(PIP_LOCAL) -e testing
	$(PIP) check
	touch $@

install: $(VENV)/.dev

install-runtime: $(VENV)/.runtime

# Refresh the locks after changing a dependency, an extra or the set of plugins: keeps every pin
# that still fits (LOCK_ARGS=--upgrade: newest allowed versions everywhere). Runs uv: the venv's
# (the dev lock has it), else one installed in $(UV_VENV) from the dev lock's pin and hashes.
UV_VENV ?= build/uv

lock:
	@test -x $(VENV)/bin/uv || test -x $(UV_VENV)/bin/uv || { \
	  $(PYTHON) -m venv $(UV_VENV) && $(PYTHON) tools/lock.py --entry uv > $(UV_VENV)/uv.txt && \
	  $(UV_VENV)/bin/pip install --quiet --require-hashes --no-deps --only-binary :all: -r $(UV_VENV)/uv.txt; }
	PATH="$(abspath $(VENV))/bin:$(abspath $(UV_VENV))/bin:$$PATH" $(PYTHON) tools/lock.py $(LOCK_ARGS)

# The locks against the pyproject.toml files, offline (make install runs it first)
lock-check:
	$(PYTHON) tools/lock.py --check

# pip-audit of every pin of the runtime and dev locks against the advisory database; when it
# cannot be reached, says so and does not fail for that reason alone
audit: install
	$(PY) tools/audit.py $(RUNTIME_LOCK) $(DEV_LOCK)

# A CycloneDX SBOM of the runtime environment (a venv made from the runtime lock alone, in
# $(SBOM_VENV)), written to $(SBOM) by cyclonedx-py (the dev lock has it)
SBOM      ?= build/sbom/truckllm-runtime.cdx.json
SBOM_VENV ?= build/sbom/venv

sbom: install
	rm -rf $(SBOM_VENV)
	$(MAKE) --no-print-directory install-runtime VENV=$(SBOM_VENV)
	mkdir -p $(dir $(SBOM))
	$(VENV)/bin/cyclonedx-py environment --pyproject pyproject.toml --output-reproducible --of JSON -o $(SBOM) $(SBOM_VENV)
	@echo "SBOM of the runtime environment: $(SBOM)"

# The quick start's admin token: TRUCKLLM_ADMIN_TOKEN if set, else a random one kept (mode 600) in
# $(ADMIN_TOKEN_FILE), made on the first run. Its value is never printed.
ADMIN_TOKEN_FILE ?= .truckllm-admin-token

run: install-runtime
	@test -s $(ADMIN_TOKEN_FILE) || (umask 077 && $(PY) -c 'import secrets; print(secrets.token_urlsafe(32))' > $(ADMIN_TOKEN_FILE))
	@echo 'admin API: Authorization: Bearer $$(cat $(ADMIN_TOKEN_FILE))'
	TRUCKLLM_ADMIN_TOKEN="$${TRUCKLLM_ADMIN_TOKEN:-$$(cat $(ADMIN_TOKEN_FILE))}" $(VENV)/bin/truckllm serve --config $(CONFIG)

test: install
	$(PY) -m pytest -q $(PYTEST_ARGS)

# Real coding agents (Claude Code, Gemini CLI, Codex CLI, pinned in tests/agents/package-lock.json;
# the OpenAI Agents SDK from the test extra) each do a task with a shell tool call through a gateway
# to the fake upstreams, bounded to 120 s, nothing past loopback (tests/agents/README.md). Needs
# Node.js 20+ and npm; without npm the CLIs' tests are skipped, saying so.
test-agents: install
	@if command -v npm >/dev/null 2>&1; then npm ci --prefix tests/agents --no-audit --no-fund; \
	else echo "npm not found: the coding-agent CLIs are not installed; their tests are skipped"; fi
	TRUCKLLM_AGENTS=1 $(PY) -m pytest -q -rs tests/agents $(PYTEST_ARGS)

# The web console in a real headless Chromium (Debian's chromium and chromium-driver, driven by
# selenium): sign in, every page, the request log, keys, provider keys; screenshots land in
# artifacts/console/. Without /usr/bin/chromium and /usr/bin/chromedriver the tests are skipped,
# saying so (.ci/run installs them with apt-get).
test-browser: install
	TRUCKLLM_BROWSER=1 $(PY) -m pytest -q -rs tests/browser $(PYTEST_ARGS)

# mypy --strict checks the kernel, the test kit and every plugin's package ([tool.mypy] files);
# lint-imports checks the plugin contract ([tool.importlinter]): a plugin imports only the hook API
# and truckllm.kit. The contrib/ plugins are not installed: lint-imports finds them on PYTHONPATH.
empty :=
CONTRIB_PATH := $(subst $(empty) $(empty),:,$(patsubst %/,%,$(dir $(wildcard contrib/*/pyproject.toml))))

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy
	PYTHONPATH=$(CONTRIB_PATH) $(VENV)/bin/lint-imports --no-cache

typecheck: install
	$(VENV)/bin/mypy

bench: install
	$(PY) -m bench $(or $(BENCH_ARGS),--quick)
	$(PY) -m pytest -q bench --benchmark-only $(PYTEST_ARGS)
	$(PY) -m pytest -q -s bench/test_guardrail_window_delay.py  # timed: the stream window's delay

# Wheels and sdists of the kernel, the test kit and every plugin in $(DIST)/ (emptied first),
# checked by twine. Installing from them: contrib/plugin-template/README.md.
DIST ?= dist

dist: install
	rm -rf $(DIST)
	set -e; for project in . testing $(PLUGINS); do $(PY) -m build --quiet --no-isolation --outdir $(DIST) $$project; done
	$(VENV)/bin/twine check --strict $(DIST)/*

clean:
	rm -rf $(VENV) build dist .pytest_cache .mypy_cache .ruff_cache

# The deploy artifacts (README "Deploy"): the linters (hadolint, yamllint, kubernetes-validate)
# from the hashed deploy/requirements-tools.txt in $(DEPLOY_TOOLS), then tests/deploy: the
# Dockerfile's rules and hadolint, the image's builder stage carried out without docker and its
# command served, the Helm chart rendered (tests/deploy/helmlite.py: no helm package) and
# validated, Compose with nginx -t and promtool where installed, the dashboard against a gateway.
DEPLOY_TOOLS ?= build/deploy-tools

$(DEPLOY_TOOLS)/.installed: deploy/requirements-tools.txt
	test -x $(DEPLOY_TOOLS)/bin/python || $(PYTHON) -m venv $(DEPLOY_TOOLS)
	$(DEPLOY_TOOLS)/bin/pip install --quiet --require-hashes --no-deps --only-binary :all: -r deploy/requirements-tools.txt
	touch $@

deploy-check: install $(DEPLOY_TOOLS)/.installed
	TRUCKLLM_DEPLOY_TOOLS=$(abspath $(DEPLOY_TOOLS)) TRUCKLLM_DEPLOY_BUILD=1 $(PY) -m pytest -q -rs tests/deploy $(PYTEST_ARGS)
