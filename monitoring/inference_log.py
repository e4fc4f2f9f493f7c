"""Read JSON-lines records (the handler's inference log, labelled feedback) into a feature table.

Two record formats, mixed freely in one file:
- a row per line (labelled feedback):
  {"ts": "<UTC ISO 8601>", "features": {name: value}, "prediction": ..., "probabilities": {class: p}, ...}
- a request per line (the handler's log), in the layout serve/handler/records.py defines for the
  handler and this reader alike: {"ts", "request_id", "model_version", "features": [names], "rows": n,
  "values": [n*F or n lists of F], "prediction": [n], "classes": [C], "probabilities": [n*C], ...}
Both give the same table: one row per served row, the request's ts, request_id and prediction on each.
- a refused request (the handler answered 4xx): {"ts", "request_id", "model_version",
  "refused": {"status", "reason", "column"}}: no values, never a row; counted in ReadStats.refusals
  (time, column or None, reason) for the drift job's rejection rule.

Values are the RAW inputs: with `types` (feature -> float|int|bool|category, params.yaml's schema), a
category column comes back as its values as sent (strings, None for null), a bool column as True/False,
and a numeric column as float64 with NaN for null; without `types`, every column must be a finite number.

The handler rotates its
files by size and age, so a log directory holds `x.jsonl`, rotated `x.jsonl.1`, ... and gzipped
`x.jsonl.gz`, `x.jsonl.1.gz`: every file whose name contains `.jsonl` is read, and the count of each kind
is reported, so a reader that skips a kind can never go unnoticed again. Logs are written by
servers that crash, get truncated and get edited by hand, so a bad line is counted, one example of
each is kept for the message, and it is skipped: it never stops the job and is never dropped silently.
Local paths and fsspec URIs (s3://, gs://, ... with their fsspec package installed) read the same way.
"""

from __future__ import annotations

import contextlib
import gzip
import math
import zlib
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
import pandas as pd

from mlops.config import values as parse
from serve.handler import records
from serve.handler.records import log_kind, parse_ts

try:  # about 3x faster on big windows; the standard library does the same job
    from orjson import loads as _loads
except ImportError:  # pragma: no cover
    from json import loads as _loads

CHUNK = 65_536  # rows buffered as Python lists before they become a block
NUMERIC_TYPES = ("float", "int")
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
    refusals: list[tuple[float, str | None, str]] = field(default_factory=list)  # (ts, column, reason)

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
        } | {"newest": self.newest.isoformat() if self.newest else None, "refused": len(self.refusals)}

    def kinds_text(self) -> str:
        return ", ".join(f"{n} {kind}" for kind, n in self.kinds.items())


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
    """Columnar accumulator: value blocks (float64, or object when some columns stay raw), one list per
    text field. Row records are buffered as lists; a request record arrives as a block of its own."""

    def __init__(self, columns: list[str], keys: tuple[str, ...], raw: bool):
        self.columns, self.keys, self.raw = columns, keys, raw
        self.dtype = object if raw else np.float64
        self.blocks: list[np.ndarray] = []
        self.pending: list[list] = []
        self.text: list[list] = [[] for _ in keys]

    def add(self, values: list, texts: list) -> None:
        self.pending.append(values)
        for column, value in zip(self.text, texts, strict=True):
            column.append(value)
        if len(self.pending) >= CHUNK:
            self.flush()

    def add_block(self, values: np.ndarray, texts: list[list]) -> None:
        self.flush()
        self.blocks.append(values)
        for column, value in zip(self.text, texts, strict=True):
            column.extend(value)

    def flush(self) -> None:
        if self.pending:
            self.blocks.append(np.asarray(self.pending, dtype=self.dtype))
            self.pending = []

    def frame(self) -> pd.DataFrame:
        self.flush()
        values = (
            np.concatenate(self.blocks) if self.blocks else np.empty((0, len(self.columns)), dtype=self.dtype)
        )
        out = pd.DataFrame(values, columns=self.columns)
        for key, column in zip(self.keys, self.text, strict=True):
            out[key] = pd.Series(column, dtype=object)
        return out


_NUMBER = frozenset((int, float))  # not bool: type(True) is bool
_NUMBER_OR_NULL = frozenset((int, float, type(None)))
_KIND_TYPES = {
    "category": frozenset((str, int, float, type(None))),
    "bool": frozenset((bool, int, float, type(None))),  # true/false, or 0/1 as the handler accepts
}


