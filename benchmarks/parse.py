"""Request parsing: hostile bodies and good ones, the handler's bounded parser against the previous code.

Method (printed with the results):
- The handler runs in-process (no HTTP), loaded as TorchServe loads it (initialize with a stand-in
  context), with a synthetic 30-feature linear TorchScript model and max_batch_rows 1024 (params.yaml's
  default), the inference log off unless said, metrics off. Nothing to pull.
- The handler: the package serve/handler/ of the working tree. The previous code: the single file
  serve/handler.py at --old (default: the newest commit whose handler has no bounded parser, i.e. no
  `def _load(self, raw)`, found with git log), written to a temp directory and imported from there.
  Nothing of it is kept.
- Hostile bodies: one valid row ({"instances": [{30 features}]}) plus a "junk" member that repeats a
  unit (SHAPES) to 0.5, 1, 2 and 4 MB of body. Each body is sent alone (a TorchServe batch of one) and
  timed with perf_counter around handle(): parsing, bounds, validation and the answer (400/413, or a
  200 for the row when the junk is accepted). Each code runs --repeats times per cell (once when that
  run took over --slow seconds); a run over --budget seconds skips the shape's larger sizes for that
  code ("skip"). Reported per cell: ms per MB of body, the median of the runs, and the status. Per
  shape and code: the worst ms/MB over the sizes, and the growth = ms/MB at the largest size over
  ms/MB at the smallest (about 1 or below: linear; well above 1: superlinear). Per code: the worst
  cell, and the slowest single run (garbage collections land on some runs).
- Good bodies, the parse alone: each code's own parse path as its `_handle` runs it (body -> checked
  values and the values to log; the previous code's duplicate check and `data` byte search included),
  then also the log record built from those values; the codes alternate call by call, median over
  --parse-calls calls after 50 of warm-up, in microseconds.
- Good bodies: a 64-row Open Inference Protocol request (one FP32 tensor [64, 30], flat) and a 64-row
  request in the row format (named features), held-out-like random values (seeded). handle() on a batch
  of 1 and of 8 such requests, log off and log on (a temp dir), the two codes alternating call by call:
  the median over --good-calls calls after 20 of warm-up, in microseconds per request (parse,
  validation, forward, answer, and the log when on).
- --gc-freeze: gc.freeze() once the handlers are loaded, as a worker could after loading its model:
  the garbage collector's full collections then skip the ~170k objects of torch and the model, which
  otherwise cost ~160 ms each and come every few container-heavy bodies (the worst runs).
- The machine's load average before and after, since a shared machine inflates every number.

Usage: python benchmarks/parse.py [--sizes 0.5,1,2,4] [--shapes nested-arrays,...] [--repeats 5]
       [--old REV | --old none] [--slow 2] [--budget 15] [--parse-calls 3000]
       [--good-calls 300] [--gc-freeze]
"""

from __future__ import annotations

import argparse
import gc
import importlib.util
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

F = 30
FEATURES = [f"feature_{i}" for i in range(F)]
MB = 1_000_000
# name -> the repeated unit of the junk member (JSON text, without the separating comma)
SHAPES = {
    "nested-arrays": b"[[0]]",  # the stalling body reported: many small nested arrays
    "empty-arrays": b"[]",
    "deep-arrays": b"[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]",
    "small-objects": b'{"a":0}',
    "duplicate-keys": b'{"a":0,"a":1}',
    "colons-in-strings": b'"a:b"',
    "escaped-keys": b'{"\\u0061":[1]}',
    "escapes-in-strings": b'"\\"\\\\:"',
    "numbers": b"0.123456789",
    "long-strings": b'"' + b"x" * 4000 + b'"',
    # padded so that 0.5 to 2 MB stay under the bound: the most containers the parser builds and walks
    "padded-arrays": b"[[0.1234567890123]]",
    "padded-objects": b'{"a":"' + b"x" * 24 + b'"}',
}
MARKER = "def _load(self, raw)"


class Context:
    """What TorchServe hands the handler: ids, per-request status; no metrics cache."""

    model_name = "bench"

    def __init__(self, model_dir: Path, n: int):
        self.system_properties = {"model_dir": str(model_dir)}
        self.manifest = {"model": {"serializedFile": "model.pt"}}
        self.request_ids = {i: f"req-{i}" for i in range(n)}
        self.status: dict[int, int] = {}

    def set_response_status(self, code, phrase, idx):
        self.status[idx] = code

    def set_response_content_type(self, idx, value):
        pass


