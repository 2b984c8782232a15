"""deploy/kubernetes: valid against the Kubernetes schemas offline, and wired as the service needs.

The example overlay is rendered (kubectl kustomize, or tests/deploy/kustomize.py without kubectl)
with its secrets.env made from secrets.env.example, and every object is validated against the
schemas kubernetes-validate bundles.
"""

from __future__ import annotations

import base64
import shutil
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
from pydantic import ValidationError

from app.migrate import PROJECT_ROOT
from app.settings import Settings
from tests.deploy.kustomize import (
    Manifest,
    normalized,
    pod_containers,
    pod_spec,
    render,
    render_here,
    render_with_kubectl,
)
from tests.deploy.settings_names import setting_names

KUBERNETES = PROJECT_ROOT / "deploy" / "kubernetes"
# The oldest Kubernetes we support and the newest kubernetes-validate knows.
SCHEMA_VERSIONS = ("1.30.0", kubernetes_validate.latest_version())
SECRET_SETTINGS = {
    "DATABASE_URL",
    "CTCT_CLIENT_ID",
    "CTCT_CLIENT_SECRET",
    "CTCT_API_KEY",
    "PROVISION_ENCRYPTION_KEYS",
    "WEBHOOK_SECRET",
    "CURSOR_SECRET",
    "CONSOLE_SESSION_SECRET",
}
# uvicorn's timeout_graceful_shutdown in `partnergate serve` (app/cli.py).
API_SHUTDOWN_SECONDS = 10
# The worker finishes a job for CTCT_TIMEOUT_SECONDS + SHUTDOWN_SLACK_SECONDS (app/worker/main.py).
WORKER_SHUTDOWN_SLACK_SECONDS = 5


