"""Every overlay renders and validates offline, and the validators refuse what a cluster would refuse."""

from __future__ import annotations

import copy

import jsonschema
import kubernetes_validate
import pytest
import yaml

from tests.deploy.conftest import ROOT, render, validate

DEPLOY = ROOT / "deploy"
OVERLAYS = ("staging", "production", "plain-staging", "plain-production")
DIGEST_IMAGE = r"^[a-z0-9.\-/]+@sha256:[0-9a-f]{64}$"


def test_every_overlay_is_listed():
    assert sorted(p.name for p in (DEPLOY / "overlays").iterdir()) == sorted(OVERLAYS)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlay_renders_and_validates(overlay):
    docs = render(DEPLOY / "overlays" / overlay)
    env = overlay.removeprefix("plain-")
    kinds = sorted(d["kind"] for d in docs)
    assert kinds == (["Deployment", "Service"] if overlay.startswith("plain") else ["InferenceService"])
    for doc in docs:
        validate(doc)
        assert doc["metadata"]["namespace"] == f"mlops-{env}"
        assert doc["metadata"]["labels"]["mlops.ai/environment"] == env
        assert "mlops.ai/model-version" in doc["metadata"]["annotations"]
    pod = next(
        d["spec"]["predictor"] if d["kind"] == "InferenceService" else d["spec"]["template"]["spec"]
        for d in docs
        if d["kind"] in ("InferenceService", "Deployment")
    )
    (container,) = pod["containers"]
    import re

    assert re.match(DIGEST_IMAGE, container["image"]), container["image"]
    # readiness: the image's own check (the pod's key, every worker READY); limits set
    assert container["readinessProbe"]["exec"]["command"] == ["python3", "-m", "serve.healthcheck"]
    assert container["resources"]["requests"] and container["resources"]["limits"]
    assert container["ports"][0]["containerPort"] == 8080


def test_production_has_a_canary_share_and_staging_none():
    (prod,) = render(DEPLOY / "overlays" / "production")
    (stage,) = render(DEPLOY / "overlays" / "staging")
    assert prod["spec"]["predictor"]["canaryTrafficPercent"] in range(0, 101)
    assert "canaryTrafficPercent" not in stage["spec"]["predictor"]
    assert prod["metadata"]["annotations"]["serving.kserve.io/deploymentMode"] == "Serverless"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_argo_application_per_overlay(overlay):
    app = yaml.safe_load((DEPLOY / "argocd" / f"{overlay}.yaml").read_text())
    validate(app)
    assert app["spec"]["source"]["path"] == f"deploy/overlays/{overlay}"
    assert (ROOT / app["spec"]["source"]["path"] / "kustomization.yaml").exists()
    assert app["spec"]["destination"]["namespace"] == f"mlops-{overlay.removeprefix('plain-')}"
    if overlay.endswith("staging"):
        assert app["spec"]["syncPolicy"]["automated"]["selfHeal"] is True


# -- the validators bite: each mistake a cluster (or strict apply) refuses is refused here -----------------
@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("spec", "predictor", "canaryTraficPercent"), 10),  # a typo: strict validation refuses it
        (("spec", "predictor", "canaryTrafficPercent"), "ten"),  # wrong type
        (("spec", "predictor", "containers", 0, "ports", 0, "containerPort"), "8080"),
        (("spec", "predictor", "minReplicas"), "one"),
    ],
)
def test_inference_service_schema_refuses(path, value):
    (doc,) = render(DEPLOY / "overlays" / "production")
    bad = copy.deepcopy(doc)
    node = bad
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    with pytest.raises(jsonschema.ValidationError):
        validate(bad)


def test_core_schema_refuses_a_bad_deployment():
    docs = render(DEPLOY / "overlays" / "plain-production")
    deployment = copy.deepcopy(next(d for d in docs if d["kind"] == "Deployment"))
    deployment["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {}  # typo
    with pytest.raises(kubernetes_validate.ValidationError):
        validate(deployment)


def test_argo_schema_refuses_a_bad_application():
    app = yaml.safe_load((DEPLOY / "argocd" / "production.yaml").read_text())
    app["spec"]["syncPolicy"]["automated"]["prune"] = "yes"
    with pytest.raises(jsonschema.ValidationError):
        validate(app)
