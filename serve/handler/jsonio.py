"""JSON in and out: a parser with hard bounds (duplicate keys, nesting depth, member count) in time
linear in the body, and the serialiser the answers and the log use.

orjson is the one optional import of the handler: it parses and serialises these payloads several times
faster than the standard library (the log's cost per request, benchmarks/serve.py), and the slim image
installs it. Without it the standard library does the same job, so the .mar still needs only torch.
"""

from __future__ import annotations

import json
import math

from serve.handler.errors import RequestError, echo

try:  # optional (see the module's docstring)
    import orjson

    def dumps(obj) -> bytes:
        return orjson.dumps(obj)

    def parse(raw):
        return orjson.loads(raw)
except ImportError:  # pragma: no cover - an image without orjson
    orjson = None

    def dumps(obj) -> bytes:
        return json.dumps(obj, separators=(",", ":"), ensure_ascii=True).encode()

    def parse(raw):
        return json.loads(raw)


CONTAINERS = (dict, list)

# Hard bounds on a body's JSON, checked before and while it is parsed (`load`): depth, and
# values + containers (at least MIN_NODES, else 4 x what max_batch_rows rows of every feature need).
MAX_DEPTH = 32
MIN_NODES = 1 << 16
WALK_READS = 128  # containers read one by one to count members; beyond, bytes operations count them
BRACKETS = bytes.maketrans(b"{}", b"[]")
NOT_BRACKETS = bytes(c for c in range(256) if c not in b"[]{}")
CONTAINER_TYPES = frozenset(CONTAINERS)


def load(raw, max_nodes: int, what: str):
    """Parse with hard bounds, in time linear in the body and bounded by `max_nodes`; `what` says in
    the 413 what the limit is for (the rows and features it allows).

    Counts of ',', '[' and '{' (C speed) bound the values and containers before anything is built:
    over `max_nodes` it is a 413 (a body shorter than that cannot be over: each takes a byte). Those
    inside strings count too, which keeps it a byte count: a real request needs about
    max_batch_rows x (F + 1), and stays under the bound even with a comma or a bracket in every string.
    orjson then parses (the standard parser where orjson refuses NaN/Infinity, or is absent). One
    walk of the parsed containers caps the depth at MAX_DEPTH and counts object members: orjson keeps
    the last of duplicated keys silently, and each member of the text had one ':' outside strings,
    so equal counts mean no key was dropped. Only a real duplicate re-parses, to name the key.
    A body of many containers (over WALK_READS to read) is measured in C instead: the text outside
    strings gives depth and ':' count, orjson's re-serialised document its members."""
    text = _as_bytes(raw)
    containers = None
    if len(text) > max_nodes:  # each value, container or separator takes a byte at least
        nodes = text.count(b",")
        if nodes <= max_nodes:  # else refused after one pass
            containers = text.count(b"[") + text.count(b"{")
            nodes += containers
        if nodes > max_nodes:
            raise RequestError(
                413,
                f"the body holds more than {max_nodes} JSON values, containers and separators"
                f" (strings included): the limit for {what}",
                "too_many_values",
            )
    if containers is None:
        containers = text.count(b"[") + text.count(b"{")
    strict = orjson is None
    try:
        doc = strict_json(raw) if strict else parse(raw)
    except ValueError as err:
        if b"NaN" not in text and b"Infinity" not in text:
            raise RequestError(400, f"malformed JSON: {echo(str(err))[1:-1]}", "malformed_json") from None
        doc, strict = strict_json(raw), True  # the standard parser reads them: name the field
    members = count_members(doc, containers, WALK_READS)
    if members is None:  # many containers: their depth and members counted in C, on text and document
        skeleton = _outside_strings(text)
        if _deeper(skeleton, MAX_DEPTH):
            raise RequestError(
                400, f"malformed JSON: nested too deeply (more than {MAX_DEPTH} levels)", "malformed_json"
            )
        if strict:  # the standard parser refused duplicates already
            return doc
        members, colons = _outside_strings(dumps(doc)).count(b":"), skeleton.count(b":")
    else:
        colons = text.count(b":")
        if members != colons:  # a ':' in a string, or a key dropped: count outside strings
            colons = _outside_strings(text).count(b":")
    if not strict and members != colons:
        strict_json(raw)  # names the duplicated key
        raise RequestError(400, "duplicated key in a JSON object", "duplicate_key")  # pragma: no cover
    return doc


