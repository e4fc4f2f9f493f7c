"""The two request bodies, rows and the Open Inference Protocol (v2), to one flat float64 block.

- rows:  {"instances": [{"<feature>": <number>, ...} or [<number>, ...], ...]}
- v2:    {"inputs": [{"name": "input-0", "shape": [n, F], "datatype": "FP32", "data": [n*F numbers]}]},
         or one tensor of shape [n] per feature, named by the feature.

Both arrive on `/predictions/<model>` and `/v2/models/<model>/infer` (TorchServe routes both to the
handler with the same bytes), so the body's shape says which protocol it is. The values logged are the
values parsed from the structure that was scored, never a search of the raw bytes.
"""

from __future__ import annotations

import math
import struct
from array import array
from itertools import chain

from serve.handler import jsonio
from serve.handler.context import header
from serve.handler.errors import RequestError, echo, kind_name
from serve.handler.schema import NUMBER_OR_NULL, NUMBER_TYPES, doubles

JSON_TYPES = ("application/json", "application/x-ndjson", "text/json")

V2_COLUMN_DATATYPES = {"BOOL", "BYTES"}  # besides the numeric ones, for one-input-per-feature requests
V2_DATATYPES = {
    "FP16",
    "FP32",
    "FP64",
    "INT8",
    "INT16",
    "INT32",
    "INT64",
    "UINT8",
    "UINT16",
    "UINT32",
    "UINT64",
}
FLOAT16_MAX = 65504.0
NULL = type(None)
# What each v2 datatype may hold (null passes: the column's missing policy decides). Integer types take
# integral numbers in their range (3.0 too), FP16 numbers within its finite range, FP32/FP64 numbers
# (float32's range is checked on the tensor), BOOL true/false, BYTES strings (category features only).
V2_INT_RANGES = {
    **{f"INT{b}": (-(2 ** (b - 1)), 2 ** (b - 1) - 1) for b in (8, 16, 32, 64)},
    **{f"UINT{b}": (0, 2**b - 1) for b in (8, 16, 32, 64)},
}
V2_VALUE_TYPES = {"BOOL": {bool, NULL}, "BYTES": {str, NULL}}  # the others: NUMBER_OR_NULL
V2_FEATURE_KINDS = {"BOOL": ("bool",), "BYTES": ("category", "date", "datetime")}  # the kinds each may feed
V2_SEND = {
    "category": "its values as BYTES (or integer codes)",
    "bool": "it as BOOL (or 0/1 as INT8, ...)",
    "date": "its values as BYTES (ISO 8601 text)",
    "datetime": "its values as BYTES (ISO 8601 text)",
}


def _datatype_problem(datatype: str, values: list, types: set) -> tuple[int, str, str] | None:
    """(index, what the value must be, reject reason) of the first value a v2 `datatype` cannot hold, or
    None. `types`: set(map(type, values)). Nulls pass (the column's missing policy decides)."""
    allowed = V2_VALUE_TYPES.get(datatype, NUMBER_OR_NULL)
    ints = V2_INT_RANGES.get(datatype)
    if not types <= allowed:
        i = next(i for i, v in enumerate(values) if type(v) not in allowed)
        if datatype == "BOOL":
            return i, "must be true or false (BOOL)", "v2"
        if datatype == "BYTES":
            return i, "must be a string (BYTES)", "v2"
        return i, f"must be {'an integer' if ints else 'a number'} ({datatype})", "not_a_number"
    if ints is None and datatype != "FP16":
        return None
    numbers = [v for v in values if v is not None] if NULL in types else values
    if ints is not None:
        lo, hi = ints
        if float in types and not all(v.is_integer() for v in numbers if type(v) is float):
            i = next(i for i, v in enumerate(values) if type(v) is float and not v.is_integer())
            return i, f"must be an integer ({datatype})", "v2"
        if numbers and (min(numbers) < lo or max(numbers) > hi):
            i = next(i for i, v in enumerate(values) if v is not None and not lo <= v <= hi)
            return i, f"is outside the {datatype} range [{lo}, {hi}]", "v2"
        return None
    if any(map(FLOAT16_MAX.__lt__, map(abs, numbers))):
        i = next(i for i, v in enumerate(values) if v is not None and abs(v) > FLOAT16_MAX)
        return i, f"is outside the FP16 range [-{FLOAT16_MAX:g}, {FLOAT16_MAX:g}]", "v2"
    return None


