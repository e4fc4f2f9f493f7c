"""Read the training table with the types the schema declares, one compact column per schema column.

Why not all text: a 1M x 30 table read as Python strings is ~3 GB. Here numbers are parsed straight to
float64 by Arrow's CSV reader and text columns become dictionary-encoded categoricals, so the frame is
about the size of the float matrix. Columns outside the schema are not read at all. Only when a numeric
column holds text that is not a number is it re-read as text, so `validate` can quote the bad value.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from mlops.config import values as raw
from mlops.config.errors import UserError
from mlops.config.params import DataSpec

# Cells Arrow reads as null on the fast path (exact spellings); any other spelling of raw.NULLS (" NA",
# "nULL") is found afterwards, per distinct value, so the reader and the handler agree
# (mlops/config/values.py).
NULLS = ["", "nan", "NaN", "NAN", "na", "NA", "Na", "null", "NULL", "Null", "none", "None", "NONE", "<NA>"]
TRUE, FALSE = tuple(sorted(raw.TRUE)), tuple(sorted(raw.FALSE))
CSV_SUFFIXES, PARQUET_SUFFIXES = (".csv", ".txt"), (".parquet", ".pq")


@dataclass
class TypedTable:
    """The schema columns present in the file: numeric ones as float64 (NaN = missing), text ones as
    pandas Categorical of stripped strings (NaN = missing). `bad_text[col]` holds, for a numeric column
    with unparsable cells, those cells' text (index = row), so errors can quote them."""

    frame: pd.DataFrame
    header: list[str]
    bad_text: dict[str, pd.Series] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.frame)


def numeric_columns(spec: DataSpec) -> list[str]:
    return [f.name for f in spec.features if f.numeric] + ([spec.label] if spec.regression else [])


def text_columns(spec: DataSpec) -> list[str]:
    return [f.name for f in spec.features if not f.numeric] + ([] if spec.regression else [spec.label])


def date_columns(spec: DataSpec) -> list[str]:
    return [f.name for f in spec.features if f.type in raw.DATE_TYPES]


def _csv_options(spec: DataSpec | None, block_size: int, names: list[str] | None = None):
    """Arrow's read and parse options for data.sep and data.encoding (and header names, if given)."""
    import pyarrow.csv as pacsv

    sep = getattr(spec, "sep", ",") or ","
    encoding = getattr(spec, "encoding", "utf8") or "utf8"
    read = pacsv.ReadOptions(block_size=block_size, encoding=encoding)
    if names is not None:
        read = pacsv.ReadOptions(block_size=block_size, encoding=encoding, column_names=names, skip_rows=1)
    return read, pacsv.ParseOptions(delimiter=sep)


def header_of(path: Path, spec: DataSpec | None = None) -> list[str]:
    """The column names as written (for a CSV: split on data.sep, decoded with data.encoding)."""
    path = Path(path)
    if path.suffix.lower() in PARQUET_SUFFIXES:
        import pyarrow.parquet as pq

        return list(pq.ParquetFile(path).schema_arrow.names)
    import pyarrow.csv as pacsv

    read, parse = _csv_options(spec, 1 << 16)
    reader = pacsv.open_csv(path, read_options=read, parse_options=parse)
    return list(reader.schema.names)


def strip_categories(values: pd.Series) -> pd.Series:
    """Categorical of each value's text as mlops/config/values.py reads it (stripped; a spelling of null is
    missing); works on the few distinct values, not on every row."""
    cat = values if isinstance(values.dtype, pd.CategoricalDtype) else values.astype("category")
    names = [None if raw.is_null(c) else str(c).strip() for c in cat.cat.categories]  # a typed value: str()
    unique = pd.Index([n for n in dict.fromkeys(names) if n is not None], dtype=object)
    lookup = np.append([unique.get_loc(n) if n is not None else -1 for n in names], -1).astype(np.int32)
    codes = lookup[cat.cat.codes.to_numpy()]
    return pd.Series(
        pd.Categorical.from_codes(codes, categories=unique), index=values.index, name=values.name
    )


