"""Render a kustomization: with `kubectl kustomize` when kubectl is installed, else with the
few kustomize features our manifests use (resources, namespace, images, replicas, ConfigMap and
Secret generators from env files). `test_kubernetes.py` checks both render the same objects.
"""

from __future__ import annotations

import base64
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import yaml

Manifest = dict[str, Any]
CLUSTER_SCOPED = {"Namespace"}


def render(directory: Path) -> list[Manifest]:
    """The objects `kubectl apply -k directory` would create."""
    kubectl = shutil.which("kubectl")
    return render_with_kubectl(kubectl, directory) if kubectl else render_here(directory)


def render_with_kubectl(kubectl: str, directory: Path) -> list[Manifest]:
    result = subprocess.run(
        [kubectl, "kustomize", str(directory)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def render_here(directory: Path) -> list[Manifest]:
    """kustomize's behaviour for the features our kustomizations use, and nothing more."""
    kustomization = yaml.safe_load((directory / "kustomization.yaml").read_text())
    known = {
        "apiVersion",
        "kind",
        "resources",
        "namespace",
        "images",
        "replicas",
        "configMapGenerator",
        "secretGenerator",
    }
    unknown = set(kustomization) - known
    assert not unknown, f"the fallback renderer does not know {sorted(unknown)}"
    manifests: list[Manifest] = []
    for entry in kustomization.get("resources", []):
        path = directory / entry
        if path.is_dir():
            manifests.extend(render_here(path))
        else:
            manifests.extend(doc for doc in yaml.safe_load_all(path.read_text()) if doc)
    for generator in kustomization.get("configMapGenerator", []):
        _generate(manifests, directory, generator, "ConfigMap")
    for generator in kustomization.get("secretGenerator", []):
        _generate(manifests, directory, generator, "Secret")
    for image in kustomization.get("images", []):
        _set_image(manifests, image)
    for replicas in kustomization.get("replicas", []):
        for manifest in manifests:
            if manifest["metadata"]["name"] == replicas["name"] and "replicas" in manifest.get(
                "spec", {}
            ):
                manifest["spec"]["replicas"] = replicas["count"]
    if "namespace" in kustomization:
        for manifest in manifests:
            if manifest["kind"] not in CLUSTER_SCOPED:
                manifest["metadata"]["namespace"] = kustomization["namespace"]
    return manifests


def read_env_file(path: Path) -> dict[str, str]:
    """kustomize's env files: NAME=value lines, `#` comments, values taken as written."""
    values = {}
    for line in path.read_text().splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        name, _, value = line.partition("=")
        values[name.strip()] = value
    return values


def _generate(manifests: list[Manifest], directory: Path, generator: Any, kind: str) -> None:
    values: dict[str, str] = {}
    for env in generator.get("envs", []):
        values.update(read_env_file(directory / env))
    if kind == "Secret":
        data = {key: base64.b64encode(value.encode()).decode() for key, value in values.items()}
    else:
        data = values
    name = generator["name"]
    if generator.get("behavior") == "merge":
        [existing] = [m for m in manifests if m["kind"] == kind and m["metadata"]["name"] == name]
        existing["data"] = {**existing.get("data", {}), **data}
        return
    manifest: Manifest = {"apiVersion": "v1", "kind": kind, "metadata": {"name": name}}
    manifest["data"] = data
    if kind == "Secret":
        manifest["type"] = "Opaque"
    manifests.append(manifest)


def _set_image(manifests: list[Manifest], image: Any) -> None:
    for manifest in manifests:
        for container in pod_containers(manifest):
            reference = container["image"]
            name, _, tag = reference.partition(":")
            if name != image["name"]:
                continue
            container["image"] = f"{image.get('newName', name)}:{image.get('newTag', tag)}"


def pod_spec(manifest: Manifest) -> dict[str, Any] | None:
    """The pod template's spec of a Deployment or a Job."""
    if manifest["kind"] not in ("Deployment", "Job"):
        return None
    spec: dict[str, Any] = manifest["spec"]["template"]["spec"]
    return spec


def pod_containers(manifest: Manifest) -> list[dict[str, Any]]:
    spec = pod_spec(manifest)
    return [] if spec is None else [*spec.get("initContainers", []), *spec["containers"]]


def normalized(manifests: list[Manifest]) -> list[Manifest]:
    """Without generated-name hashes, Secret values decoded, sorted: for comparing renderings."""
    text = yaml.safe_dump_all(manifests)
    text = re.sub(r"(partnergate-(?:settings|secrets))-[a-z0-9]{10}\b", r"\1", text)
    result = []
    for manifest in yaml.safe_load_all(text):
        if manifest["kind"] == "Secret":
            manifest["data"] = {
                key: base64.b64decode(value).decode() for key, value in manifest["data"].items()
            }
        result.append(manifest)
    return sorted(result, key=lambda m: (m["kind"], m["metadata"]["name"]))