class Protocols:
    """Request parsing, mixed into TabularHandler. It reads the handler's `features`, `n` (their count),
    `index` (name -> position), `keys` (their set), `take` (a row dict's values in feature order),
    `schema`, `max_rows` and `max_nodes`."""

    def _body(self, request, idx: int, context):
        """The request's parsed JSON body, or a RequestError."""
        if not isinstance(request, dict):
            raise RequestError(400, "empty request", "empty")
        content_type = (header(context, idx, "content-type") or "").split(";")[0].strip().lower()
        body = request.get("body")
        if body is None:
            body = request.get("data")
        if content_type and content_type not in JSON_TYPES:
            raise RequestError(
                415, f"unsupported Content-Type {echo(content_type)}: send application/json", "content_type"
            )
        if body is None or (isinstance(body, (bytes, bytearray, str)) and not body.strip()):
            raise RequestError(400, 'empty body: send {"instances": [...]} or {"inputs": [...]}', "empty")
        if not isinstance(body, (bytes, bytearray, str)):
            jsonio.count_members(
                body, math.inf
            )  # already decoded by TorchServe (decode_input_request=true): depth only
            return body
        what = f"{self.max_rows} rows of {self.n} features"
        return jsonio.load(bytes(body) if isinstance(body, bytearray) else body, self.max_nodes, what)

    def _parse_request(self, body) -> tuple[str, array, object, object]:
        """(protocol, flat float64 values in model feature order, v2 id, the values as parsed: what the
        log keeps, exactly what was scored) or a RequestError."""
        if not isinstance(body, dict):
            raise RequestError(400, 'body must be a JSON object: {"instances": [...]} or {"inputs": [...]}')
        if "inputs" in body and "instances" in body:
            raise RequestError(400, 'send either "instances" (rows) or "inputs" (Open Inference Protocol)')
        if "inputs" in body:
            values, logged = self._v2_values(body)
            return "v2", values, body.get("id"), logged
        if "instances" not in body:
            got = ", ".join(echo(k) for k in list(body)[:5]) or "none"
            raise RequestError(400, f'missing key "instances" or "inputs" (got keys: {got})', "missing_key")
        instances = body["instances"]
        if not isinstance(instances, list) or not instances:
            raise RequestError(400, '"instances" must be a non-empty list of rows')
        if len(instances) > self.max_rows:
            raise RequestError(
                413,
                f"batch of {len(instances)} rows exceeds the limit of {self.max_rows} rows",
                "too_many_rows",
            )
        values, logged = self._row_values(instances)
        return "rows", values, None, logged

    def _v2_values(self, body: dict) -> tuple[array, object]:
        """An Open Inference Protocol request straight to a flat array: one [n, F] tensor, or one tensor
        per feature (named by feature; BYTES for category columns)."""
        inputs = body["inputs"]
        if not isinstance(inputs, list) or not inputs or not all(isinstance(t, dict) for t in inputs):
            raise RequestError(400, self._v2_hint(), "v2")
        shape = inputs[0].get("shape")
        if len(inputs) == 1 and not (isinstance(shape, list) and len(shape) == 1 and self.n > 1):
            return self._v2_tensor(inputs[0])
        return self._v2_columns(inputs)

    def _v2_hint(self) -> str:
        return (
            f'"inputs" must hold one tensor of shape [n, {self.n}], or one tensor of shape [n] per feature'
            f" ({self.n} named {echo(self.features[0])}, ...)"
        )

    def _v2_rows(self, shape) -> int:
        if shape[0] > self.max_rows:
            raise RequestError(
                413, f"batch of {shape[0]} rows exceeds the limit of {self.max_rows} rows", "too_many_rows"
            )
        return shape[0]

    def _v2_feeds(self, where: str, datatype: str, columns: list) -> None:
        """BOOL feeds bool features only, BYTES category and date features only (numbers go as FP32, ...)."""
        kinds = V2_FEATURE_KINDS.get(datatype)
        if kinds is None:
            return
        wrong = next((c for c in columns if c.kind not in kinds), None)
        if wrong is not None:
            send = V2_SEND.get(wrong.kind, "its numbers as FP32, INT64, ...")
            raise RequestError(
                400,
                f"{where}: datatype {datatype} is for {kinds[0]} features, and {wrong.name} is a {wrong.kind}"
                f" feature: send {send}",
                "v2",
            )

    def _v2_tensor(self, tensor: dict) -> tuple[array, object]:
        shape, datatype, data = tensor.get("shape"), tensor.get("datatype"), tensor.get("data")
        if (
            not isinstance(shape, list)
            or len(shape) != 2
            or not all(type(d) is int for d in shape)
            or shape[1] != self.n
            or shape[0] < 1
        ):
            raise RequestError(
                400, f'input "shape" must be [n, {self.n}] with n >= 1, got {echo(shape)}', "v2"
            )
        rows, n = self._v2_rows(shape), self.n
        numeric = self.schema.numeric
        if datatype not in V2_DATATYPES and (numeric or datatype not in V2_COLUMN_DATATYPES):
            raise RequestError(
                400, f'input "datatype" must be a numeric type (FP32, ...), got {echo(datatype)}', "v2"
            )
        self._v2_feeds(f"input {echo(tensor.get('name'))}", datatype, self.schema.columns)
        if not isinstance(data, list):
            raise RequestError(400, 'input "data" must be a list of numbers (row-major)', "v2")
        logged = data
        if data and type(data[0]) is list:  # nested by row: exactly n rows of F values, nothing ragged
            if set(map(type, data)) != {list}:
                raise RequestError(400, 'input "data" mixes rows and numbers', "v2")
            if len(data) != rows or set(map(len, data)) != {n}:
                bad = next((i for i, r in enumerate(data) if len(r) != n), None)
                detail = f"{len(data)} row(s)" if bad is None else f"{len(data[bad])} values in row {bad}"
                raise RequestError(
                    400, f'input "data" has {detail}, shape {shape} needs {rows} rows of {n} values', "v2"
                )
            data = list(chain.from_iterable(data))
        if len(data) != rows * n:
            raise RequestError(
                400, f'input "data" has {len(data)} values, shape {shape} needs {rows * n}', "v2"
            )
        types = set(map(type, data))
        problem = _datatype_problem(datatype, data, types)
        if problem is not None:
            i, wants, reason = problem
            got = f"got {kind_name(data[i])} {echo(data[i])}"
            raise RequestError(
                400, f"row {i // n}: {self.features[i % n]} {wants}, {got}", reason, self.features[i % n]
            )
        if numeric and types <= NUMBER_TYPES:
            try:
                return doubles(data), logged
            except (OverflowError, struct.error):  # an integer beyond float64: named by the slow path
                pass
        return self.schema.encode_columns([data[j::n] for j in range(n)]), logged

    def _v2_columns(self, inputs: list) -> tuple[array, object]:
        """One input per feature: {"name": <feature>, "shape": [n] or [n, 1], "datatype", "data"}."""
        by_name: dict = {}
        for tensor in inputs:
            name = tensor.get("name")
            if name not in self.index:
                raise RequestError(400, f"input {echo(name)} is not a feature; " + self._v2_hint(), "v2")
            if name in by_name:
                raise RequestError(400, f"input {echo(name)} appears twice", "v2")
            by_name[name] = tensor
        if len(by_name) != self.n:
            absent = [f for f in self.features if f not in by_name]
            raise RequestError(400, "missing inputs: " + ", ".join(echo(f) for f in absent[:5]), "v2")
        columns, rows = [], None
        for name, column in zip(self.features, self.schema.columns, strict=True):
            tensor = by_name[name]
            shape, datatype, data = tensor.get("shape"), tensor.get("datatype"), tensor.get("data")
            if (
                not isinstance(shape, list)
                or not 1 <= len(shape) <= 2
                or not all(type(d) is int for d in shape)
                or shape[0] < 1
                or shape[1:] not in ([], [1])
                or (rows is not None and shape[0] != rows)
            ):
                raise RequestError(
                    400,
                    f"input {echo(name)}: shape must be [n] or [n, 1], the same n for every input, "
                    f"got {echo(shape)}",
                    "v2",
                )
            rows = self._v2_rows(shape)
            if datatype not in V2_DATATYPES and datatype not in V2_COLUMN_DATATYPES:
                raise RequestError(
                    400,
                    f"input {echo(name)}: datatype must be FP32, INT64, BOOL, BYTES, ..., got "
                    f"{echo(datatype)}",
                    "v2",
                )
            self._v2_feeds(f"input {echo(name)}", datatype, [column])
            if not isinstance(data, list):
                raise RequestError(400, f"input {echo(name)}: data must be a list", "v2")
            if data and type(data[0]) is list:  # [[x], ...] only for shape [n, 1]
                if len(shape) != 2 or set(map(type, data)) != {list} or set(map(len, data)) != {1}:
                    raise RequestError(
                        400, f"input {echo(name)}: data must be flat, or [[x], ...] for shape [n, 1]", "v2"
                    )
                data = [r[0] for r in data]
            if len(data) != rows:
                raise RequestError(
                    400, f"input {echo(name)}: data has {len(data)} values, shape needs {rows}", "v2"
                )
            problem = _datatype_problem(datatype, data, set(map(type, data)))
            if problem is not None:
                i, wants, reason = problem
                got = f"got {kind_name(data[i])} {echo(data[i])}"
                raise RequestError(400, f"input {echo(name)}: row {i}: {name} {wants}, {got}", reason, name)
            columns.append(data)
        return self.schema.encode_columns(columns), list(zip(*columns, strict=True))

    def _row_values(self, instances: list) -> tuple[array, list]:
        """The rows' values as one flat float64 array in model feature order, and the rows' raw values
        (for the log). For an all-number schema the common case stays in C (itemgetter, map(type),
        array); otherwise, or on a problem, each column is encoded (and checked) on its own, naming the
        row and the feature. Non-finite values are caught on the tensor (`_handle`)."""
        keys, n, take = self.keys, self.n, self.take
        rows = []
        for i, row in enumerate(instances):
            if type(row) is dict and row.keys() == keys:
                rows.append(take(row))
            elif type(row) is list and len(row) == n:
                rows.append(row)
            else:
                self._row(i, row)  # raises the precise error
        if self.schema.numeric:
            try:
                if set(map(type, chain.from_iterable(rows))) <= NUMBER_TYPES:
                    return doubles(tuple(chain.from_iterable(rows))), rows
            except (OverflowError, struct.error):
                pass
        return self.schema.encode_rows(rows), rows

    def _row(self, i: int, row) -> None:
        """Raise a RequestError naming the first problem of row i (the slow path, errors only)."""
        n = self.n
        if isinstance(row, dict):
            if len(row) != n or any(k not in self.index for k in row):
                unknown = sorted((k for k in row if k not in self.index), key=str)
                missing = [k for k in self.features if k not in row]
                parts = [f"expected {n} features, got {len(row)}"]
                if unknown:
                    parts.append(
                        "unknown: "
                        + ", ".join(echo(k) for k in unknown[:3])
                        + (" ..." if len(unknown) > 3 else "")
                    )
                if missing:
                    parts.append("missing: " + ", ".join(missing[:5]) + (" ..." if len(missing) > 5 else ""))
                raise RequestError(400, f"row {i}: " + "; ".join(parts), "features", (missing or [None])[0])
        elif isinstance(row, list):
            if len(row) != n:
                raise RequestError(400, f"row {i}: expected {n} feature values, got {len(row)}", "features")
        else:
            raise RequestError(
                400,
                f"row {i}: must be an object of feature values or an array, got {kind_name(row)}",
                "features",
            )
        raise RequestError(400, f"row {i}: not a row of {n} feature values", "features")  # pragma: no cover
