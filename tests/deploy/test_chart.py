"""The Helm chart, rendered by tests/deploy/helmlite.py (no helm binary is installable here):
valid Kubernetes objects (kubernetes-validate --strict, yamllint), probes on ready and health,
termination longer than the drain, the config from a ConfigMap folder (hot reload), secrets only
from a Secret, and the optional HPA and PodDisruptionBudget."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import jsonschema  # type: ignore[import-untyped]
import pytest
import yaml  # type: ignore[import-untyped]

from tests.deploy.helmlite import Chart, Unsupported
from tests.deploy.tools import DEPLOY, seconds, tool, validate_config

CHART = Chart(DEPLOY / "helm" / "truckllm")
VARIANTS: dict[str, dict[str, Any]] = {
    "default": {},
    "autoscaling": {"autoscaling": {"enabled": True}},
    "no-pdb": {"podDisruptionBudget": {"enabled": False}},
    "rollout-on-config": {"rolloutOnConfigChange": True},
    "placement": {"nodeSelector": {"pool": "gateway"}, "tolerations": [{"key": "k", "operator": "Exists"}]},
}


def manifests(overrides: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Rendered objects by kind."""
    found: dict[str, dict[str, Any]] = {}
    for name, text in CHART.render(overrides).items():
        if name.endswith(".yaml"):
            for doc in yaml.safe_load_all(text):
                if doc:
                    assert doc["kind"] not in found
                    found[doc["kind"]] = doc
    return found


def container(objects: dict[str, dict[str, Any]]) -> dict[str, Any]:
    (only,) = objects["Deployment"]["spec"]["template"]["spec"]["containers"]
    return dict(only)


