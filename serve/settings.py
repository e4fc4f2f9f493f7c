"""Where the local TorchServe listens and keeps its files: serve/config.properties plus TS_* overrides.

Standard library only: the client and the container health check use it too.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

CONFIG = Path(__file__).with_name("config.properties")
LOG_CONFIG = Path(__file__).with_name("log4j2.xml")
METRICS_CONFIG = Path(__file__).with_name("metrics.yaml")  # TorchServe's metrics_config (TS_METRICS_CONFIG)
RUN_DIR = Path("logs/torchserve")  # the server's working dir: key_file.json, pid file, TorchServe logs
KEY_FILE_ENV = "MLOPS_KEY_FILE"


def read_properties(path: Path = CONFIG) -> dict[str, str]:
    """Java-style properties: key=value lines, # comments (no line continuations needed here)."""
    props: dict[str, str] = {}
    for line in Path(path).read_text().splitlines():
        line = line.strip()
        if line and not line.startswith(("#", "!")) and "=" in line:
            key, value = line.split("=", 1)
            props[key.strip()] = value.strip()
    return props


@dataclass(frozen=True)
class Endpoint:
    url: str  # e.g. http://127.0.0.1:8080

    @property
    def host(self) -> str:
        return urlsplit(self.url).hostname or "127.0.0.1"

    @property
    def port(self) -> int:
        return int(urlsplit(self.url).port or 80)


def endpoint(kind: str, config: Path = CONFIG) -> Endpoint:
    """kind: inference, management or metrics. The TS_<KIND>_ADDRESS variable wins, as in TorchServe."""
    env = os.environ.get(f"TS_{kind.upper()}_ADDRESS")
    return Endpoint((env or read_properties(config)[f"{kind}_address"]).rstrip("/"))


def grpc_ports(config: Path = CONFIG) -> dict[str, int]:
    """gRPC ports (always bound by TorchServe on 127.0.0.1); TS_GRPC_<KIND>_PORT wins."""
    props = read_properties(config)
    return {
        kind: int(os.environ.get(f"TS_GRPC_{kind.upper()}_PORT") or props.get(f"grpc_{kind}_port", default))
        for kind, default in (("inference", 7070), ("management", 7071))
    }


def token_auth(config: Path = CONFIG) -> bool:
    """TorchServe's token check: on unless TS_DISABLE_TOKEN_AUTHORIZATION (or the property) says true,
    as the deploy manifests do where an authenticating gate in the pod is the only way in."""
    value = os.environ.get("TS_DISABLE_TOKEN_AUTHORIZATION") or read_properties(config).get(
        "disable_token_authorization", "false"
    )
    return value.strip().lower() != "true"


def key_file(run_dir: Path = RUN_DIR) -> Path:
    """TorchServe writes key_file.json into its working directory; MLOPS_KEY_FILE points elsewhere."""
    return Path(os.environ.get(KEY_FILE_ENV) or run_dir / "key_file.json")


# -- values derived from params.yaml (settings stays standard-library only: `params` is duck-typed) ------
LONGEST_NUMBER = 24  # len("-1.7976931348623157e+308"): the longest float a JSON encoder writes


PRETTY = 7  # a newline and 6 spaces before each value: JSON indented by 2 (json.dumps(indent=2))


def max_request_bytes(features: list[str], max_rows: int) -> int:
    """TorchServe's `max_request_size` (and the deploy gate's body limit) for `serve.max_batch_rows`
    rows: the larger of the two request forms (named-feature rows, flat arrays) with the longest number
    a JSON encoder writes and room for indentation by 2, plus 64 KiB. Anything up to it reaches the
    handler, which answers a JSON 413 for too many rows or too many JSON values (its own bound is 4 x
    the values of max_batch_rows rows); above it, TorchServe answers its own empty 413 before any
    handler runs. It is also what one token-less connection can make the frontend hold (docs/serving.md)."""
    named = 4 + sum(len(name) + 2 + 2 + LONGEST_NUMBER + 2 + PRETTY for name in features)
    flat = 4 + len(features) * (LONGEST_NUMBER + 2 + PRETTY)
    return max_rows * max(named, flat) + (64 << 10)


def handler_spec(params) -> dict:
    """What the handler reads from params.yaml beyond serve.json's basics: feature ranges (out-of-range
    values are flagged) and the inference log's rotation. `mlops serve start` passes it in the worker's
    environment (MLOPS_SERVE_SPEC); an archive can carry the same dict in serve.json."""
    serve = params.serve
    ranges = {f.name: [f.min, f.max] for f in params.data.features if f.min is not None or f.max is not None}
    return {
        "feature_ranges": ranges,
        # per-row metrics (predicted class, out-of-range features) wait for this many rows (handler Metrics)
        "metrics_min_rows": int(serve.metrics_min_rows),
        "inference_log": {
            "rotate_bytes": int(float(serve.inference_log_rotate_mb) * (1 << 20)),
            "rotate_seconds": serve.rotate_seconds,
            "keep_files": int(serve.inference_log_keep_files),
            "compress": bool(serve.inference_log_compress),
        },
    }


def main(argv: list[str] | None = None) -> int:
    """`python -m serve.settings max-request-size`: the value for the image's MAX_REQUEST_SIZE build arg."""
    import sys

    from mlops.config.params import load_params

    args = sys.argv[1:] if argv is None else argv
    if args != ["max-request-size"]:
        print("usage: python -m serve.settings max-request-size", file=sys.stderr)
        return 2
    params = load_params()
    print(max_request_bytes(params.data.feature_names, int(params.serve.max_batch_rows)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
