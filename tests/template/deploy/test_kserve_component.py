"""deploy/runtime/kserve: the component that switches an overlay to the KServe runtime renders and
validates offline on both deploy shapes, and keeps the pod's shape (the gate the one way in)."""

from __future__ import annotations

import shutil

import pytest

from tests.template.deploy.conftest import ROOT, render, validate


@pytest.mark.parametrize("shape", ["overlays/staging", "overlays/plain-staging"])
def test_the_kserve_component_renders_validates_and_keeps_the_gate(shape, tmp_path):
    deploy = tmp_path / "deploy"
    shutil.copytree(ROOT / "deploy", deploy)
    overlay = deploy / shape / "kustomization.yaml"
    text = overlay.read_text()
    assert "  - ../../release/staging\n" in text
    overlay.write_text(
        text.replace("  - ../../release/staging\n", "  - ../../release/staging\n  - ../../runtime/kserve\n")
    )
    before = render(ROOT / "deploy" / shape)
    docs = render(overlay.parent)
    for doc in docs:
        validate(doc)
    workload = next(d for d in docs if d["kind"] in ("InferenceService", "Deployment"))
    pod = (
        workload["spec"]["predictor"]
        if workload["kind"] == "InferenceService"
        else workload["spec"]["template"]["spec"]
    )
    model, gate = pod["containers"]
    env = {e["name"]: e["value"] for e in model["env"]}
    assert env["MLOPS_RUNTIME"] == "kserve"  # serve.healthcheck asks /v2/models/<m>/ready
    assert env["TS_INFERENCE_ADDRESS"] == "http://127.0.0.1:8080" and env["TS_METRICS_ADDRESS"].startswith(
        "http://127.0.0.1:"
    )
    assert env["TS_DISABLE_TOKEN_AUTHORIZATION"] == "true" and "ports" not in model
    assert workload["metadata"]["annotations"]["mlops.ai/runtime"] == "kserve"
    old = next(d for d in before if d["kind"] == workload["kind"])
    old_pod = (
        old["spec"]["predictor"] if old["kind"] == "InferenceService" else old["spec"]["template"]["spec"]
    )
    assert gate == old_pod["containers"][1]  # the gate, untouched
    assert [d for d in docs if d["kind"] != workload["kind"]] == [
        d for d in before if d["kind"] != workload["kind"]
    ]
