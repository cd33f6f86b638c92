"""The deployment files as shipped: docker-compose.yml, the Dockerfile and deploy/k8s/, read without Docker or a
cluster. Every service the hub has runs, with a healthcheck or probes; the keys come from one place; every
``NSW_`` variable set is one the hub reads; the manifests are valid Kubernetes objects (kubernetes-validate, the
API's own schemas, shipped with the package)."""

from __future__ import annotations

import ast
import re
import tomllib
from functools import cache
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from broker._hub import SERVICES

ROOT = Path(__file__).resolve().parents[1]
K8S = ROOT / "deploy" / "k8s"
#: The Kubernetes version the manifests are checked against (one a supported cluster runs).
K8S_VERSION = "1.32.0"
ADMIN_PORT = 9464


@cache
def hub_variables() -> tuple[frozenset[str], tuple[str, ...]]:
    """The ``NSW_`` names the hub's code reads (string literals), and the prefixes it completes at run time
    (``f"NSW_DEADLINE_{agency}"``)."""
    names: set[str] = set()
    prefixes: set[str] = set()
    packages = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]
    for package in packages["include"]:
        for path in (ROOT / package.rstrip("*")).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Constant) and isinstance(node.value, str):
                    names.update(re.findall(r"^NSW_[A-Z0-9_]+$", node.value))
                    # a setting declared per agency (config/_catalogue.py: "NSW_DEADLINE_<AGENCY>")
                    prefixes.update(re.findall(r"^(NSW_[A-Z0-9_]*_)<[A-Z]+>", node.value))
                if isinstance(node, ast.JoinedStr) and node.values and isinstance(node.values[0], ast.Constant):
                    head = str(node.values[0].value)
                    if re.fullmatch(r"NSW_[A-Z0-9_]*_", head):
                        prefixes.add(head)
    return frozenset(names), tuple(sorted(prefixes))


def _unknown(variables: set[str]) -> set[str]:
    names, prefixes = hub_variables()
    return {v for v in variables if v.startswith("NSW_") and v not in names and not v.startswith(prefixes)}


def test_the_variables_the_hub_reads_are_found() -> None:
    names, prefixes = hub_variables()
    assert {"NSW_BOOTSTRAP", "NSW_STATE_DIR", "NSW_ADMIN_PORT", "NSW_WEBHOOK_KEY", "NSW_DEV_KEY"} <= names
    assert "NSW_DEADLINE_" in prefixes
    assert _unknown({"NSW_BOOTSTRAP", "NSW_DEADLINE_SPS", "NSW_BOOTSTRAPS", "NSW_ADMIN"}) == {"NSW_BOOTSTRAPS",
                                                                                            "NSW_ADMIN"}


# --- docker-compose.yml ----------------------------------------------------------------------------------


@cache
def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return loaded


def _only(command: list[str]) -> list[str]:
    """The services ``nsw serve --only A,B`` runs (every one without ``--only``)."""
    if command[:2] != ["nsw", "serve"]:
        return []
    return command[command.index("--only") + 1].split(",") if "--only" in command else list(SERVICES)


def _hub_services() -> dict[str, dict[str, Any]]:
    return {name: s for name, s in compose()["services"].items() if _only(s.get("command", []))}


def test_compose_runs_every_service_of_the_hub_once() -> None:
    ran = [service for s in _hub_services().values() for service in _only(s["command"])]
    assert sorted(ran) == sorted(SERVICES)