def _parsed(values: pd.Series, parse) -> tuple[pd.Series, pd.Series | None]:
    """float64 from text by `parse` (mlops/config/values.py), once per distinct value: NaN for a null, and
    the text of the cells `parse` refuses (or None)."""
    cat = values.astype("category") if not isinstance(values.dtype, pd.CategoricalDtype) else values
    lookup = np.full(len(cat.cat.categories) + 1, np.nan)
    refused = np.zeros(len(cat.cat.categories) + 1, dtype=bool)
    for i, text in enumerate(cat.cat.categories):
        try:
            lookup[i] = parse(text if isinstance(text, str) else str(text))
        except raw.Invalid:
            refused[i] = True
    codes = cat.cat.codes.to_numpy()
    number = pd.Series(lookup[codes], index=values.index, name=values.name)
    bad = refused[codes]
    return number, (values[bad].astype(object) if bad.any() else None)


def _numeric(values: pd.Series) -> tuple[pd.Series, pd.Series | None]:
    """float64 with NaN for missing cells, plus the text of cells that are not numbers (or None)."""
    if pd.api.types.is_bool_dtype(values) or pd.api.types.is_numeric_dtype(values):
        return values.astype("float64", copy=False), None
    return _parsed(values, raw.converter("float"))


def _read_csv(
    path: Path, spec: DataSpec, columns: list[str], text_numeric: bool, names: list[str] | None = None
) -> pd.DataFrame:
    """Stream the CSV in blocks: numbers parsed by Arrow to float64, text as dictionary (Categorical)."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    numeric = set(numeric_columns(spec))
    as_text = pa.dictionary(pa.int32(), pa.string())
    types = {c: (pa.string() if text_numeric else pa.float64()) if c in numeric else as_text for c in columns}
    options = pacsv.ConvertOptions(
        column_types=types,
        include_columns=columns,
        null_values=NULLS,
        strings_can_be_null=True,
        quoted_strings_can_be_null=True,
    )
    read, parse = _csv_options(spec, 8 << 20, names)
    reader = pacsv.open_csv(path, read_options=read, parse_options=parse, convert_options=options)
    return _assemble(reader, reader.schema.names, set() if text_numeric else numeric)


def _read_parquet(path: Path, spec: DataSpec, columns: list[str]) -> pd.DataFrame:
    """One column of one row group at a time (a file written in one go is often one row group): the
    peak is the finished columns plus one column chunk. Numeric columns straight to float64 NumPy."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    source = pq.ParquetFile(path)
    numeric = set(numeric_columns(spec))
    schema = source.schema_arrow
    frame = pd.DataFrame(index=pd.RangeIndex(source.metadata.num_rows))
    with warnings.catch_warnings():  # one block per column, on purpose: no consolidating copy
        warnings.simplefilter("ignore", pd.errors.PerformanceWarning)
        for name in columns:
            kind = schema.field(name).type
            as_number = name in numeric and (pa.types.is_integer(kind) or pa.types.is_floating(kind))
            parts = [
                _convert(source.read_row_group(g, columns=[name], use_threads=False).column(0), as_number)
                for g in range(source.metadata.num_row_groups)
            ]
            frame[name] = _combine(parts, as_number)
            del parts
    pa.default_memory_pool().release_unused()
    return frame


def _convert(column, as_number: bool):
    """An Arrow column (chunk) as float64 NumPy (null -> NaN), or as pandas (text: Categorical)."""
    if as_number:
        return column.to_numpy(zero_copy_only=False).astype(np.float64, copy=False)
    return column.to_pandas()


def _combine(parts: list, as_number: bool):
    if as_number:
        return np.concatenate(parts) if parts else np.empty(0)
    if parts and all(isinstance(p.dtype, pd.CategoricalDtype) for p in parts):
        return pd.api.types.union_categoricals(parts)
    return pd.concat(parts, ignore_index=True) if parts else pd.Series([], dtype=object)


