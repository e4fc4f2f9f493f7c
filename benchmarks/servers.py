"""Real servers for the scale-out benchmark and tests: PostgreSQL, an S3 API (moto_server) and mlflow server.

They live here, not under tests/, so benchmarks/scale_pipeline.py runs with tests/ deleted;
tests/template/scale imports them from here.

Each runs as a child process in its own session, bound to 127.0.0.1 on a free port, and `stop()` ends
the whole process group and checks that nothing listens on the port any more: a test that leaks a
server fails instead of slowing down the rest of the suite. PostgreSQL comes from Debian's
`postgresql` package (binaries under /usr/lib/postgresql/<version>/bin); it refuses to run as root, so
under root it runs as the `postgres` user (or `nobody`) with its data in a fresh directory under /tmp.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks.workspace import BIN  # moto_server and mlflow come from the venv running this process

# Test-only credentials: moto accepts any; a real deployment passes its own through the same variables.
AWS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


def postgres_bin() -> Path | None:
    """The newest /usr/lib/postgresql/<version>/bin (initdb, postgres, createdb), or None."""
    found = [d for d in Path("/usr/lib/postgresql").glob("*/bin") if (d / "initdb").exists()]
    found.sort(key=lambda d: int(d.parent.name) if d.parent.name.isdigit() else 0)
    return found[-1] if found else None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


@dataclass
class Server:
    """A child process group listening on 127.0.0.1:port, with its output in a log file."""

    name: str
    port: int
    proc: subprocess.Popen
    log: Path
    cleanup: list[Path] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def tail(self, chars: int = 3000) -> str:
        return self.log.read_text(errors="replace")[-chars:] if self.log.exists() else ""

    def wait_ready(self, timeout: float, health: str | None = None) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited {self.proc.returncode}:\n{self.tail()}")
            if listening(self.port) and (health is None or _http_ok(self.url + health)):
                return
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"{self.name} not ready on port {self.port} after {timeout:.0f} s:\n{self.tail()}")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20) -> None:
        """End the process group (server plus its workers), then check the port is free."""
        if self.proc.poll() is None:
            _signal_group(self.proc.pid, sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                _signal_group(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        _signal_group(self.proc.pid, signal.SIGKILL)  # workers that outlived their parent
        deadline = time.monotonic() + 10
        while listening(self.port) and time.monotonic() < deadline:
            time.sleep(0.1)
        for path in self.cleanup:
            shutil.rmtree(path, ignore_errors=True)

    def group_alive(self) -> bool:
        try:
            os.killpg(self.proc.pid, 0)
        except ProcessLookupError:
            return False
        return True


def _signal_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def _spawn(name: str, cmd: list[str], port: int, log: Path, env: dict | None = None, user: str | None = None):
    out = open(log, "ab")  # noqa: SIM115 (the child owns it; closed when this process exits)
    proc = subprocess.Popen(
        cmd,
        stdout=out,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        env=env,
        user=user,
        start_new_session=True,
    )
    return Server(name, port, proc, log)


def _unprivileged_user() -> str | None:
    """PostgreSQL refuses to run as root: use the `postgres` account (Debian's package makes it) or nobody."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            pwd.getpwnam(name)
            return name
        except KeyError:
            continue
    raise RuntimeError("running as root and no postgres/nobody user to run PostgreSQL as")


def start_postgres(timeout: float = 60) -> Server:
    """A throw-away cluster (trust auth on 127.0.0.1 only, fsync off: test speed, not durability)."""
    bindir = postgres_bin()
    if bindir is None:
        raise RuntimeError("no PostgreSQL under /usr/lib/postgresql/*/bin (apt-get install postgresql)")
    user = _unprivileged_user()
    root = Path(tempfile.mkdtemp(prefix="mlops-pg-"))  # under /tmp: reachable by the unprivileged user
    if user:
        uid = pwd.getpwnam(user).pw_uid
        os.chown(root, uid, -1)
    data, log = root / "data", root / "postgres.log"
    init = subprocess.run(
        [str(bindir / "initdb"), "-D", str(data), "-U", "mlflow", "--auth=trust", "-E", "UTF8", "--no-sync"],
        capture_output=True,
        text=True,
        user=user,
        cwd=root,
    )
    if init.returncode != 0:
        shutil.rmtree(root, ignore_errors=True)
        raise RuntimeError(f"initdb failed:\n{init.stdout}\n{init.stderr}")
    port = free_port()
    cmd = [str(bindir / "postgres"), "-D", str(data), "-h", "127.0.0.1", "-p", str(port), "-k", str(root)]
    cmd += ["-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off"]
    server = _spawn("postgres", cmd, port, log, user=user)
    server.cleanup.append(root)
    server.wait_ready(timeout)
    # The port opens before recovery ends ("the database system is starting up"): ask the server itself.
    ready = [str(bindir / "pg_isready"), "-q", "-h", "127.0.0.1", "-p", str(port)]
    deadline = time.monotonic() + timeout
    while subprocess.run(ready).returncode != 0:
        if time.monotonic() > deadline:
            server.stop()
            raise RuntimeError(f"postgres not accepting connections:\n{server.tail()}")
        time.sleep(0.2)
    return server


def create_database(pg: Server, name: str) -> str:
    """CREATE DATABASE name; returns its SQLAlchemy URL for mlflow's --backend-store-uri."""
    bindir = postgres_bin()
    proc = subprocess.run(
        [str(bindir / "createdb"), "-h", "127.0.0.1", "-p", str(pg.port), "-U", "mlflow", name],
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"createdb {name} failed: {proc.stderr}")
    return f"postgresql+psycopg2://mlflow@127.0.0.1:{pg.port}/{name}"


def start_moto(workdir: Path, timeout: float = 60) -> Server:
    """moto's S3 API over real HTTP (in memory: nothing outlives the process)."""
    port = free_port()
    cmd = [str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(port)]
    server = _spawn("moto_server", cmd, port, workdir / "moto.log", env={**os.environ, **AWS})
    server.wait_ready(timeout, health="/moto-api/")
    return server


def s3_env(moto: Server) -> dict[str, str]:
    """The variables an S3 client needs: credentials plus the endpoint (MLflow's and the AWS SDK's)."""
    return {**AWS, "MLFLOW_S3_ENDPOINT_URL": moto.url, "AWS_ENDPOINT_URL": moto.url}


def s3_client(moto: Server):
    import boto3

    return boto3.client(
        "s3",
        endpoint_url=moto.url,
        aws_access_key_id=AWS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=AWS["AWS_SECRET_ACCESS_KEY"],
        region_name=AWS["AWS_DEFAULT_REGION"],
    )


def s3_keys(moto: Server, bucket: str, prefix: str = "") -> list[str]:
    pages = s3_client(moto).get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    return [obj["Key"] for page in pages for obj in page.get("Contents", [])]


def start_mlflow(
    workdir: Path, backend: str, moto: Server, artifacts: str, proxied: bool, timeout: float = 120
) -> Server:
    """`mlflow server` on PostgreSQL. proxied: clients send artifacts through the server
    (--artifacts-destination); else --no-serve-artifacts and clients write to S3 themselves."""
    port = free_port()
    cmd = [str(BIN / "mlflow"), "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
    cmd += ["--backend-store-uri", backend]
    if proxied:
        cmd += ["--serve-artifacts", "--artifacts-destination", artifacts]
    else:
        cmd += ["--no-serve-artifacts", "--default-artifact-root", artifacts]
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env.update(s3_env(moto))
    # The GenAI job runner (7 huey worker processes, ~0.7 GB) serves features this project does not use.
    env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] = "false"
    name = f"mlflow server ({'proxied' if proxied else 'direct'})"
    server = _spawn(name, cmd, port, workdir / f"mlflow-{port}.log", env=env)
    server.wait_ready(timeout, health="/health")
    return server
