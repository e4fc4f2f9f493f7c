"""Container HEALTHCHECK: /ping (with the inference key) answers "Healthy" and every worker is READY.

/ping alone stays "Healthy" while a worker that cannot load the model is being retried, so the
management API (on 127.0.0.1 inside the container) is asked too.

Token auth stays on inside the image, so the check reads key_file.json like any client would (the
deploy manifests turn it off behind their in-pod gate: then no key is sent).

`--live`: /ping only, the liveness probe: the frontend answers, whatever the model's state. With the
frontend on 127.0.0.1 a kubelet HTTP probe cannot reach it, so both probes run this module in the pod.
"""

from __future__ import annotations

import os
import sys

from serve import settings
from serve.client import Client, model_workers


def main(argv: list[str] | None = None) -> int:
    live = "--live" in (sys.argv[1:] if argv is None else argv)
    endpoint = settings.endpoint("inference")
    host = "127.0.0.1" if endpoint.host in ("0.0.0.0", "::") else endpoint.host
    name = os.environ.get("MLOPS_MODEL_NAME", "model")
    client = Client(f"http://{host}:{endpoint.port}", name, settings.key_file(), timeout=3)
    healthy = client.ping()
    client.close()
    if live:
        return 0 if healthy else 1
    workers = model_workers(settings.endpoint("management").url, name, settings.key_file()) if healthy else []
    return 0 if workers and all(w.get("status") == "READY" for w in workers) else 1


if __name__ == "__main__":
    sys.exit(main())