class _Spec:
    """What a record must hold: the columns (and their types, when known), the text keys, the required
    keys, whether a ts is needed, the classes whose probabilities are read."""

    def __init__(self, columns, keys, required, need_ts, classes, types):
        self.columns, self.keys, self.required = list(columns), tuple(keys), tuple(required)
        self.need_ts, self.classes = need_ts, tuple(classes)
        types = dict(types or {})
        self.typed = bool(types)
        self.kinds = [str(types.get(c, "float")) for c in self.columns]
        self.raw = [j for j, k in enumerate(self.kinds) if k not in NUMERIC_TYPES]
        self.numeric = [j for j, k in enumerate(self.kinds) if k in NUMERIC_TYPES]


def _bad_value(spec: _Spec, values: list) -> str:
    """The first value of a row that its column does not accept, as a message ('' when all are fine)."""
    for name, kind, value in zip(spec.columns, spec.kinds, values, strict=True):
        if kind in NUMERIC_TYPES:
            if value is None and spec.typed:
                continue
            if type(value) not in _NUMBER or not math.isfinite(value):
                return f"feature {name!r}: not a finite number: {value!r}"
        elif type(value) not in _KIND_TYPES.get(kind, _KIND_TYPES["category"]):
            return f"feature {name!r}: not a {kind} value: {value!r}"
    return ""  # only the sum overflowed: every value is fine


def _read_numbers(spec: _Spec, values: list) -> list:
    """The row with each numeric column's string read as the handler read it (mlops/config/values.py: " 12.5 "
    is 12.5, "NA" a null where the schema is known), so a row the server scored is never dropped here.
    A string that is no number stays, and the check below names it."""
    out = list(values)
    for j in spec.numeric:
        value = out[j]
        if type(value) is str:
            if parse.is_null(value):
                out[j] = None if spec.typed else value
            else:
                with contextlib.suppress(parse.Invalid):  # the check below names it
                    out[j] = parse.number(value)
    return out


def _check_values(spec: _Spec, values: list) -> None:
    """Raise ValueError naming the culprit unless every value of the row suits its column. The checks
    run in C (set of types, sum) on the common all-number row; a per-value search names a culprit."""
    if not spec.raw and set(map(type, values)) <= _NUMBER and math.isfinite(sum(values)):
        return
    if problem := _bad_value(spec, values):
        raise ValueError(problem)


def _meta(obj, spec: _Spec):
    """(texts, ts) of a record, or ValueError for a missing required key or a bad ts."""
    missing = [k for k in spec.required if obj.get(k) in (None, "")]
    if missing:
        raise ValueError(f"no {', '.join(map(repr, missing))}")
    ts = None
    try:
        ts = parse_ts(obj["ts"])
    except (KeyError, ValueError, TypeError):
        if spec.need_ts:
            raise ValueError(f"bad or missing 'ts': {obj.get('ts')!r}") from None
    return ts


def _record(obj, spec: _Spec):
    """(values, texts, ts) of one parsed row record, or raise ValueError naming what is wrong. `values`
    ends with the probability of each of the classes (NaN when the record has none, as feedback may)."""
    if not isinstance(obj, dict):
        raise ValueError(f"expected a JSON object, got {type(obj).__name__}")
    features = obj.get("features")
    if not isinstance(features, dict):
        raise ValueError("no 'features' object")
    try:
        values = [features[name] for name in spec.columns]
    except KeyError as err:
        raise ValueError(f"feature {err.args[0]!r}: missing") from None
    if str in set(map(type, values)):
        values = _read_numbers(spec, values)
    _check_values(spec, values)
    ts = _meta(obj, spec)
    if spec.classes:
        values = values + _probabilities(obj.get("probabilities"), spec.classes)
    texts = [None if obj.get(k) is None else str(obj[k]) for k in spec.keys]
    return values, texts, ts


def _request(obj: dict, spec: _Spec):
    """(values block [n, columns (+ classes)], per-key value lists, ts, n) of one request record (the
    handler's columnar log), or raise ValueError naming what is wrong."""
    names, n, flat = records.request_values(obj)
    width = len(names)
    index = {name: j for j, name in enumerate(names) if isinstance(name, str)}
    try:
        take = [index[name] for name in spec.columns]
    except KeyError as err:
        raise ValueError(f"feature {err.args[0]!r}: missing") from None
    ts = _meta(obj, spec)
    if not spec.raw and set(map(type, flat)) <= (_NUMBER_OR_NULL if spec.typed else _NUMBER):
        block = np.array(flat, dtype=np.float64).reshape(n, width)[:, take]
        if not np.isfinite(block).all():
            bad = ~np.isfinite(block) & ~(np.isnan(block) if spec.typed else False)
            if bad.any():
                row, col = np.argwhere(bad)[0]
                raise ValueError(f"row {row}: feature {spec.columns[col]!r}: not a finite number")
    else:
        block = np.array(flat, dtype=object).reshape(n, width)[:, take]
        for i, row in enumerate(block):
            row = _read_numbers(spec, list(row))
            for j in spec.numeric:
                block[i, j] = row[j]
            if problem := _bad_value(spec, row):
                raise ValueError(problem)
        if not spec.raw:
            block = block.astype(np.float64)
    if spec.classes:
        block = np.concatenate(
            [block, _request_probabilities(obj, spec.classes, n).astype(block.dtype)], axis=1
        )
    texts = []
    for key in spec.keys:
        value = obj.get(key)
        if isinstance(value, list):
            if len(value) != n:
                raise ValueError(f"{key!r} has {len(value)} entries for {n} rows")
            texts.append(value)
        else:
            texts.append([None if value is None else str(value)] * n)
    return block, texts, ts, n


