"""A small client for the local TorchServe: reads the inference key and sends predictions.

Standard library only, so scripts, tests and `mlops simulate-traffic` can use it anywhere. One
persistent HTTP connection per client (keep-alive), re-opened if the server closed it.

    from serve.client import Client
    client = Client.local()
    client.predict([{"mean_radius": 14.1, ...}])   # -> {"predictions": [...]}
"""

from __future__ import annotations

import http.client
import json
from pathlib import Path

from serve import settings


class ServeError(Exception):
    """A non-2xx answer; `status` and the server's message are kept for the caller."""

    def __init__(self, status: int, message: str):
        super().__init__(f"HTTP {status}: {message}")
        self.status = status
        self.message = message


def read_key(path: Path, kind: str = "inference") -> str:
    """The key TorchServe wrote at start-up (kind: inference or management)."""
    try:
        return json.loads(Path(path).read_text())[kind]["key"]
    except FileNotFoundError:
        raise ServeError(
            401, f"no key file at {path}: is the server running (`mlops serve start`)?"
        ) from None
    except (ValueError, KeyError):  # being written by a starting server
        raise ServeError(401, f"key file {path} is incomplete: the server is still starting") from None


class Client:
    def __init__(
        self, url: str, model_name: str, key_path: Path, timeout: float = 30.0, key_kind: str = "inference"
    ):
        self.endpoint = settings.Endpoint(url)
        self.model_name = model_name
        self.key_path = Path(key_path)
        self.key_kind = key_kind  # "management" for the management API
        self.timeout = timeout
        self._conn: http.client.HTTPConnection | None = None
        self._key: str | None = None
        self.auth = settings.token_auth()  # off only behind the deploy manifests' gate

    @classmethod
    def local(cls, model_name: str | None = None, **kwargs) -> Client:
        """The server `mlops serve start` runs: address from serve/config.properties, key from its run dir."""
        if model_name is None:
            from mlops.config.params import load_params

            model_name = load_params().serve.model_name
        return cls(settings.endpoint("inference").url, model_name, settings.key_file(), **kwargs)

    def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
        auth: bool = True,
    ) -> tuple[int, bytes]:
        """Raw call: (status, body). Re-reads the key once if refused (the server may have restarted)."""
        for attempt in (0, 1):
            sent = dict(headers or {})
            if auth and self.auth:
                if self._key is None or attempt:
                    self._key = read_key(self.key_path, self.key_kind)
                sent["Authorization"] = f"Bearer {self._key}"
            status, data = self._send(method, path, body, sent)
            if not (auth and self.auth and _rejected_token(status, data)):
                break
        return status, data

    def _send(self, method, path, body, headers) -> tuple[int, bytes]:
        for attempt in (0, 1):
            if self._conn is None:
                self._conn = http.client.HTTPConnection(
                    self.endpoint.host, self.endpoint.port, timeout=self.timeout
                )
            try:
                self._conn.request(method, path, body=body, headers=headers)
                response = self._conn.getresponse()
                return response.status, response.read()
            except (ConnectionError, http.client.HTTPException):
                self.close()
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def predict(self, instances: list) -> dict:
        """Rows as {feature: value} objects (or arrays in params.yaml order) -> the parsed response."""
        body = json.dumps({"instances": instances}).encode()
        status, data = self.request(
            "POST", f"/predictions/{self.model_name}", body, {"Content-Type": "application/json"}
        )
        if status != 200:
            raise ServeError(status, _message(data))
        return json.loads(data)

    def ping(self) -> bool:
        try:
            status, data = self.request("GET", "/ping")
        except (OSError, ServeError):
            return False
        return status == 200 and json.loads(data).get("status") == "Healthy"

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


def model_workers(management_url: str, model_name: str, key_path: Path) -> list[dict]:
    """The management API's view of the model's workers ([] when unreachable or unknown)."""
    mgmt = Client(management_url, model_name, key_path, timeout=5, key_kind="management")
    try:
        status, body = mgmt.request("GET", f"/models/{model_name}")
    except (OSError, ValueError, KeyError, ServeError):
        return []
    finally:
        mgmt.close()
    if status != 200:
        return []
    return [w for version in json.loads(body) for w in version.get("workers", [])]


def _message(data: bytes) -> str:
    try:
        body = json.loads(data)
    except ValueError:
        return data.decode(errors="replace")
    return str(body.get("error") or body.get("message") or body)


def _rejected_token(status: int, data: bytes) -> bool:
    """TorchServe answers a missing or stale token with 400 InvalidKeyException (401 elsewhere)."""
    return status == 401 or (status == 400 and b"InvalidKeyException" in data)