def strict_json(raw):
    """The standard parser, refusing duplicated keys (a silently dropped value is a wrong answer)."""
    try:
        return json.loads(raw, object_pairs_hook=_no_duplicates)
    except RecursionError:
        raise RequestError(400, "malformed JSON: nested too deeply", "malformed_json") from None
    except ValueError as err:
        raise RequestError(400, f"malformed JSON: {echo(str(err))[1:-1]}", "malformed_json") from None


def dumps_safe(obj) -> bytes:
    """orjson when it can; the standard library for what orjson refuses (integers beyond 64 bits, lone
    surrogates in client strings), escaped to ASCII so that a record is always one valid JSON line."""
    try:
        return dumps(obj)
    except (TypeError, ValueError):
        return json.dumps(obj, separators=(",", ":"), ensure_ascii=True, default=str).encode()


def _no_duplicates(pairs: list) -> dict:
    keys = [k for k, _ in pairs]
    if len(set(keys)) != len(keys):
        seen: set = set()
        dup = next(k for k in keys if k in seen or seen.add(k))
        raise RequestError(400, f"duplicated key {echo(dup)} in a JSON object", "duplicate_key")
    return dict(pairs)


def _outside_strings(text: bytes) -> bytes:
    """Valid JSON text without its strings: its '[', '{', ',' and ':' are then exactly the document's
    structure. Bytes operations only: escaped backslashes go first, then escaped quotes, so the quotes
    left alternate opening and closing (bytes.replace pairs backslashes from the left, as JSON does)."""
    if b"\\" in text:
        text = text.replace(b"\\\\", b"").replace(b'\\"', b"")
    return b"".join(text.split(b'"')[::2])


def count_members(doc, containers: float, reads: float = math.inf) -> int | None:
    """Object members in a parsed document; a RequestError when containers nest deeper than MAX_DEPTH;
    None when that needs more than `reads` containers read one by one (the caller counts in C then).

    Level by level, Python work per container read and C work per value: each container's values get
    one type scan, and none once `containers` (how many the text holds, or more) have been found: the
    rest hold none. A request reads 2 to 5 (its lists of numbers are not read), or 2 + one per feature.
    Nothing is allocated per container (no tuples), so the walk never sets off the garbage collector."""
    kind = type(doc)
    if kind is not dict and kind is not list:
        return 0
    members = len(doc) if kind is dict else 0
    level, depth, found = [doc], 1, 1
    while level and found < containers:
        below: list = []
        for obj in level:
            if found >= containers:
                break
            reads -= 1
            if reads < 0:
                return None
            values = obj.values() if type(obj) is dict else obj
            if CONTAINER_TYPES.isdisjoint(map(type, values)):
                continue
            if depth >= MAX_DEPTH:
                raise RequestError(
                    400, f"malformed JSON: nested too deeply (more than {MAX_DEPTH} levels)", "malformed_json"
                )
            for value in values:
                kind = type(value)
                if kind is dict:
                    members += len(value)
                elif kind is not list:
                    continue
                found += 1
                below.append(value)
        level, depth = below, depth + 1
    return members


def _deeper(skeleton: bytes, limit: int) -> bool:
    """Whether the containers of JSON text without strings nest deeper than `limit`. Each round deletes
    the innermost pairs, exactly one level (bytes.replace does not re-scan the pairs it joins): at most
    `limit` C passes over the brackets."""
    brackets = skeleton.translate(BRACKETS, NOT_BRACKETS)
    for _ in range(limit):
        if not brackets:
            return False
        brackets = brackets.replace(b"[]", b"")
    return bool(brackets)


def _as_bytes(raw) -> bytes:
    return raw if isinstance(raw, bytes) else raw.encode("utf-8", "surrogatepass")
