"""Read JSON-lines records (the handler's inference log, labelled feedback) into a feature table.

One object per line: {"ts": "<UTC ISO 8601>", "features": {name: number}, ...}. The handler rotates its
files by size and age, so a log directory holds `x.jsonl`, rotated `x.jsonl.1`, ... and gzipped
`x.jsonl.gz`, `x.jsonl.1.gz`: every file whose name contains `.jsonl` is read, and the count of each kind
is reported, so a reader that skips a kind can never go unnoticed again. Logs are written by
servers that crash, get truncated and get edited by hand, so a bad line is counted, one example of
each is kept for the message, and it is skipped: it never stops the job and is never dropped silently.
Local paths and fsspec URIs (s3://, gs://, ... with their fsspec package installed) read the same way.
"""

from __future__ import annotations

import gzip
import math
import zlib
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import lru_cache

import numpy as np
import pandas as pd

try:  # about 3x faster on big windows; the standard library does the same job
    from orjson import loads as _loads
except ImportError:  # pragma: no cover
    from json import loads as _loads

CHUNK = 65_536  # rows buffered as Python lists before they become a float64 block
MAX_EXAMPLES = 5


@dataclass
class ReadStats:
    location: str
    files: int = 0
    lines: int = 0
    rows: int = 0
    malformed: int = 0
    outside_window: int = 0
    examples: list[str] = field(default_factory=list)  # "file:line: reason", the first few bad lines
    exists: bool = True  # False: the location itself is missing (a typo, an unmounted volume)
    kinds: dict[str, int] = field(default_factory=lambda: {"plain": 0, "rotated": 0, "gzipped": 0})
    unreadable: list[str] = field(default_factory=list)  # "file: reason" of files that could not be read
    newest: datetime | None = None  # newest valid record up to the window's end, in or before the window

    def bad(self, where: str, reason: str) -> None:
        self.malformed += 1
        if len(self.examples) < MAX_EXAMPLES:
            self.examples.append(f"{where}: {reason}")

    def as_dict(self) -> dict:
        return {
            k: getattr(self, k)
            for k in (
                "location",
                "exists",
                "files",
                "kinds",
                "unreadable",
                "lines",
                "rows",
                "malformed",
                "outside_window",
                "examples",
            )
        } | {"newest": self.newest.isoformat() if self.newest else None}

    def kinds_text(self) -> str:
        return ", ".join(f"{n} {kind}" for kind, n in self.kinds.items())


@lru_cache(maxsize=4096)  # the rows of one request share their ts
def parse_ts(value) -> datetime:
    """ISO 8601 with 'Z' or an offset (Python 3.10's fromisoformat knows neither 'Z' nor all forms)."""
    text = str(value).strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    ts = datetime.fromisoformat(text)
    return ts.replace(tzinfo=timezone.utc) if ts.tzinfo is None else ts.astimezone(timezone.utc)


def list_files(location: str, suffixes: tuple[str, ...]) -> list[tuple[object, str]]:
    """(filesystem, path) of each file at `location`: the file itself, or every match under a directory."""
    import fsspec

    fs, root = fsspec.core.url_to_fs(location)
    if not fs.exists(root):
        return []
    if not fs.isdir(root):
        return [(fs, root)]
    found = [p for p in fs.find(root) if p.endswith(suffixes)]
    return [(fs, p) for p in sorted(found)]


def log_kind(path: str) -> str | None:
    """'plain' (x.jsonl), 'gzipped' (x.jsonl.gz, x.jsonl.3.gz) or 'rotated' (x.jsonl.1, any other
    x.jsonl*) for a log file name; None for a name without `.jsonl` (the handler's `.partial` files)."""
    name = path.rsplit("/", 1)[-1]
    if ".jsonl" not in name:
        return None
    return "gzipped" if name.endswith(".gz") else "plain" if name.endswith(".jsonl") else "rotated"


def log_files(location: str) -> tuple[bool, list[tuple[object, str, str]]]:
    """(location exists, [(filesystem, path, kind)]): the file itself, or every `*.jsonl*` log under a dir.

    A plain file whose gzipped copy `x.jsonl.gz` is already there is skipped: the handler renames the
    finished gzip into place before it deletes the plain file, so both may be seen for a moment."""
    import fsspec

    fs, root = fsspec.core.url_to_fs(location)
    if not fs.exists(root):
        return False, []
    if not fs.isdir(root):
        return True, [(fs, root, log_kind(root) or "plain")]
    paths = sorted(fs.find(root))
    present = set(paths)
    return True, [
        (fs, p, kind)
        for p in paths
        if (kind := log_kind(p)) and not (kind == "plain" and p + ".gz" in present)
    ]