@pytest.fixture(scope="module")
def overlay(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of deploy/kubernetes whose example overlay has secrets.env from its example."""
    root = tmp_path_factory.mktemp("deploy") / "kubernetes"
    shutil.copytree(KUBERNETES, root, ignore=shutil.ignore_patterns("secrets.env"))
    example = root / "overlays" / "example"
    shutil.copy(example / "secrets.env.example", example / "secrets.env")
    return example


@pytest.fixture(scope="module")
def manifests(overlay: Path) -> list[Manifest]:
    return render(overlay)


def one(manifests: list[Manifest], kind: str, name: str | None = None) -> Manifest:
    found = [
        m
        for m in manifests
        if m["kind"] == kind and (name is None or m["metadata"]["name"].startswith(name))
    ]
    assert len(found) == 1, f"{kind} {name}: {[m['metadata']['name'] for m in found]}"
    return found[0]


def config_data(manifests: list[Manifest]) -> dict[str, str]:
    data: dict[str, str] = one(manifests, "ConfigMap", "partnergate-settings")["data"]
    return data


def secret_data(manifests: list[Manifest]) -> dict[str, str]:
    data = one(manifests, "Secret", "partnergate-secrets")["data"]
    return {key: base64.b64decode(value).decode() for key, value in data.items()}


def container(manifests: list[Manifest], deployment: str) -> dict[str, Any]:
    [found] = pod_containers(one(manifests, "Deployment", deployment))
    return found


@pytest.mark.parametrize("version", SCHEMA_VERSIONS)
@pytest.mark.parametrize("directory", ["base", "overlays/example"])
def test_every_object_is_valid_against_the_kubernetes_schemas(
    overlay: Path, directory: str, version: str
) -> None:
    rendered = render(overlay.parent.parent / directory)
    assert rendered
    for manifest in rendered:
        try:
            kubernetes_validate.validate(manifest, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            raise AssertionError(
                f"{manifest['kind']} {manifest['metadata']['name']}: {exc.message} "
                f"at {'.'.join(str(p) for p in exc.path)}"
            ) from None


def test_the_overlay_has_everything_a_deployment_needs(manifests: list[Manifest]) -> None:
    kinds = sorted(m["kind"] for m in manifests)

    assert kinds == sorted(
        [
            "ConfigMap",
            "Deployment",
            "Deployment",
            "HorizontalPodAutoscaler",
            "Job",
            "Namespace",
            "NetworkPolicy",
            "PodDisruptionBudget",
            "PodDisruptionBudget",
            "Secret",
            "Service",
            "ServiceAccount",
        ]
    )
    assert {m["metadata"].get("namespace") for m in manifests if m["kind"] != "Namespace"} == {
        "partnergate"
    }
    for manifest in manifests:
        for each in pod_containers(manifest):
            assert each["image"] == "registry.example.com/partnergate:1.0.0"


def test_every_setting_comes_from_the_configmap_or_the_secret(manifests: list[Manifest]) -> None:
    config, secret = config_data(manifests).keys(), secret_data(manifests).keys()

    assert not config & secret
    assert config | secret == setting_names()
    assert secret == SECRET_SETTINGS
    configmap = one(manifests, "ConfigMap")["metadata"]["name"]
    secret_name = one(manifests, "Secret")["metadata"]["name"]
    for manifest in manifests:
        for each in pod_containers(manifest):
            assert "env" not in each, "settings come from the ConfigMap and the Secret only"
            assert each["envFrom"] == [
                {"configMapRef": {"name": configmap}},
                {"secretRef": {"name": secret_name}},
            ]


def _settings(values: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Settings:
    for name in setting_names():
        monkeypatch.delenv(name, raising=False)
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    return Settings(_env_file=None)


def test_the_configmap_with_real_secrets_is_a_valid_production_configuration(
    manifests: list[Manifest], monkeypatch: pytest.MonkeyPatch
) -> None:
    filled = {
        "DATABASE_URL": "postgresql+psycopg://partnergate:pw@db:5432/partnergate",
        "CTCT_CLIENT_ID": "partner-client-4711",
        "CTCT_CLIENT_SECRET": "partner-secret-4711",
        "CTCT_API_KEY": "api-key-4711",
        "PROVISION_ENCRYPTION_KEYS": base64.urlsafe_b64encode(b"k" * 32).decode(),
        "WEBHOOK_SECRET": "",
        "CURSOR_SECRET": "",
    }

    settings = _settings({**config_data(manifests), **filled}, monkeypatch)

    assert settings.environment == "production"
    assert settings.ctct.partner_id == "yourpartnerid"
    assert settings.webhook.ctct_jwks_url
    assert settings.webhook.secret is None


def test_the_example_secrets_are_refused_until_filled_in(
    manifests: list[Manifest], monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(ValidationError) as caught:
        _settings({**config_data(manifests), **secret_data(manifests)}, monkeypatch)

    for name in ("CTCT_CLIENT_SECRET", "CTCT_API_KEY", "PROVISION_ENCRYPTION_KEYS"):
        assert f"{name} is empty or a placeholder" in str(caught.value)


def _http_probe(probe: dict[str, Any], ports: dict[str, int]) -> tuple[str, int]:
    action = probe["httpGet"]
    port = action["port"]
    return action["path"], ports[port] if isinstance(port, str) else port


def _ports(each: dict[str, Any]) -> dict[str, int]:
    return {port["name"]: port["containerPort"] for port in each["ports"]}


def test_the_api_probes_its_readiness_and_liveness_on_its_port(manifests: list[Manifest]) -> None:
    api = container(manifests, "partnergate-api")
    ports = _ports(api)
    served_port = int(api["command"][api["command"].index("--port") + 1])

    assert _http_probe(api["startupProbe"], ports) == ("/healthz", served_port)
    assert _http_probe(api["readinessProbe"], ports) == ("/readyz", served_port)
    assert _http_probe(api["livenessProbe"], ports) == ("/healthz", served_port)


def test_the_worker_probes_its_own_port(manifests: list[Manifest]) -> None:
    worker = container(manifests, "partnergate-worker")
    worker_port = int(config_data(manifests)["WORKER_PORT"])

    assert _http_probe(worker["startupProbe"], _ports(worker)) == ("/healthz", worker_port)
    assert _http_probe(worker["livenessProbe"], _ports(worker)) == ("/healthz", worker_port)
    annotations = one(manifests, "Deployment", "partnergate-worker")["spec"]["template"]["metadata"]
    assert annotations["annotations"]["prometheus.io/port"] == str(worker_port)


def test_the_api_runs_two_or_more_replicas_kept_by_the_budget_and_the_autoscaler(
    overlay: Path, manifests: list[Manifest]
) -> None:
    base = render(overlay.parent.parent / "base")
    api = one(manifests, "Deployment", "partnergate-api")
    pod_labels = api["spec"]["template"]["metadata"]["labels"]
    pdb = one(manifests, "PodDisruptionBudget", "partnergate-api")
    hpa = one(manifests, "HorizontalPodAutoscaler")

    assert one(base, "Deployment", "partnergate-api")["spec"]["replicas"] >= 2
    assert api["spec"]["replicas"] == 3
    assert pdb["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    assert pdb["spec"]["minAvailable"] < api["spec"]["replicas"]
    assert hpa["spec"]["scaleTargetRef"]["name"] == api["metadata"]["name"]
    assert hpa["spec"]["minReplicas"] >= 2
    worker_pdb = one(manifests, "PodDisruptionBudget", "partnergate-worker")
    assert worker_pdb["spec"]["maxUnavailable"] == 1


def test_pods_run_non_root_on_a_read_only_root_with_requests_and_limits(
    manifests: list[Manifest],
) -> None:
    pods = [m for m in manifests if pod_spec(m) is not None]
    assert len(pods) == 3
    for manifest in pods:
        spec = pod_spec(manifest)
        assert spec is not None
        assert spec["securityContext"]["runAsNonRoot"] is True
        assert spec["automountServiceAccountToken"] is False
        for each in pod_containers(manifest):
            assert each["securityContext"]["readOnlyRootFilesystem"] is True
            assert each["securityContext"]["allowPrivilegeEscalation"] is False
            assert each["securityContext"]["capabilities"]["drop"] == ["ALL"]
            for bound in ("requests", "limits"):
                assert {"cpu", "memory"} <= each["resources"][bound].keys()


def test_grace_periods_cover_each_process_graceful_shutdown(manifests: list[Manifest]) -> None:
    api = one(manifests, "Deployment", "partnergate-api")["spec"]["template"]["spec"]
    pre_stop = int(api["containers"][0]["lifecycle"]["preStop"]["exec"]["command"][-1])
    worker = one(manifests, "Deployment", "partnergate-worker")["spec"]["template"]["spec"]
    ctct_timeout = float(config_data(manifests)["CTCT_TIMEOUT_SECONDS"])

    assert api["terminationGracePeriodSeconds"] >= pre_stop + API_SHUTDOWN_SECONDS
    assert api["terminationGracePeriodSeconds"] <= pre_stop + API_SHUTDOWN_SECONDS + 10
    assert worker["terminationGracePeriodSeconds"] >= ctct_timeout + WORKER_SHUTDOWN_SLACK_SECONDS


def test_the_migration_job_migrates_and_is_retried(manifests: list[Manifest]) -> None:
    job = one(manifests, "Job")
    [each] = pod_containers(job)

    assert each["command"] == ["partnergate", "migrate"]
    assert job["spec"]["template"]["spec"]["restartPolicy"] in ("OnFailure", "Never")
    assert job["spec"]["backoffLimit"] >= 1


def test_the_service_and_the_network_policy_let_traffic_reach_the_api(
    manifests: list[Manifest],
) -> None:
    api = one(manifests, "Deployment", "partnergate-api")
    pod_labels = api["spec"]["template"]["metadata"]["labels"]
    service = one(manifests, "Service")
    policy = one(manifests, "NetworkPolicy")

    assert service["spec"]["selector"].items() <= pod_labels.items()
    assert service["spec"]["ports"][0]["targetPort"] in _ports(
        api["spec"]["template"]["spec"]["containers"][0]
    )
    assert policy["spec"]["podSelector"]["matchLabels"].items() <= pod_labels.items()
    ingress_ports = {p["port"] for rule in policy["spec"]["ingress"] for p in rule["ports"]}
    egress_ports = {p["port"] for rule in policy["spec"]["egress"] for p in rule["ports"]}
    assert {8000, 8001} <= ingress_ports
    assert {53, 443, 5432} <= egress_ports


def test_the_fallback_renderer_agrees_with_kubectl(overlay: Path) -> None:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed; the fallback renderer is what the other tests use")

    assert normalized(render_here(overlay)) == normalized(render_with_kubectl(kubectl, overlay))
