# TruckLLM: make install | run | test | lint | bench | dist
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
CONFIG ?= config/truckllm.yaml
PLUGINS := $(sort $(wildcard plugins/*))

.PHONY: install run test test-agents test-browser lint typecheck bench dist clean

# The kernel, its test kit (testing/: the distribution truckllm-testing, which the kernel's `test`
# extra names) and every plugin, editable, in one pip command: the local folders answer for those
# names, so pip never looks `truckllm` or `truckllm-testing` up on a package index.
$(VENV)/.installed: pyproject.toml testing/pyproject.toml $(wildcard plugins/*/pyproject.toml)
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet -e '.[dev]' -e testing $(foreach p,$(PLUGINS),-e $(p))
	touch $@

install: $(VENV)/.installed

# The quick start's admin token: TRUCKLLM_ADMIN_TOKEN if set, else a random one kept (mode 600) in
# $(ADMIN_TOKEN_FILE), made on the first run. Its value is never printed.
ADMIN_TOKEN_FILE ?= .truckllm-admin-token

run: install
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

# Wheels and sdists of the kernel, the test kit and every plugin in $(DIST)/ (emptied first),
# checked by twine. Installing from them: contrib/plugin-template/README.md.
DIST ?= dist

dist: install
	rm -rf $(DIST)
	set -e; for project in . testing $(PLUGINS); do $(PY) -m build --quiet --outdir $(DIST) $$project; done
	$(VENV)/bin/twine check --strict $(DIST)/*

clean:
	rm -rf $(VENV) build dist .pytest_cache .mypy_cache .ruff_cache
