"""What every format needs to turn split fields into canonical event columns.

A format describes each file it reads with a ``FileSpec`` (separator, field names, header lines,
and a ``to_events`` function from string fields to canonical columns) and the format as a whole
with a ``LogFormat`` (how to find its files, how to pick the spec of one file).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from features.data_model import TS
from features.validation_rules import parse_column

# Seconds beyond this (year ~5138) cannot be a log timestamp; keeping them out avoids overflow.
_MAX_ABS_SECONDS = 10**11


@dataclass
class Mapped:
    """Canonical event columns for one block, plus what the products table learns from it."""

    events: dict[str, pa.Array]
    reason: pa.Array | None = None  # a format-level problem per line (unknown behaviour ...), null where fine
    category: pa.Array | None = None
    price: pa.Array | None = None
    also_purchase: pa.Array | None = None  # rows that also become a purchase event (movielens high ratings)


@dataclass(frozen=True)
class FileSpec:
    label: str  # what kind of file this is, for messages ("u.data", "ratings.dat" ...)
    sep: str
    fields: list[str]
    header_lines: int
    to_events: Callable[[pa.Table], Mapped]


@dataclass(frozen=True)
class LogFormat:
    name: str
    find_files: Callable[[Path], list[Path]]
    spec_for: Callable[[Path], FileSpec]
    # The earliest plausible timestamp of this kind of log (MovieLens 100k is from 1997).
    min_ts: dt.datetime = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)
    description: str = ""
    notes: list[str] = field(default_factory=list)


def first_reason(*reasons: pa.Array | None) -> pa.Array | None:
    """Per row, the first non-null reason of ``reasons`` (None when none is given)."""
    present = [r for r in reasons if r is not None]
    if not present:
        return None
    return present[0] if len(present) == 1 else pc.coalesce(*present)


def reason_where(mask: pa.Array, text: str) -> pa.Array:
    return pc.if_else(
        pc.fill_null(mask, False), pa.scalar(text, pa.string()), pa.nulls(len(mask), pa.string())
    )


def epoch_to_ts(
    values: pa.Array, unit: str, field_name: str, allow_fraction: bool = False
) -> tuple[pa.Array, pa.Array]:
    """Epoch seconds/milliseconds (as strings) -> UTC microsecond timestamps; returns (ts, reason)."""
    typ = pa.float64() if allow_fraction else pa.int64()
    num, bad = parse_column(values, typ)
    per_second = {"s": 1, "ms": 1000}[unit]
    absurd = pc.greater(pc.abs(num), _MAX_ABS_SECONDS * per_second)
    num = pc.if_else(pc.fill_null(absurd, False), pa.nulls(len(num), typ), num)
    micros = pc.multiply(num, 1_000_000 // per_second)
    if allow_fraction:
        micros = pc.cast(pc.floor(micros), pa.int64())
    ts = pc.cast(micros, pa.int64()).cast(TS)
    reason = first_reason(
        reason_where(bad, f"unparseable {field_name}"), reason_where(absurd, f"{field_name} out of range")
    )
    return ts, reason


def map_values(values: pa.Array, mapping: dict[str, str], field_name: str) -> tuple[pa.Array, pa.Array]:
    """Translate source codes (``pv``, ``buy`` ...) to canonical ones; an unknown code gets a reason."""
    keys = list(mapping)
    idx = pc.index_in(pc.utf8_trim_whitespace(values), value_set=pa.array(keys))
    mapped = pc.take(pa.array([mapping[k] for k in keys], pa.string()), idx)
    unknown = pc.and_(pc.is_valid(values), pc.is_null(idx))
    return mapped, reason_where(unknown, f"unknown {field_name}")


def constant(n: int, value: str) -> pa.Array:
    return pa.array(np.full(n, value, dtype=object), pa.string())


def trim(values: pa.Array) -> pa.Array:
    return pc.utf8_trim_whitespace(values)


def find_in_dir(path: Path, names: list[str], fmt: str) -> list[Path]:
    """``path`` itself if it is a file, else the first of ``names`` found inside it."""
    from pipelines.importers.reading import InputFormatError

    if path.is_file():
        return [path]
    if not path.exists():
        raise InputFormatError(path, None, "no such file or directory")
    for name in names:
        for candidate in (path / name, *(path / f"{name}{ext}" for ext in (".gz", ".bz2", ".zst", ".zip"))):
            if candidate.is_file():
                return [candidate]
    raise InputFormatError(
        path, None, f"no {fmt} log found in this directory (looked for {', '.join(names)})"
    )