def chart_problems(objects: dict[str, dict[str, Any]]) -> list[str]:
    """What a rendered chart gets wrong about serving TruckLLM (empty: nothing)."""
    found: list[str] = []
    pod = objects["Deployment"]["spec"]["template"]["spec"]
    main = container(objects)
    config = yaml.safe_load(objects["ConfigMap"]["data"]["truckllm.yaml"])
    ports = {p["name"]: p["containerPort"] for p in main["ports"]}
    listen_port = int(config["server"]["listen"].rsplit(":", 1)[1])
    if ports.get("http") != listen_port:
        found.append(f"container port {ports} is not the config's listen port {listen_port}")
    for probe, path in (("readinessProbe", "/admin/v1/ready"), ("livenessProbe", "/admin/v1/health")):
        get = main.get(probe, {}).get("httpGet", {})
        if get.get("path") != path or get.get("port") not in ("http", listen_port):
            found.append(f"{probe} does not ask {path} on the gateway's port")
    graceful = seconds(config["server"].get("graceful_timeout", "30s"))
    pre_stop = main.get("lifecycle", {}).get("preStop", {}).get("exec", {}).get("command", [])
    sleep = float(pre_stop[1]) if pre_stop[:1] == ["sleep"] else 0.0
    if not pre_stop:
        found.append("no preStop: the pod gets SIGTERM while still in the Service's endpoints")
    if pod["terminationGracePeriodSeconds"] <= graceful + sleep:
        found.append(
            f"terminationGracePeriodSeconds {pod['terminationGracePeriodSeconds']} <= preStop {sleep} + graceful_timeout {graceful}"
        )
    mounts = {m["name"]: m for m in main["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    config_arg = main["args"][main["args"].index("--config") + 1]
    mount = next(
        (m for m in mounts.values() if config_arg.startswith(m["mountPath"].rstrip("/") + "/")), None
    )
    if mount is None:
        found.append(f"--config {config_arg} is not in a mounted folder")
    else:
        if "subPath" in mount:
            found.append("the config is mounted with subPath: the kubelet never updates it (no hot reload)")
        source = volumes[mount["name"]].get("configMap", {})
        key = config_arg.rsplit("/", 1)[1]
        if (
            source.get("name") != objects["ConfigMap"]["metadata"]["name"]
            or key not in objects["ConfigMap"]["data"]
        ):
            found.append("the config folder is not the chart's ConfigMap")
    if not any("secretRef" in e for e in main.get("envFrom", [])):
        found.append("no Secret reaches the gateway's environment")
    if any("value" in e and re.search(r"TOKEN|KEY|PASSWORD", e["name"]) for e in main.get("env", [])):
        found.append("a secret is written in the pod spec")
    security = {**pod.get("securityContext", {}), **main.get("securityContext", {})}
    if not security.get("runAsNonRoot") or security.get("runAsUser") == 0:
        found.append("the gateway may run as root")
    pod_labels = objects["Deployment"]["spec"]["template"]["metadata"]["labels"]
    selectors = [
        ("Service", objects["Service"]["spec"]["selector"]),
        ("Deployment", objects["Deployment"]["spec"]["selector"]["matchLabels"]),
    ]
    if "PodDisruptionBudget" in objects:
        selectors.append(
            ("PodDisruptionBudget", objects["PodDisruptionBudget"]["spec"]["selector"]["matchLabels"])
        )
    for kind, selector in selectors:
        if not selector or any(pod_labels.get(k) != v for k, v in selector.items()):
            found.append(f"the {kind}'s selector does not select the gateway's pods")
    if objects["Service"]["spec"]["ports"][0]["targetPort"] not in ("http", listen_port):
        found.append("the Service does not target the gateway's port")
    return found


@pytest.mark.parametrize("variant", VARIANTS)
def test_the_rendered_chart_serves_truckllm_right(variant: str) -> None:
    assert chart_problems(manifests(VARIANTS[variant])) == []


@pytest.mark.parametrize("variant", VARIANTS)
def test_kubernetes_validate_accepts_every_object(variant: str, tmp_path: Path) -> None:
    checker = tool("kubernetes-validate")
    files = []
    for name, text in CHART.render(VARIANTS[variant]).items():
        if name.endswith(".yaml") and text.strip():
            files.append(tmp_path / name)
            files[-1].write_text(text.lstrip("\n"))
    result = subprocess.run(
        [checker, "--strict", "--quiet", *map(str, files)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr
    lint = subprocess.run(
        [
            tool("yamllint"),
            "--strict",
            "-d",
            "{extends: default, rules: {document-start: disable, line-length: {max: 120}, "
            "brackets: {max-spaces-inside: 1}}}",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
    )
    assert lint.returncode == 0, lint.stdout


# Each mistake in the values (or the chart) that the checks are for, and what they say.
BROKEN = [
    ({"terminationGracePeriodSeconds": 30}, "terminationGracePeriodSeconds"),
    ({"terminationGracePeriodSeconds": 35}, "terminationGracePeriodSeconds"),
    ({"config": {"server": {"graceful_timeout": "1m"}}}, "terminationGracePeriodSeconds"),
    ({"config": {"server": {"listen": "0.0.0.0:9000"}}}, "listen port"),
]


@pytest.mark.parametrize(("overrides", "expected"), BROKEN)
def test_the_checks_catch_broken_values(overrides: dict[str, Any], expected: str) -> None:
    assert any(expected in p for p in chart_problems(manifests(overrides)))


TAMPERED = [
    (
        lambda o: o["Deployment"]["spec"]["template"]["spec"]["containers"][0]["volumeMounts"][0].update(
            subPath="truckllm.yaml"
        ),
        "subPath",
    ),
    (
        lambda o: o["Deployment"]["spec"]["template"]["spec"]["containers"][0]["readinessProbe"][
            "httpGet"
        ].update(path="/admin/v1/health"),
        "readinessProbe",
    ),
    (
        lambda o: o["Deployment"]["spec"]["template"]["spec"]["containers"][0]["livenessProbe"][
            "httpGet"
        ].update(path="/"),
        "livenessProbe",
    ),
    (lambda o: o["Deployment"]["spec"]["template"]["spec"]["containers"][0].pop("lifecycle"), "preStop"),
    (lambda o: o["Deployment"]["spec"]["template"]["spec"]["containers"][0].pop("envFrom"), "Secret"),
    (
        lambda o: o["Deployment"]["spec"]["template"]["spec"]["containers"][0].update(
            env=[{"name": "OPENAI_API_KEY", "value": "sk-1"}]
        ),
        "written in the pod spec",
    ),
    (
        lambda o: o["Deployment"]["spec"]["template"]["spec"]["securityContext"].update(runAsNonRoot=False),
        "root",
    ),
    (
        lambda o: o["Service"]["spec"]["selector"].update({"app.kubernetes.io/name": "other"}),
        "Service's selector",
    ),
    (
        lambda o: o["PodDisruptionBudget"]["spec"]["selector"]["matchLabels"].update({"x": "y"}),
        "PodDisruptionBudget's selector",
    ),
    (
        lambda o: o["Deployment"]["spec"]["template"]["spec"]["volumes"][0]["configMap"].update(name="other"),
        "not the chart's ConfigMap",
    ),
]


@pytest.mark.parametrize(("tamper", "expected"), TAMPERED, ids=[t[1] for t in TAMPERED])
def test_the_checks_catch_broken_manifests(tamper: Any, expected: str) -> None:
    objects = manifests({})
    tamper(objects)
    assert any(expected in p for p in chart_problems(objects))


def test_the_values_match_their_schema_and_hold_no_secret() -> None:
    schema = json.loads((DEPLOY / "helm" / "truckllm" / "values.schema.json").read_text())
    jsonschema.validate(CHART.values, schema)
    for bad in (
        {"replicaCount": 0},
        {"config": {"server": {"listen": "0.0.0.0:80"}}},
        {"image": {"pullPolicy": "Sometimes"}},
    ):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate({**CHART.values, **bad}, schema)
    text = (DEPLOY / "helm" / "truckllm" / "values.yaml").read_text()
    for match in re.finditer(r"^\s*-?\s*(token|value|password|api_key):\s*(\S+)", text, re.MULTILINE):
        assert match.group(2).startswith("${"), match.group(0)


def test_the_configmap_config_validates(tmp_path: Path) -> None:
    target = tmp_path / "truckllm.yaml"
    target.write_text(manifests({})["ConfigMap"]["data"]["truckllm.yaml"])
    result = validate_config(
        target,
        {"TRUCKLLM_ADMIN_TOKEN": "Zk3q9PwX7mLr2VtB8nYc", "TRUCKLLM_GATEWAY_KEY": "gk-abcdefghijklmnop"},
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_autoscaling_takes_over_the_replica_count() -> None:
    assert manifests({})["Deployment"]["spec"]["replicas"] == CHART.values["replicaCount"]
    scaled = manifests({"autoscaling": {"enabled": True}})
    assert "replicas" not in scaled["Deployment"]["spec"]
    assert scaled["HorizontalPodAutoscaler"]["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": scaled["Deployment"]["metadata"]["name"],
    }
    assert "HorizontalPodAutoscaler" not in manifests({})
    assert "PodDisruptionBudget" not in manifests({"podDisruptionBudget": {"enabled": False}})


def test_rollout_on_config_change_annotates_a_checksum_of_the_config() -> None:
    assert "annotations" not in manifests({})["Deployment"]["spec"]["template"]["metadata"]
    first = manifests({"rolloutOnConfigChange": True})["Deployment"]["spec"]["template"]["metadata"][
        "annotations"
    ]
    changed = manifests({"rolloutOnConfigChange": True, "config": {"server": {"graceful_timeout": "20s"}}})
    assert re.fullmatch(r"[0-9a-f]{64}", first["checksum/config"])
    assert (
        changed["Deployment"]["spec"]["template"]["metadata"]["annotations"]["checksum/config"]
        != first["checksum/config"]
    )


def test_the_image_tag_defaults_to_the_app_version() -> None:
    assert container(manifests({}))["image"] == f"truckllm:{CHART.meta['AppVersion']}"
    assert container(manifests({"image": {"tag": "1.2.3"}}))["image"] == "truckllm:1.2.3"


@pytest.mark.parametrize(
    "template",
    [
        "{{ range .Values.x }}{{ end }}",
        "{{ with .Values.x }}{{ end }}",
        "{{ $x := 1 }}",
        "{{ .Values.x | upper }}",
        "{{ if .Values.x }}",
        "{{ end }}",
    ],
)
def test_the_renderer_refuses_what_it_does_not_support(template: str, tmp_path: Path) -> None:
    chart = tmp_path / "c"
    (chart / "templates").mkdir(parents=True)
    (chart / "Chart.yaml").write_text("apiVersion: v2\nname: c\nversion: 0.1.0\n")
    (chart / "values.yaml").write_text("x: 1\n")
    (chart / "templates" / "t.yaml").write_text(template)
    with pytest.raises(Unsupported):
        Chart(chart).render()


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("a:\n  {{- if .Values.enabled }}\n  b: 1\n  {{- end }}\n", "a:\n  b: 1\n"),
        (
            "a:\n  {{- if not .Values.enabled }}\n  b: 1\n  {{- else }}\n  c: 2\n  {{- end }}\n",
            "a:\n  c: 2\n",
        ),
        ("m:\n  {{- toYaml .Values.m | nindent 2 }}\n", "m:\n  k: v\n  l:\n  - 1\n"),
        ('q: {{ .Values.s | quote }} d: {{ .Values.none | default "z" }}', 'q: "x y" d: z'),
        ('n: {{ .Release.Name | trunc 3 | trimSuffix "u" }}', "n: tr"),
    ],
)
def test_the_renderer_follows_go_template_semantics(template: str, expected: str, tmp_path: Path) -> None:
    chart = tmp_path / "c"
    (chart / "templates").mkdir(parents=True)
    (chart / "Chart.yaml").write_text("apiVersion: v2\nname: c\nversion: 0.1.0\n")
    (chart / "values.yaml").write_text("enabled: true\nm: {k: v, l: [1]}\ns: x y\n")
    (chart / "templates" / "t.yaml").write_text(template)
    assert Chart(chart).render()["t.yaml"] == expected
