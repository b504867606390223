"""The image: deploy/Dockerfile keeps TruckLLM's rules (multi-stage, non-root, hashed locks only,
a health check, SIGTERM, no secrets), hadolint finds nothing, and each rule is shown to catch the
mistake it is for."""

from __future__ import annotations

import subprocess

import pytest

from tests.deploy.dockerfile import ignored, parse, problems
from tests.deploy.tools import DEPLOY, ROOT, tool, validate_config

DOCKERFILE = (DEPLOY / "Dockerfile").read_text()
IGNORE = (DEPLOY / "Dockerfile.dockerignore").read_text().splitlines()


def test_the_dockerfile_keeps_every_rule() -> None:
    assert problems(DOCKERFILE, IGNORE) == []


def test_hadolint_finds_nothing() -> None:
    result = subprocess.run(
        [tool("hadolint"), "--no-color", str(DEPLOY / "Dockerfile")], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


# Each mutation of the real Dockerfile is a mistake one of the rules is for: the checks must say so.
MUTATIONS = [
    ("USER 10001:10001", "USER root", "runs as root"),
    ("USER 10001:10001", "", "sets no USER"),
    (
        "--require-hashes --no-deps --only-binary :all: -r requirements/runtime.txt",
        "-r requirements/runtime.txt",
        "--no-deps",
    ),
    (
        "--require-hashes --no-deps --only-binary :all: -r requirements/runtime.txt",
        "--no-deps --only-binary :all: -r requirements/runtime.txt",
        "without --require-hashes",
    ),
    ('--no-build-isolation "$@"', '--no-build-isolation "$@" prometheus-client', "by name"),
    ("STOPSIGNAL SIGTERM", "STOPSIGNAL SIGKILL", "STOPSIGNAL"),
    ("/admin/v1/health", "/v1/models", "does not ask /admin/v1/health"),
    ("HEALTHCHECK --interval", "# HEALTHCHECK --interval", "no HEALTHCHECK"),
    ("    PYTHONUNBUFFERED=1 \\", "    PYTHONUNBUFFERED=1 TRUCKLLM_ADMIN_TOKEN=s3cret \\", "secret baked"),
    ("ARG PLUGINS=", "ARG OPENAI_API_KEY=sk-x\nARG PLUGINS=", "secret baked"),
    (
        "COPY deploy/docker/truckllm.yaml",
        "COPY .env /etc/truckllm/.env\nCOPY deploy/docker/truckllm.yaml",
        "secret file",
    ),
    ("COPY --from=builder /opt/truckllm", "COPY --from=build /opt/truckllm", "not a stage"),
    (
        "COPY --from=builder /opt/truckllm /opt/truckllm",
        "COPY core/ /opt/core/",
        "copies from the source tree",
    ),
    ("COPY tools/lock.py tools/lock.py", "COPY tools/ tools/", "left out of the build context"),
    ("RUN python tools/lock.py --check", "RUN curl -sSf https://example.invalid/x | sh", "downloads"),
]


@pytest.mark.parametrize(
    ("old", "new", "expected"), MUTATIONS, ids=[m[2] + ":" + m[1][:20] for m in MUTATIONS]
)
def test_each_rule_catches_its_mistake(old: str, new: str, expected: str) -> None:
    assert old in DOCKERFILE
    found = problems(DOCKERFILE.replace(old, new, 1), IGNORE)
    assert any(expected in p for p in found), found


def test_a_single_stage_image_is_refused() -> None:
    runtime_only = DOCKERFILE[DOCKERFILE.index("FROM ${PYTHON_IMAGE} AS runtime") :]
    assert any("multi-stage" in p for p in problems(runtime_only, IGNORE))


def test_the_runtime_stage_holds_only_the_venv_and_the_default_config() -> None:
    instructions = parse(DOCKERFILE)
    last = max(i.stage for i in instructions)
    copies = [i.args for i in instructions if i.stage == last and i.keyword == "COPY"]
    assert copies == [
        "--from=builder /opt/truckllm /opt/truckllm",
        "deploy/docker/truckllm.yaml /etc/truckllm/truckllm.yaml",
    ]
    assert [i.args for i in instructions if i.stage == last and i.keyword == "ENTRYPOINT"] == ['["truckllm"]']


def test_every_chosen_plugin_is_a_folder_under_plugins() -> None:
    arg = next(i.args for i in parse(DOCKERFILE) if i.keyword == "ARG" and i.args.startswith("PLUGINS="))
    chosen = arg.partition("=")[2].strip('"').split()
    assert chosen and all((ROOT / "plugins" / name / "pyproject.toml").is_file() for name in chosen)
    assert {
        "truckllm-provider-mock",
        "truckllm-logger-prometheus",
        "truckllm-store-redis",
        "truckllm-logger-sql",
    } <= set(chosen)


def test_the_build_context_holds_what_the_build_needs_and_no_secrets() -> None:
    for path in [
        "requirements/runtime.txt",
        "requirements/build.txt",
        "core/truckllm/__init__.py",
        "plugins/truckllm-provider-mock/pyproject.toml",
        "testing/pyproject.toml",
        "deploy/docker/truckllm.yaml",
    ]:
        assert not ignored(IGNORE, path), path
    for path in [
        ".env",
        "deploy/compose/.env",
        ".truckllm-admin-token",
        "truckllm-requests.db",
        ".venv/bin/python",
        "build/x",
        "plugins/truckllm-provider-mock/tests/test_x.py",
        "core/truckllm/__pycache__/a.pyc",
        ".git/config",
        "server.pem",
    ]:
        assert ignored(IGNORE, path), path


def test_the_default_config_validates_and_listens_where_the_health_check_asks() -> None:
    config = DEPLOY / "docker" / "truckllm.yaml"
    result = validate_config(
        config,
        {"TRUCKLLM_ADMIN_TOKEN": "Zk3q9PwX7mLr2VtB8nYc", "TRUCKLLM_GATEWAY_KEY": "gk-abcdefghijklmnop"},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "listen: 0.0.0.0:8080" in config.read_text() and "127.0.0.1:8080/admin/v1/health" in DOCKERFILE