def _assemble(batches, names: list[str], as_numbers: set[str]) -> pd.DataFrame:
    """One column per name from a stream of Arrow record batches (see _convert). The peak is the
    finished columns plus one batch, not Arrow's whole table plus a pandas copy of it."""
    import pyarrow as pa

    chunks: list[list] = [[] for _ in names]
    for batch in batches:
        for i, name in enumerate(names):
            chunks[i].append(_convert(batch.column(i), name in as_numbers))
        del batch
    rows = sum(len(c) for c in chunks[0]) if chunks else 0
    frame = pd.DataFrame(index=pd.RangeIndex(rows))
    with warnings.catch_warnings():  # one block per column, on purpose: no consolidating copy
        warnings.simplefilter("ignore", pd.errors.PerformanceWarning)
        for i, name in enumerate(names):
            parts, chunks[i] = chunks[i], []
            frame[name] = _combine(parts, name in as_numbers)
            del parts
    pa.default_memory_pool().release_unused()
    return frame


def read_typed(path: Path, spec: DataSpec) -> TypedTable:
    """The schema's columns of a CSV or Parquet file, typed; raises UserError for an unreadable file."""
    import pyarrow as pa

    path = Path(path)
    if not path.exists():
        raise UserError(f"{path}: file not found (data.path in params.yaml)")
    suffix = path.suffix.lower()
    if suffix not in (*CSV_SUFFIXES, *PARQUET_SUFFIXES):
        raise UserError(f"{path}: unsupported file type {path.suffix!r}; use .csv or .parquet")
    header = header_of(path, spec)
    names = None
    if suffix not in PARQUET_SUFFIXES and any(n != n.strip() for n in header):
        names = [n.strip() for n in header]  # a header written with ", ": the names without the blanks
    wanted = [*spec.feature_names, spec.label]
    columns = [c for c in dict.fromkeys(wanted) if c in (names or header)]
    if suffix in PARQUET_SUFFIXES:
        frame = _read_parquet(path, spec, columns)
    else:
        try:
            frame = _read_csv(path, spec, columns, text_numeric=False, names=names)
        except pa.ArrowInvalid:  # a numeric column holds text: read those as text to name the cells
            frame = _read_csv(path, spec, columns, text_numeric=True, names=names)
    if frame.columns.duplicated().any():  # (a header error validate reports); no copy otherwise
        frame = frame.loc[:, ~frame.columns.duplicated()]
    bad_text = {}
    for name in numeric_columns(spec):
        if name in frame.columns:
            frame[name], bad = _numeric(frame[name])
            if bad is not None:
                bad_text[name] = bad
    for name in text_columns(spec):
        if name in frame.columns:
            frame[name] = strip_categories(frame[name])
    kinds = {f.name: f.type for f in spec.features}
    for name in date_columns(spec):
        if name in frame.columns:
            frame[name], bad = _parsed(frame[name], raw.converter(kinds[name]))
            if bad is not None:
                bad_text[name] = bad
    if not isinstance(frame.index, pd.RangeIndex) or frame.index.start != 0:
        frame = frame.reset_index(drop=True)
    return TypedTable(frame, names or header, bad_text)


def bool_codes(values: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """A bool column (Categorical of text) as float 0/1 with NaN for missing, plus the mask of cells
    that are neither true nor false. Decided once per distinct value, not per row."""
    cat = values.cat
    lookup = np.full(len(cat.categories) + 1, np.nan)
    invalid = np.zeros(len(cat.categories) + 1, dtype=bool)
    for i, text in enumerate(cat.categories):
        try:
            lookup[i] = raw.boolean(str(text))
        except raw.Invalid:
            invalid[i] = True
    codes = cat.codes.to_numpy()
    return lookup[codes], invalid[codes]
