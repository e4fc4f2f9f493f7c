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


def key_file(run_dir: Path = RUN_DIR) -> Path:
    """TorchServe writes key_file.json into its working directory; MLOPS_KEY_FILE points elsewhere."""
    return Path(os.environ.get(KEY_FILE_ENV) or run_dir / "key_file.json")
