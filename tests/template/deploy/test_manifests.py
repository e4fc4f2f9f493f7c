"""Every overlay renders and validates offline, and the validators refuse what a cluster would refuse."""

from __future__ import annotations

import copy
import json
import re

import jsonschema
import kubernetes_validate
import pytest
import yaml

from tests.template.deploy.conftest import ROOT, render, validate

DEPLOY = ROOT / "deploy"
OVERLAYS = ("staging", "production", "plain-staging", "plain-production")
DIGEST_IMAGE = r"^[a-z0-9.\-/]+@sha256:[0-9a-f]{64}$"
GATE_HTTP, GATE_METRICS = 8000, 9102  # deploy/gate/nginx.conf's two listeners


def gate_conf(overlay: str = "production") -> str:
    """The gate's nginx.conf as rendered into the overlay's ConfigMap."""
    (config,) = [d for d in render(DEPLOY / "overlays" / overlay) if d["kind"] == "ConfigMap"]
    return config["data"]["nginx.conf"]


def test_every_overlay_is_listed():
    assert sorted(p.name for p in (DEPLOY / "overlays").iterdir()) == sorted(OVERLAYS)


def pod_of(docs: list[dict]) -> dict:
    return next(
        d["spec"]["predictor"] if d["kind"] == "InferenceService" else d["spec"]["template"]["spec"]
        for d in docs
        if d["kind"] in ("InferenceService", "Deployment")
    )


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlay_renders_and_validates(overlay):
    docs = render(DEPLOY / "overlays" / overlay)
    env = overlay.removeprefix("plain-")
    kinds = sorted(d["kind"] for d in docs)
    plain = ["ConfigMap", "Deployment", "NetworkPolicy", "Service"]
    assert kinds == (plain if overlay.startswith("plain") else ["ConfigMap", "InferenceService"])
    for doc in docs:
        validate(doc)
        assert doc["metadata"]["namespace"] == f"mlops-{env}"
        assert doc["metadata"]["labels"]["mlops.ai/environment"] == env
        assert "mlops.ai/model-version" in doc["metadata"]["annotations"]
    model, gate = pod_of(docs)["containers"]
    assert re.match(DIGEST_IMAGE, model["image"]), model["image"]
    # readiness: the image's own check (every worker READY); liveness: /ping from inside the pod
    assert model["readinessProbe"]["exec"]["command"] == ["python3", "-m", "serve.healthcheck"]
    assert model["livenessProbe"]["exec"]["command"] == ["python3", "-m", "serve.healthcheck", "--live"]
    assert model["resources"]["requests"] and model["resources"]["limits"]
    assert gate["resources"]["limits"] and gate["securityContext"]["readOnlyRootFilesystem"] is True


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_torchserve_is_reachable_only_through_the_gate(overlay):
    """TorchServe's inference, management and metrics listen on 127.0.0.1 in the pod; the only declared
    ports, the Service's targets and the scrape annotation are the gate's."""
    docs = render(DEPLOY / "overlays" / overlay)
    pod = pod_of(docs)
    model, gate = pod["containers"]
    env = {e["name"]: e["value"] for e in model["env"]}
    for kind in ("INFERENCE", "MANAGEMENT", "METRICS"):
        assert env[f"TS_{kind}_ADDRESS"].startswith("http://127.0.0.1:"), kind
    assert env["TS_DISABLE_TOKEN_AUTHORIZATION"] == "true"  # the gate authenticates instead
    assert "ports" not in model
    gate_ports = {p["containerPort"] for p in gate["ports"]}
    assert gate_ports <= {GATE_HTTP, GATE_METRICS} and GATE_HTTP in gate_ports
    workload = next(d for d in docs if d["kind"] in ("InferenceService", "Deployment"))
    annotations = workload["metadata"].get("annotations", {})
    if workload["kind"] == "Deployment":
        annotations = workload["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/port"] == str(GATE_METRICS)
    for svc in (d for d in docs if d["kind"] == "Service"):
        named = {p["name"]: p["containerPort"] for p in gate["ports"]}
        assert {named[p["targetPort"]] for p in svc["spec"]["ports"]} <= {GATE_HTTP, GATE_METRICS}
    mounts = {v["name"]: v for v in pod["volumes"]}
    assert mounts["gate-tokens"]["secret"]["secretName"] == "breast-cancer-gate-tokens"
    assert mounts["gate-config"]["configMap"]["name"] == "breast-cancer-gate"


def test_the_gate_body_limit_is_the_request_size_derived_from_params():
    from mlops.config.params import load_params
    from serve import settings

    params = load_params()
    limit = settings.max_request_bytes(params.data.feature_names, int(params.serve.max_batch_rows))
    conf = gate_conf()
    assert re.search(r"client_max_body_size (\d+);", conf).group(1) == str(limit)
    assert f"listen {GATE_HTTP};" in conf and f"listen {GATE_METRICS};" in conf


def test_production_has_a_canary_share_and_staging_none():
    (prod,) = [d for d in render(DEPLOY / "overlays" / "production") if d["kind"] == "InferenceService"]
    (stage,) = [d for d in render(DEPLOY / "overlays" / "staging") if d["kind"] == "InferenceService"]
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
        (("spec", "predictor", "containers", 1, "ports", 0, "containerPort"), "8000"),
        (("spec", "predictor", "minReplicas"), "one"),
    ],
)
def test_inference_service_schema_refuses(path, value):
    (doc,) = [d for d in render(DEPLOY / "overlays" / "production") if d["kind"] == "InferenceService"]
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