def test_compose_kafka_is_the_official_image_in_kraft_mode() -> None:
    kafka = compose()["services"]["kafka"]
    assert kafka["image"].startswith("apache/kafka:")
    assert kafka["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert "kafka-data:/var/lib/kafka/data" in kafka["volumes"]


def test_every_long_running_compose_service_has_a_healthcheck() -> None:
    for name, service in compose()["services"].items():
        if service.get("restart") == "no":
            continue  # the one-shot init
        check = service.get("healthcheck", {}).get("test")
        assert check, f"{name} has no healthcheck"
    for name, service in _hub_services().items():
        assert f"http://127.0.0.1:{ADMIN_PORT}/readyz" in " ".join(service["healthcheck"]["test"]), name
        assert service["environment"]["NSW_ADMIN_PORT"] == str(ADMIN_PORT), name
        assert service["environment"]["NSW_ADMIN_HOST"] == "0.0.0.0", name


def test_compose_provisions_topics_and_keys_once_in_a_shared_volume() -> None:
    services = compose()["services"]
    init = services["init"]
    assert init["restart"] == "no"
    assert init["command"] == ["sh", "-c", "nsw ops topics create && nsw provision"]
    state = init["environment"]["NSW_STATE_DIR"]
    assert f"nsw-state:{state}" in init["volumes"]
    assert "nsw-state" in compose()["volumes"]
    for name, service in _hub_services().items():
        assert service["environment"]["NSW_STATE_DIR"] == state, name
        assert f"nsw-state:{state}" in service["volumes"], name
        assert service["environment"]["NSW_DEV_KEY"] == "0", f"{name} would make its own development key"
        assert service["depends_on"]["init"] == {"condition": "service_completed_successfully"}, name
        assert service["depends_on"]["kafka"] == {"condition": "service_healthy"}, name
        # one webhook and one console key for all: the same setting (or, unset, the same file) everywhere
        assert service["environment"]["NSW_WEBHOOK_KEY"] == init["environment"]["NSW_WEBHOOK_KEY"], name
        assert service["environment"]["NSW_CONSOLE_KEY"] == init["environment"]["NSW_CONSOLE_KEY"], name


def test_compose_sets_only_variables_the_hub_reads() -> None:
    variables = {v for s in compose()["services"].values() for v in s.get("environment", {})}
    assert {"NSW_BOOTSTRAP", "NSW_STATE_DIR"} <= variables
    assert not _unknown(variables)


def test_the_image_holds_every_package() -> None:
    packages = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]
    copied = set(re.findall(r"^COPY (\w+) \./\1$", (ROOT / "Dockerfile").read_text(), flags=re.MULTILINE))
    assert copied == {p.rstrip("*") for p in packages["include"]}
    image = compose()["services"]["init"]["image"]
    assert all(s["image"] == image for s in _hub_services().values())


# --- deploy/k8s ------------------------------------------------------------------------------------------


@cache
def manifests() -> dict[str, list[dict[str, Any]]]:
    return {path.name: [d for d in yaml.safe_load_all(path.read_text()) if d]
            for path in sorted(K8S.glob("*.yaml")) if path.name != "kustomization.yaml"}


def _objects(kind: str) -> list[dict[str, Any]]:
    return [d for docs in manifests().values() for d in docs if d["kind"] == kind]


def _deployments() -> dict[str, dict[str, Any]]:
    """Each Deployment by the hub service its container runs."""
    found: dict[str, dict[str, Any]] = {}
    for deployment in _objects("Deployment"):
        (container,) = deployment["spec"]["template"]["spec"]["containers"]
        (service,) = _only(container["command"])
        assert service not in found, f"two Deployments run {service}"
        found[service] = deployment
    return found


def _config() -> dict[str, str]:
    (config,) = _objects("ConfigMap")
    data: dict[str, str] = config["data"]
    return data


@pytest.mark.parametrize("name", sorted(p.name for p in K8S.glob("*.yaml") if p.name != "kustomization.yaml"))
def test_each_manifest_is_a_valid_kubernetes_object(name: str) -> None:
    for doc in manifests()[name]:
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


def test_a_broken_manifest_is_refused() -> None:
    (deployment,) = [d for d in manifests()["router.yaml"] if d["kind"] == "Deployment"]
    broken = {**deployment, "spec": {**deployment["spec"], "replicas": "two"}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, K8S_VERSION, strict=True)