def old_revision(wanted: str) -> str | None:
    if wanted != "auto":
        return None if wanted == "none" else wanted
    revs = subprocess.run(
        ["git", "log", "--format=%H", "--", "serve/handler.py"], cwd=ROOT, capture_output=True, text=True
    ).stdout.split()
    for rev in revs:
        text = subprocess.run(
            ["git", "show", f"{rev}:serve/handler.py"], cwd=ROOT, capture_output=True, text=True
        ).stdout
        if text and MARKER not in text:
            return rev
    return None


def load_module(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def make_handler(module, work: Path, log_dir: str | None):
    import torch

    model_dir = work / "model"
    if not model_dir.exists():
        model_dir.mkdir()
        torch.manual_seed(0)
        torch.jit.script(torch.nn.Linear(F, 2)).save(str(model_dir / "model.pt"))
        spec = {
            "features": FEATURES,
            "classes": ["no", "yes"],
            "task": "classification",
            "schema": [{"name": f, "type": "float", "missing": "error"} for f in FEATURES],
            "model_version": "1",
            "max_batch_rows": 1024,
        }
        (model_dir / "serve.json").write_text(json.dumps(spec))
    os.environ["MLOPS_INFERENCE_LOG_DIR"] = log_dir or "off"
    os.environ["MLOPS_METRICS_FLUSH_SECONDS"] = "0"
    handler = module.TabularHandler()
    handler.initialize(Context(model_dir, 1))
    return handler, model_dir


def hostile(unit: bytes, size: int) -> bytes:
    row = json.dumps({f: 1.0 + i / 7 for i, f in enumerate(FEATURES)}).encode()
    head, tail = b'{"instances": [' + row + b'], "junk": [', b"]}"
    count = max(1, (size - len(head) - len(tail)) // (len(unit) + 1))
    return head + b",".join([unit] * count) + tail


def timed(handler, model_dir, bodies: list[bytes]) -> tuple[float, list[int]]:
    context = Context(model_dir, len(bodies))
    started = time.perf_counter()
    handler.handle([{"body": b} for b in bodies], context)
    return time.perf_counter() - started, [context.status.get(i, 200) for i in range(len(bodies))]


def hostile_table(codes: dict, shapes: list[str], sizes: list[float], args) -> None:
    print("\nHostile bodies: ms per MB of body, median of the runs (status)")
    header = f"{'shape':20} {'code':4} " + " ".join(f"{s:>13g} MB" for s in sizes)
    print(header + f" {'worst ms/MB':>12} {'growth':>7}")
    worst_all: dict[str, float] = {}
    slowest: dict[str, float] = {}
    for shape in shapes:
        for code, (handler, model_dir) in codes.items():
            cells, per_mb, skipped = [], [], False
            for size in sizes:
                if skipped:
                    cells.append(f"{'skip':>16}")
                    continue
                body = hostile(SHAPES[shape], int(size * MB))
                runs = [timed(handler, model_dir, [body])]
                if runs[0][0] < args.slow:  # a run over --slow seconds is not repeated
                    runs += [timed(handler, model_dir, [body]) for _ in range(args.repeats - 1)]
                seconds = [t for t, _ in runs]
                slowest[code] = max(slowest.get(code, 0.0), max(seconds) * MB / len(body))
                per_mb.append(statistics.median(seconds) * 1e3 * MB / len(body))
                cells.append(f"{per_mb[-1]:10.1f} ({runs[0][1][0]})")
                skipped = max(seconds) > args.budget
            growth = per_mb[-1] / per_mb[0] if len(per_mb) > 1 and per_mb[0] > 0 else float("nan")
            worst_all[code] = max(worst_all.get(code, 0.0), max(per_mb))
            print(f"{shape:20} {code:4} " + " ".join(cells) + f" {max(per_mb):12.1f} {growth:7.2f}")
    for code, worst in worst_all.items():
        print(
            f"worst over every hostile shape and size, {code} code: {worst:.1f} ms per MB"
            f" (slowest single run: {slowest[code] * 1e3:.1f} ms per MB)"
        )


def good_bodies() -> dict[str, bytes]:
    rng = random.Random(0)
    rows = [[round(rng.uniform(0, 30), 4) for _ in range(F)] for _ in range(64)]
    flat = [v for r in rows for v in r]
    v2 = {"inputs": [{"name": "input-0", "shape": [64, F], "datatype": "FP32", "data": flat}]}
    named = {"instances": [dict(zip(FEATURES, r, strict=True)) for r in rows]}
    return {"64-row v2": json.dumps(v2).encode(), "64-row rows": json.dumps(named).encode()}


def parsed(module, handler, body: bytes):
    """One request's parse path as that code's `_handle` runs it: the values to log, as logged."""
    context = Context(Path("."), 1)
    if hasattr(module, "_data_text"):  # the previous code: parse, validate, duplicate check, byte search
        doc, raw = handler._body({"body": body}, 0, context)
        protocol, _, _, bulk, bulk_members, logged = handler._parse_request(doc)
        handler._check_duplicates(raw, doc, bulk, bulk_members)
        if protocol == "v2" and logged is bulk and bulk and type(bulk[0]) is not list:
            logged = module._data_text(raw, len(bulk)) or logged
        return logged
    return handler._parse_request(handler._body({"body": body}, 0, context))[3]


def parse_table(codes: dict, modules: dict, calls: int) -> None:
    print("\nGood bodies, the parse alone: median microseconds per request (codes alternate call by call)")
    print(f"{'body':14} {'what':>20} " + " ".join(f"{c:>9}" for c in codes) + "  new/old")
    ts = b'"2026-01-01T00:00:00.000Z"'
    for name, body in good_bodies().items():
        for what in ("parse + validate", "... + log record"):
            runs: dict[str, list[float]] = {code: [] for code in codes}
            for i in range(50 + calls):
                for code, (handler, _) in codes.items():
                    started = time.perf_counter()
                    logged = parsed(modules[code], handler, body)
                    if what != "parse + validate":
                        handler.records.record(ts, "req-0", logged, 64, ["no"] * 64, [0.5] * 128, None)
                    if i >= 50:
                        runs[code].append(time.perf_counter() - started)
            medians = {code: statistics.median(r) * 1e6 for code, r in runs.items()}
            ratio = medians["new"] / medians["old"] if "old" in medians else float("nan")
            cells = " ".join(f"{medians[c]:9.1f}" for c in codes)
            print(f"{name:14} {what:>20} {cells}  {ratio:7.2f}")


def good_table(modules: dict, work: Path, calls: int) -> None:
    print("\nGood bodies: median microseconds per request (handle(): parse, validate, forward, answer)")
    print(f"{'body':14} {'batch':>5} {'log':>4} " + " ".join(f"{c:>9}" for c in modules) + "  new/old")
    bodies = good_bodies()
    for log in (False, True):
        handlers = {}
        for code, module in modules.items():
            log_dir = tempfile.mkdtemp(dir=work) if log else None
            handlers[code] = make_handler(module, work, log_dir)
        for name, body in bodies.items():
            for batch in (1, 8):
                runs: dict[str, list[float]] = {code: [] for code in handlers}
                for i in range(20 + calls):  # the codes alternate call by call: load drift hits both alike
                    for code, (handler, model_dir) in handlers.items():
                        seconds, statuses = timed(handler, model_dir, [body] * batch)
                        assert statuses == [200] * batch, statuses
                        if i >= 20:  # the first 20: warm-up
                            runs[code].append(seconds)
                medians = {code: statistics.median(r) / batch * 1e6 for code, r in runs.items()}
                ratio = medians["new"] / medians["old"] if "old" in medians else float("nan")
                cells = " ".join(f"{medians[c]:9.0f}" for c in modules)
                print(f"{name:14} {batch:5d} {'on' if log else 'off':>4} {cells}  {ratio:7.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="0.5,1,2,4")
    parser.add_argument("--shapes", default=",".join(SHAPES))
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--old", default="auto", help="git revision of the previous handler, or none")
    parser.add_argument("--slow", type=float, default=2.0)
    parser.add_argument("--budget", type=float, default=15.0)
    parser.add_argument("--good-calls", type=int, default=300)
    parser.add_argument("--parse-calls", type=int, default=3000)
    parser.add_argument("--gc-freeze", action="store_true")
    args = parser.parse_args()
    sizes = [float(s) for s in args.sizes.split(",")]
    shapes = [s for s in args.shapes.split(",") if s]
    print(__doc__.split("Usage:")[0].strip())
    print(f"\nload average before: {os.getloadavg()}")
    with tempfile.TemporaryDirectory(prefix="bench-parse-") as tmp:
        work = Path(tmp)
        modules = {"new": importlib.import_module("serve.handler")}
        rev = old_revision(args.old)
        if rev:
            show = ["git", "show", f"{rev}:serve/handler.py"]
            text = subprocess.run(show, cwd=ROOT, capture_output=True, text=True, check=True).stdout
            (work / "handler_old.py").write_text(text)
            modules["old"] = load_module(work / "handler_old.py", "handler_old")
            print(f"previous code: serve/handler.py at {rev[:12]}")
        codes = {code: make_handler(module, work, None) for code, module in modules.items()}
        if args.gc_freeze:
            gc.freeze()
            print(f"gc.freeze(): {gc.get_freeze_count()} objects frozen")
        hostile_table(codes, shapes, sizes, args)
        parse_table(codes, modules, args.parse_calls)
        good_table(modules, work, args.good_calls)
    print(f"\nload average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