class _Rows:
    """Columnar accumulator: float64 blocks for the features, one list per text field."""

    def __init__(self, columns: list[str], keys: tuple[str, ...]):
        self.columns, self.keys = columns, keys
        self.blocks: list[np.ndarray] = []
        self.pending: list[list] = []
        self.text: list[list] = [[] for _ in keys]

    def add(self, values: list, texts: list) -> None:
        self.pending.append(values)
        for column, value in zip(self.text, texts, strict=True):
            column.append(value)
        if len(self.pending) >= CHUNK:
            self.flush()

    def flush(self) -> None:
        if self.pending:
            self.blocks.append(np.asarray(self.pending, dtype=np.float64))
            self.pending = []

    def frame(self) -> pd.DataFrame:
        self.flush()
        values = np.concatenate(self.blocks) if self.blocks else np.empty((0, len(self.columns)))
        out = pd.DataFrame(values, columns=self.columns)
        for key, column in zip(self.keys, self.text, strict=True):
            out[key] = pd.Series(column, dtype=object)
        return out


_NUMBER = frozenset((int, float))  # not bool: type(True) is bool


def _bad_value(columns: list[str], values: list) -> str:
    for name, value in zip(columns, values, strict=True):
        if type(value) not in _NUMBER or not math.isfinite(value):
            return f"feature {name!r}: not a finite number: {value!r}"
    return ""  # only the sum overflowed: every value is fine


def _record(
    obj,
    columns: list[str],
    keys: tuple[str, ...],
    required: tuple[str, ...],
    need_ts: bool,
    classes: tuple[str, ...] = (),
):
    """(values, texts, ts) of one parsed line, or raise ValueError naming what is wrong. `values` ends
    with the probability of each of `classes` (NaN when the record has none: older handlers).

    The hot loop of a million-row window: the checks run in C (map, set, sum) and fall back to a
    per-value search only to name the culprit of a bad line."""
    if not isinstance(obj, dict):
        raise ValueError(f"expected a JSON object, got {type(obj).__name__}")
    features = obj.get("features")
    if not isinstance(features, dict):
        raise ValueError("no 'features' object")
    try:
        values = [features[name] for name in columns]
    except KeyError as err:
        raise ValueError(f"feature {err.args[0]!r}: missing") from None
    suspect = not set(map(type, values)) <= _NUMBER or not math.isfinite(sum(values))
    if suspect and (problem := _bad_value(columns, values)):
        raise ValueError(problem)
    missing = [k for k in required if obj.get(k) in (None, "")]
    if missing:
        raise ValueError(f"no {', '.join(map(repr, missing))}")
    ts = None
    try:
        ts = parse_ts(obj["ts"])
    except (KeyError, ValueError, TypeError):
        if need_ts:
            raise ValueError(f"bad or missing 'ts': {obj.get('ts')!r}") from None
    if classes:
        values = values + _probabilities(obj.get("probabilities"), classes)
    texts = [None if obj.get(k) is None else str(obj[k]) for k in keys]
    return values, texts, ts


def _probabilities(probs, classes: tuple[str, ...]) -> list[float]:
    if not isinstance(probs, dict):
        return [math.nan] * len(classes)
    out = []
    for name in classes:
        value = probs.get(name)
        out.append(float(value) if type(value) in _NUMBER and math.isfinite(value) else math.nan)
    return out


def read_jsonl(
    location: str,
    columns: list[str],
    since: datetime | None = None,
    until: datetime | None = None,
    keys: tuple[str, ...] = ("prediction",),
    required: tuple[str, ...] = (),
    classes: tuple[str, ...] = (),
) -> tuple[pd.DataFrame, ReadStats]:
    """Records at `location` with ts in [since, until): the `columns` as float64, `keys` as text, the
    record time as `ts` (UTC), and with `classes` the logged probabilities as `proba_<class>`."""
    stats = ReadStats(location=location)
    names = [*columns, *(f"proba_{c}" for c in classes)]
    rows = _Rows([*names, "ts"], keys)
    need_ts = since is not None or until is not None
    stats.exists, files = log_files(location)
    for fs, path, kind in files:
        try:
            _read_file(fs, path, kind, stats, rows, (columns, keys, required, need_ts, classes), since, until)
        except (OSError, EOFError, zlib.error, gzip.BadGzipFile) as err:  # a corrupt or unreadable file
            stats.unreadable.append(f"{path}: {type(err).__name__}: {err}"[:300])
            continue
        stats.files += 1
        stats.kinds[kind or "plain"] += 1
    frame = rows.frame()
    frame["ts"] = pd.to_datetime(frame["ts"], unit="s", utc=True)
    stats.rows = len(frame)
    return frame, stats


def _read_file(fs, path: str, kind: str | None, stats: ReadStats, rows: _Rows, spec: tuple, since, until):
    """Parse one file into `rows`; a file that fails midway (a truncated gzip) keeps the lines before."""
    with fs.open(path, "rb", compression="gzip" if kind == "gzipped" else None) as fh:
        for number, line in enumerate(fh, start=1):
            if not line.strip():
                continue  # a blank line is not a record
            stats.lines += 1
            try:
                values, texts, ts = _record(_loads(line), *spec)
            except ValueError as err:  # orjson's and json's decode errors are ValueErrors too
                stats.bad(f"{path}:{number}", str(err).splitlines()[0][:200])
                continue
            if (
                ts is not None
                and (until is None or ts < until)
                and (stats.newest is None or ts > stats.newest)
            ):
                stats.newest = ts
            if (since is not None and ts < since) or (until is not None and ts >= until):
                stats.outside_window += 1
                continue
            rows.add([*values, ts.timestamp() if ts is not None else math.nan], texts)