# -- the gate answers what docs/serving.md says, before TorchServe sees a byte -----------------------------
def _nginx() -> str:
    import os
    import shutil

    found = shutil.which("nginx") or ("/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else None)
    if not found:
        if os.environ.get("MLOPS_REQUIRE_TOOLS") == "1":
            pytest.fail("nginx not found (apt-get install nginx-light)")
        pytest.skip("nginx not installed")
    return found


@pytest.fixture
def gate(tmp_path):
    """The rendered gate config run by a real nginx on free loopback ports, TorchServe replaced by a stub
    that records what reaches it. Yields (gate port, metrics port, what the stub saw)."""
    import http.server
    import os
    import socket
    import subprocess
    import threading
    import time

    nginx = _nginx()
    seen: list[tuple[str, str, str | None, int]] = []

    class Stub(http.server.BaseHTTPRequestHandler):
        def _answer(self):
            n = int(self.headers.get("Content-Length") or 0)
            self.rfile.read(n)
            seen.append((self.command, self.path, self.headers.get("Authorization"), n))
            body = b'{"predictions": []}'
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_POST = do_GET = _answer

        def log_message(self, *args):
            pass

    def free() -> int:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            return s.getsockname()[1]

    stub = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Stub)
    threading.Thread(target=stub.serve_forever, daemon=True).start()
    http_port, metrics_port = free(), free()
    (tmp_path / "tokens").mkdir()
    (tmp_path / "tokens/inference.map").write_text('"Bearer good-token" ok;\n')
    (tmp_path / "tokens/metrics.map").write_text('"Bearer scrape-token" ok;\n')
    conf = gate_conf()
    for old, new in (
        ("/etc/gate/tokens/", f"{tmp_path}/tokens/"),
        ("/tmp/nginx.pid", f"{tmp_path}/nginx.pid"),
        ("/tmp/gate_", f"{tmp_path}/gate_"),
        (f"listen {GATE_HTTP};", f"listen 127.0.0.1:{http_port};"),
        (f"listen {GATE_METRICS};", f"listen 127.0.0.1:{metrics_port};"),
        ("127.0.0.1:8080", f"127.0.0.1:{stub.server_port}"),
        ("127.0.0.1:8082", f"127.0.0.1:{stub.server_port}"),
    ):
        assert old in conf, old
        conf = conf.replace(old, new)
    (tmp_path / "nginx.conf").write_text(conf)
    # as root (a CI container), nginx's workers would drop to `nobody`, who cannot write in tmp_path
    directives = "daemon off;" + (" user root;" if os.geteuid() == 0 else "")
    proc = subprocess.Popen(
        [nginx, "-e", "stderr", "-p", str(tmp_path), "-c", str(tmp_path / "nginx.conf"), "-g", directives],
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", http_port)) == 0:
                    break
            assert proc.poll() is None, proc.stderr.read().decode()
            time.sleep(0.05)
        yield http_port, metrics_port, seen
    finally:
        proc.terminate()
        proc.wait(10)
        stub.shutdown()


def _call(port: int, method: str, path: str, token: str | None = None, body: bytes | None = b"{}"):
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    try:
        conn.request(method, path, body=body, headers=headers)
        response = conn.getresponse()
        return response.status, response.read(), dict(response.getheaders())
    finally:
        conn.close()


def test_the_gate_answers_each_refusal_itself_and_passes_only_authorised_posts(gate):
    port, _, seen = gate
    predict, infer = "/predictions/breast-cancer", "/v2/models/breast-cancer/infer"
    refused = {
        ("POST", predict, None): 401,
        ("POST", infer, None): 401,
        ("POST", predict, "wrong"): 403,
        ("GET", predict, "good-token"): 405,
        ("PUT", predict, "good-token"): 405,
        ("DELETE", infer, None): 405,
        ("OPTIONS", "/", None): 404,
        ("GET", "/ping", "good-token"): 404,
        ("POST", "/explanations/breast-cancer", "good-token"): 404,
        ("POST", "/v1/models/breast-cancer:predict", "good-token"): 404,
        ("POST", "/predictions/other-model", "good-token"): 404,
        ("GET", "/metrics", None): 404,
    }
    for (method, path, token), status in refused.items():
        got, body, headers = _call(port, method, path, token)
        assert got == status, (method, path, token, got)
        assert json.loads(body)["code"] == status and not re.search(r"/\d", headers.get("Server", ""))
    assert seen == []  # nothing refused reached TorchServe
    assert _call(port, "GET", predict, "good-token")[2].get("Allow") == "POST"
    assert _call(port, "POST", predict, None)[2].get("WWW-Authenticate") == "Bearer"
    limit = int(re.search(r"client_max_body_size (\d+);", gate_conf()).group(1))
    assert _call(port, "POST", predict, "good-token", b" " * (limit + 1))[0] == 413
    assert _call(port, "POST", predict, None, b" " * (limit + 1))[0] == 413  # refused unread either way
    assert seen == []
    for path in (predict, infer):
        assert _call(port, "POST", path, "good-token", b" " * limit)[0] == 200
    # TorchServe (token off behind the gate) gets the POSTs and never the client's credentials
    assert seen == [("POST", predict, None, limit), ("POST", infer, None, limit)]


def test_the_metrics_go_out_only_with_the_scrape_token(gate):
    _, metrics, seen = gate
    assert _call(metrics, "GET", "/metrics", None, None)[0] == 401
    assert _call(metrics, "GET", "/metrics", "good-token", None)[0] == 403  # the inference token is not it
    assert _call(metrics, "POST", "/metrics", "scrape-token")[0] == 405
    assert _call(metrics, "GET", "/predictions/breast-cancer", "scrape-token", None)[0] == 404
    assert seen == []
    assert _call(metrics, "GET", "/metrics", "scrape-token", None)[0] == 200
    assert seen == [("GET", "/metrics", None, 0)]