def test_kustomization_lists_every_manifest_but_the_secret_example() -> None:
    listed = yaml.safe_load((K8S / "kustomization.yaml").read_text())["resources"]
    assert sorted(listed) == sorted(n for n in manifests() if n != "secret.example.yaml")
    assert [d["kind"] for d in manifests()["secret.example.yaml"]] == ["Secret"]


def test_a_deployment_per_service_with_probes_on_the_admin_port() -> None:
    deployments = _deployments()
    assert sorted(deployments) == sorted(SERVICES)
    assert _config()["NSW_ADMIN_PORT"] == str(ADMIN_PORT)
    assert deployments["ingress"]["spec"]["replicas"] >= 2
    for service, deployment in deployments.items():
        spec = deployment["spec"]
        assert spec["selector"]["matchLabels"].items() <= spec["template"]["metadata"]["labels"].items(), service
        assert 1 <= spec["replicas"] <= int(_config()["NSW_PARTITIONS"]), service  # each replica owns partitions
        (container,) = spec["template"]["spec"]["containers"]
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        assert ports["admin"] == ADMIN_PORT, service
        for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz"), ("startupProbe", "/healthz")):
            assert container[probe]["httpGet"] == {"path": path, "port": "admin"}, (service, probe)
        assert container["envFrom"] == [{"configMapRef": {"name": "nsw-config"}}], service
        assert container["securityContext"]["readOnlyRootFilesystem"] is True, service
        mounts = {m["mountPath"] for m in container["volumeMounts"]}
        assert _config()["NSW_STATE_DIR"] in mounts, service


def test_the_shared_keys_come_from_the_secret() -> None:
    (secret,) = _objects("Secret")
    entries = set(secret["stringData"])
    deployments = _deployments()
    for service in ("ingress", "notifier"):  # they sign responses and open webhook secrets
        spec = deployments[service]["spec"]["template"]["spec"]
        (container,) = spec["containers"]
        refs = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in container["env"]}
        assert refs["NSW_WEBHOOK_KEY"] == {"name": secret["metadata"]["name"], "key": "NSW_WEBHOOK_KEY"}, service
        assert {r["key"] for r in refs.values()} <= entries
        volumes = {v["name"]: v for v in spec["volumes"]}
        keys = next(m for m in container["volumeMounts"] if m["mountPath"] == f"{_config()['NSW_STATE_DIR']}/keys")
        mounted = volumes[keys["name"]]["secret"]
        assert mounted["secretName"] == secret["metadata"]["name"], service
        assert {i["key"] for i in mounted["items"]} <= entries
        assert all(i["path"].endswith(".jwk") for i in mounted["items"])  # what the signing key store reads
    (ingress,) = deployments["ingress"]["spec"]["template"]["spec"]["containers"]
    assert "NSW_CONSOLE_KEY" in {e["name"] for e in ingress["env"]}
    assert _config()["NSW_DEV_KEY"] == "0"  # no instance makes a development key of its own


def test_the_ingress_service_reaches_the_ingress_pods() -> None:
    (service,) = _objects("Service")
    ingress = _deployments()["ingress"]
    assert service["spec"]["selector"].items() <= ingress["spec"]["template"]["metadata"]["labels"].items()
    (container,) = ingress["spec"]["template"]["spec"]["containers"]
    assert {p["targetPort"] for p in service["spec"]["ports"]} <= {p["name"] for p in container["ports"]}
    assert "--host" in container["command"]  # listens beyond loopback


def test_the_topics_job_and_every_container_name_real_commands() -> None:
    (job,) = _objects("Job")
    (container,) = job["spec"]["template"]["spec"]["containers"]
    assert container["command"] == ["nsw", "ops", "topics", "create"]


def test_the_manifests_set_only_variables_the_hub_reads() -> None:
    variables = set(_config())
    for deployment in _objects("Deployment"):
        for container in deployment["spec"]["template"]["spec"]["containers"]:
            variables |= {e["name"] for e in container.get("env", [])}
    assert not _unknown(variables)
