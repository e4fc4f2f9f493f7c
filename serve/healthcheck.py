"""Container HEALTHCHECK: /ping (with the inference key) answers "Healthy" and every worker is READY.

/ping alone stays "Healthy" while a worker that cannot load the model is being retried, so the
management API (on 127.0.0.1 inside the container) is asked too.

Token auth stays on inside the image, so the check reads key_file.json like any client would.
"""

from __future__ import annotations

import os
import sys

from serve import settings
from serve.client import Client, model_workers


def main() -> int:
    endpoint = settings.endpoint("inference")
    host = "127.0.0.1" if endpoint.host in ("0.0.0.0", "::") else endpoint.host
    name = os.environ.get("MLOPS_MODEL_NAME", "model")
    client = Client(f"http://{host}:{endpoint.port}", name, settings.key_file(), timeout=3)
    healthy = client.ping()
    client.close()
    workers = model_workers(settings.endpoint("management").url, name, settings.key_file()) if healthy else []
    return 0 if workers and all(w.get("status") == "READY" for w in workers) else 1


if __name__ == "__main__":
    sys.exit(main())
