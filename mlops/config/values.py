"""How one raw value is read, for every place that reads one: training's table reader and the handler.

A CSV cell or a JSON request value goes through the same functions here, so a spelling training accepts
(a bool written `NO`, a number written `" 1.5 "`, a null written `NA`) is accepted when served, and
gives the same encoded float. Standard library only: the TorchServe handler may import nothing else.

Encoded values (model/encoding.py's contract): a number as a float; a bool as 1.0/0.0; a category as
its vocabulary index (-1.0 unseen); a date as days since 1970-01-01 (see `days`); NaN for a null.
"""

from __future__ import annotations

import datetime as dt
import math
import re

# Spellings of "no value", compared after strip() and lower(): empty, nan, na, null, none, <na>.
NULLS = frozenset({"", "nan", "na", "null", "none", "<na>"})
# Spellings of a bool, compared after strip() and lower().
TRUE = frozenset({"true", "1", "1.0", "yes", "t", "y"})
FALSE = frozenset({"false", "0", "0.0", "no", "f", "n"})
# A decimal number (what Arrow's CSV reader parses too), or an infinity that validation then refuses.
NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|[+-]?(?:inf|infinity)", re.IGNORECASE)
DATE_TYPES = ("date", "datetime")
EPOCH = dt.date(1970, 1, 1).toordinal()
SECONDS_PER_DAY = 86400.0


class Invalid(ValueError):
    """A value this column cannot take: `wants` completes "<column> ..." and `reason` is a short code."""

    def __init__(self, wants: str, reason: str):
        super().__init__(wants)
        self.wants, self.reason = wants, reason


WANTS = {
    "number": Invalid("must be a number", "not_a_number"),
    "bool": Invalid("must be true or false (also yes/no, y/n, t/f, 1/0)", "not_a_bool"),
    "category": Invalid("must be a category (a string)", "not_a_category"),
    "date": Invalid("must be an ISO 8601 date such as 2024-01-31", "not_a_date"),
    "datetime": Invalid("must be an ISO 8601 date-time such as 2024-01-31T13:45:00Z", "not_a_date"),
}


def is_null(value) -> bool:
    """None, a float NaN, or a string that spells "no value" (NULLS, any case, surrounding blanks)."""
    if value is None:
        return True
    kind = type(value)
    if kind is float:
        return value != value
    if kind is str:
        return value.strip().lower() in NULLS
    return False


def number(value) -> float:
    """A float or int (not a bool), or a string holding a decimal number."""
    kind = type(value)
    if kind is str:
        text = value.strip()
        if NUMBER.fullmatch(text):
            return float(text)
    elif kind is float or kind is int:
        try:
            return float(value)
        except OverflowError:  # an int beyond the float range
            return math.inf if value > 0 else -math.inf
    raise WANTS["number"]


def boolean(value) -> float:
    """1.0 or 0.0: true/false, 1/0 (also 1.0/0.0), or a string in TRUE/FALSE (any case)."""
    kind = type(value)
    if kind is bool:
        return 1.0 if value else 0.0
    if (kind is int or kind is float) and value in (0, 1):
        return float(value)
    if kind is str:
        low = value.strip().lower()
        if low in TRUE:
            return 1.0
        if low in FALSE:
            return 0.0
    raise WANTS["bool"]


def category(value) -> str:
    """A category's text: a string stripped, a number as str() writes it (3 -> "3", 2.5 -> "2.5")."""
    if isinstance(value, bool | list | dict | tuple) or value is None:
        raise WANTS["category"]
    return value.strip() if type(value) is str else str(value).strip()


def days(value, kind: str = "date") -> float:
    """An ISO 8601 date or date-time string as days since 1970-01-01 (what the model derives its date
    features from). `date`: the calendar date as written (a time or offset is ignored). `datetime`:
    an offset is converted to UTC, no offset is taken as it is; the time of day is the fraction."""
    if type(value) is not str:
        raise WANTS[kind]
    try:
        stamp = dt.datetime.fromisoformat(value.strip())
    except ValueError:
        raise WANTS[kind] from None
    if kind == "datetime" and stamp.tzinfo is not None:
        stamp = stamp.astimezone(dt.timezone.utc)
    whole = float(stamp.toordinal() - EPOCH)
    if kind == "date":
        return whole
    seconds = stamp.hour * 3600 + stamp.minute * 60 + stamp.second + stamp.microsecond / 1e6
    return whole + seconds / SECONDS_PER_DAY


def date_text(value: float, kind: str = "date") -> str:
    """The inverse of `days`, for sample requests: ISO 8601 text (a date-time in UTC, to the second)."""
    whole = math.floor(value)
    day = dt.date.fromordinal(int(whole) + EPOCH)
    if kind == "date":
        return day.isoformat()
    seconds = round((value - whole) * SECONDS_PER_DAY)
    stamp = dt.datetime.combine(day, dt.time(), dt.timezone.utc) + dt.timedelta(seconds=seconds)
    return stamp.isoformat().replace("+00:00", "Z")


def converter(kind: str, categories=None):
    """value -> encoded float (NaN for a null) for a column of this type; raises Invalid.

    A category column looks the value up in its vocabulary (-1.0 when unseen); the vocabulary's
    entries are read with `category` too, so "3" and 3 are the same value."""
    if kind in ("float", "int"):
        parse = number
    elif kind == "bool":
        parse = boolean
    elif kind in DATE_TYPES:

        def parse(value):
            return days(value, kind)

    else:
        codes: dict[str, float] = {}
        for code, entry in enumerate(categories or []):
            if not is_null(entry):
                codes.setdefault(category(entry), float(code))
        get = codes.get

        def parse(value):
            return get(category(value), -1.0)

    def convert(value) -> float:
        if is_null(value):
            return math.nan
        return parse(value)

    return convert