def _request_probabilities(obj: dict, classes: tuple[str, ...], n: int) -> np.ndarray:
    out = np.full((n, len(classes)), math.nan)
    found = records.request_probabilities(obj, n)
    if found is None:
        return out
    logged, probs = found
    if not set(map(type, probs)) <= _NUMBER:
        return out
    matrix = np.array(probs, dtype=np.float64).reshape(n, len(logged)) if logged else out
    where = {str(c): j for j, c in enumerate(logged)}
    for k, name in enumerate(classes):
        if name in where:
            out[:, k] = matrix[:, where[name]]
    return out


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
    types: dict[str, str] | None = None,
) -> tuple[pd.DataFrame, ReadStats]:
    """Records at `location` with ts in [since, until), a row per served row: the `columns` (float64;
    with `types`, category and bool columns as their raw values), `keys` as text (a request record's
    per-row lists, e.g. `prediction`, keep their JSON values), the record time as `ts` (UTC), and with
    `classes` the logged probabilities as `proba_<class>`."""
    stats = ReadStats(location=location)
    need_ts = since is not None or until is not None
    spec = _Spec(columns, keys, required, need_ts, classes, types)
    names = [*columns, *(f"proba_{c}" for c in classes)]
    rows = _Rows(names, keys, raw=bool(spec.raw))
    times: list[float] = []
    stats.exists, files = log_files(location)
    for fs, path, kind in files:
        try:
            _read_file(fs, path, kind, stats, rows, times, spec, since, until)
        except (OSError, EOFError, zlib.error, gzip.BadGzipFile) as err:  # a corrupt or unreadable file
            stats.unreadable.append(f"{path}: {type(err).__name__}: {err}"[:300])
            continue
        stats.files += 1
        stats.kinds[kind or "plain"] += 1
    frame = rows.frame()
    for j in spec.numeric if spec.raw else ():
        frame[columns[j]] = pd.to_numeric(frame[columns[j]], errors="coerce").astype(np.float64)
    for name in names[len(columns) :] if spec.raw else ():
        frame[name] = frame[name].astype(np.float64)
    frame["ts"] = pd.to_datetime(np.asarray(times, dtype=np.float64), unit="s", utc=True)
    stats.rows = len(frame)
    return frame, stats


def _read_file(
    fs, path: str, kind: str | None, stats: ReadStats, rows: _Rows, times: list, spec, since, until
):
    """Parse one file into `rows`; a file that fails midway (a truncated gzip) keeps the lines before."""
    with fs.open(path, "rb", compression="gzip" if kind == "gzipped" else None) as fh:
        for number, line in enumerate(fh, start=1):
            if not line.strip():
                continue  # a blank line is not a record
            stats.lines += 1
            try:
                obj = _loads(line)
                if records.is_refusal(obj):
                    _refusal(obj, stats, since, until)
                    continue
                request = records.is_request(obj)
                if request:
                    block, texts, ts, n = _request(obj, spec)
                else:
                    (values, texts, ts), n = _record(obj, spec), 1
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
                stats.outside_window += n
                continue
            if request:
                rows.add_block(block, texts)
            else:
                rows.add(values, texts)
            times.extend([ts.timestamp() if ts is not None else math.nan] * n)


def _refusal(obj: dict, stats: ReadStats, since, until) -> None:
    """A request the handler refused: counted with its time, column and reason (a ValueError when its ts
    is bad). It shows the server was live, so it counts for `newest` like a served record."""
    try:
        ts = parse_ts(obj["ts"])
    except (KeyError, ValueError, TypeError):
        raise ValueError(f"bad or missing 'ts': {obj.get('ts')!r}") from None
    if until is not None and ts >= until:
        return
    if stats.newest is None or ts > stats.newest:
        stats.newest = ts
    if since is not None and ts < since:
        return
    column, reason = records.refusal_fields(obj)
    stats.refusals.append((ts.timestamp(), column, reason))
