"""The inference log's files: append-only, one per worker process, rotated by size and age, gzipped by a
background thread. What a line holds is serve/handler/records.py's."""

from __future__ import annotations

import contextlib
import datetime as dt
import gzip
import math
import os
import shutil
import socket
import sys
import threading
import time

from serve.handler.records import GZIP_SUFFIX, LOG_SUFFIX, PARTIAL_SUFFIX

LOG_ENV = "MLOPS_INFERENCE_LOG_DIR"
DEFAULT_LOG = {"rotate_bytes": 64 << 20, "rotate_seconds": 3600.0, "keep_files": 48, "compress": True}


class InferenceLog:
    """Append-only JSON lines, one file per worker process, rotated by size and age.

    Durability: `write` is one os.write(2) on an O_APPEND descriptor, called by the handler before it
    returns the batch's responses. The bytes are then in the kernel's page cache: a worker killed with
    SIGKILL loses nothing it acknowledged (the machine crashing loses what the OS had not flushed yet).

    Rotation: when the file reaches `rotate_bytes` or `rotate_seconds`, it is closed and a new one is
    opened; a background thread gzips the closed file to `<name>.jsonl.gz` (written under a `.partial`
    name, renamed, then the plain file is removed) and deletes the oldest closed files of this model
    beyond `keep_files`. Names: `<model>-<host>-<pid>-<UTC start>-<seq>.jsonl[.gz]`, so `*.jsonl*` finds
    the live and the rotated files.

    A directory that cannot be created or written never stops serving: the rows are counted as lost
    (metric InferenceLogWriteFailures), a WARNING goes to the model log at most once a minute, and the
    directory is retried every `retry_seconds`.
    """

    def __init__(
        self,
        directory: str,
        model_name: str,
        rotate_bytes: int = DEFAULT_LOG["rotate_bytes"],
        rotate_seconds: float = DEFAULT_LOG["rotate_seconds"],
        keep_files: int = DEFAULT_LOG["keep_files"],
        compress: bool = True,
        retry_seconds: float = 10.0,
    ):
        self.directory = directory
        self.prefix = f"{model_name}-{socket.gethostname()}-{os.getpid()}"
        self.model_name = model_name
        self.rotate_bytes, self.rotate_seconds = int(rotate_bytes), float(rotate_seconds)
        self.keep_files, self.compress = int(keep_files), bool(compress)
        self.retry_seconds = retry_seconds
        self.fd: int | None = None
        self.path: str | None = None
        self.size = 0
        self.opened = 0.0
        self.seq = 0
        self.failures = 0  # rows not written, since start
        self._retry_at = 0.0
        self._warned_at = -math.inf
        self._closed: list[str] = []  # rotated files waiting for the compressor
        self._wake = threading.Condition()
        threading.Thread(target=self._compressor, name="inference-log-rotate", daemon=True).start()

    def write(self, data: bytes, rows: int) -> bool:
        """Append `rows` records (already JSON lines); False (and counted) when they could not be written."""
        now = time.monotonic()
        try:
            if self.fd is not None and (
                self.size >= self.rotate_bytes or now - self.opened >= self.rotate_seconds
            ):
                self._rotate()
            if self.fd is None:
                if now < self._retry_at:
                    raise OSError("still failing; next retry in a few seconds")
                self._open(now)
            written = os.write(self.fd, data)
            if written != len(data):  # disk full mid-write: the rest would land mid-line
                raise OSError(f"short write ({written} of {len(data)} bytes)")
            self.size += written
            return True
        except OSError as err:
            self.failures += rows
            self._close(rotated=False)
            self._retry_at = now + self.retry_seconds
            if now - self._warned_at >= 60:
                self._warned_at = now
                print(
                    f"WARNING inference log: {rows} rows NOT written to {self.directory}: {err}; serving "
                    f"goes on, {self.failures} rows lost so far (metric InferenceLogWriteFailures)",
                    file=sys.stderr,
                    flush=True,
                )
            return False

    def _open(self, now: float) -> None:
        os.makedirs(self.directory, exist_ok=True)
        stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        self.seq += 1
        path = os.path.join(self.directory, f"{self.prefix}-{stamp}-{self.seq:04d}{LOG_SUFFIX}")
        self.fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self.path, self.size, self.opened = path, os.fstat(self.fd).st_size, now

    def _close(self, rotated: bool) -> None:
        if self.fd is None:
            return
        with contextlib.suppress(OSError):
            os.close(self.fd)
        if rotated and self.path:
            with self._wake:
                self._closed.append(self.path)
                self._wake.notify()
        self.fd = None

    def _rotate(self) -> None:
        self._close(rotated=True)

    def close(self) -> None:
        self._close(rotated=False)

    def _compressor(self) -> None:
        while True:
            with self._wake:
                while not self._closed:
                    self._wake.wait()
                path = self._closed.pop(0)
            try:
                if self.compress:
                    _gzip(path)
                self._prune()
            except OSError as err:
                print(f"WARNING inference log: could not rotate {path}: {err}", file=sys.stderr, flush=True)

    def _prune(self) -> None:
        """Keep the newest `keep_files` closed files of this model; live files (this worker's, and any
        modified in the last rotation period: another worker's) are never deleted."""
        live = {self.path}
        suffix = LOG_SUFFIX + GZIP_SUFFIX if self.compress else LOG_SUFFIX
        names = [
            os.path.join(self.directory, n)
            for n in os.listdir(self.directory)
            if n.startswith(self.model_name + "-") and n.endswith(suffix)
        ]
        recent = time.time() - self.rotate_seconds
        closed = [p for p in names if p not in live and (self.compress or os.path.getmtime(p) < recent)]
        closed.sort(key=lambda p: (os.path.getmtime(p), p))
        for old in closed[: max(0, len(closed) - self.keep_files)]:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(old)


def _gzip(path: str) -> None:
    partial = path[: -len(LOG_SUFFIX)] + PARTIAL_SUFFIX  # never matches *.jsonl*: readers skip it
    # Level 1: about 190 MB/s of CPU against 58 MB/s at level 6, for 4x instead of 6x on these lines; at
    # tens of MB/s of log (benchmarks/serve.py) level 6 would take half a core.
    with open(path, "rb") as src, gzip.open(partial, "wb", compresslevel=1) as dst:
        shutil.copyfileobj(src, dst, 1 << 20)
    os.replace(partial, path + GZIP_SUFFIX)
    os.unlink(path)
