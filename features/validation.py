"""Row validation with quarantine: every row read is either accepted or quarantined with a reason.

``validate_table`` splits one table; ``validate_dir`` checks a whole data directory in reference
order (users/products/streams/communities before the tables naming them), rewrites the tables
with the accepted rows and appends the rejected ones to ``quarantine.parquet``. Nothing is
silently dropped: ``read == accepted + quarantined`` for every table, and each quarantined row
keeps its original values as strings beside ``table``, ``row`` (1-based row or source line),
``reason``, ``source`` (file) and ``raw`` (the source line, where there was one).

Callers that parse files themselves (the importers) may add three carry columns to the input:
``_row`` (source line number), ``_reason`` (a parse error found before validation) and ``_raw``
(the source line). The rules themselves live in ``features.validation_rules``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from features.data_model import (
    NULLABLE,
    PRIMARY_KEYS,
    SCHEMAS,
    TABLES,
    atomic_write_parquet,
    conform,
    data_lock,
    table_path,
)
from features.validation_rules import (
    REFERENCES,
    Reasons,
    ValidationRules,
    duplicate_mask,
    parse_column,
    reference_masks,
    rule_masks,
)

__all__ = [
    "QUARANTINE_FILE",
    "QUARANTINE_SCHEMA",
    "DirReport",
    "QuarantineThresholdError",
    "TableCounts",
    "TableFormatError",
    "ValidationResult",
    "ValidationRules",
    "validate",
    "validate_dir",
    "validate_events",
    "validate_table",
]

QUARANTINE_FILE = "quarantine.parquet"
REJECTED_FILE = "quarantine.rejected.parquet"
ROW, REASON, RAW = "_row", "_reason", "_raw"

# One fixed schema for every quarantined row of every table, so that one file can hold them all
# and be appended to: the bookkeeping columns, then every canonical column once, as strings.
_VALUE_COLUMNS = list(dict.fromkeys(f.name for t in TABLES for f in SCHEMAS[t]))
QUARANTINE_SCHEMA = pa.schema(
    [
        ("table", pa.string()),
        ("row", pa.int64()),
        ("reason", pa.string()),
        ("source", pa.string()),
        ("raw", pa.string()),
    ]
    + [(name, pa.string()) for name in _VALUE_COLUMNS]
)

# Referenced tables first, so that their accepted ids are known when the others are checked.
VALIDATION_ORDER: tuple[str, ...] = (
    "users",
    "products",
    "streams",
    "communities",
    "stream_products",
    "memberships",
    "events",
    "impressions",
    "pushes",
)


class TableFormatError(ValueError):
    """A table that cannot be validated at all (a required column is absent, the file is unreadable)."""

    exit_code = 2
    http_status = 400


class QuarantineThresholdError(RuntimeError):
    """Too large a share of some table was quarantined: the data is suspect as a whole."""

    exit_code = 1
    http_status = 422


@dataclass
class ValidationResult:
    """One table split in two. ``accepted`` has the canonical schema, ``quarantined`` QUARANTINE_SCHEMA."""

    table: str
    accepted: pa.Table
    quarantined: pa.Table
    # True for the input rows that were accepted, in input order (to carry side columns along).
    mask: pa.Array | None = None

    @property
    def read(self) -> int:
        return self.accepted.num_rows + self.quarantined.num_rows

    def reasons(self) -> dict[str, int]:
        """How many rows were quarantined for each reason, most frequent first."""
        return reason_counts(self.quarantined)


def reason_counts(quarantined: pa.Table) -> dict[str, int]:
    if quarantined.num_rows == 0:
        return {}
    vc = pc.value_counts(quarantined.column("reason").combine_chunks())
    pairs = sorted(
        zip(vc.field("values").to_pylist(), vc.field("counts").to_pylist(), strict=True), key=lambda p: -p[1]
    )
    return dict(pairs)


def _as_strings(col: pa.Array) -> pa.Array:
    try:
        return pc.cast(col, pa.string())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):  # e.g. binary that is not UTF-8
        return pa.array([None if v is None else str(v) for v in col.to_pylist()], pa.string())


def _quarantine_rows(
    name: str, table: pa.Table, bad: np.ndarray, rows: pa.Array, reason: pa.Array, source: str | None
) -> pa.Table:
    """The bad rows in QUARANTINE_SCHEMA; ``reason`` is already limited to them."""
    n = int(bad.sum())
    if n == 0:
        return QUARANTINE_SCHEMA.empty_table()
    mask = pa.array(bad)
    cols: dict[str, pa.Array] = {
        "table": pa.array([name] * n, pa.string()),
        "row": pc.filter(rows, mask),
        "reason": reason,
        "source": pa.array([source] * n, pa.string()),
        "raw": _as_strings(pc.filter(table.column(RAW).combine_chunks(), mask))
        if RAW in table.column_names
        else pa.nulls(n, pa.string()),
    }
    for col_name in _VALUE_COLUMNS:
        if col_name in table.column_names:
            cols[col_name] = _as_strings(pc.filter(table.column(col_name).combine_chunks(), mask))
        else:
            cols[col_name] = pa.nulls(n, pa.string())
    return pa.Table.from_pydict(cols, schema=QUARANTINE_SCHEMA)


def validate_table(
    name: str,
    table: pa.Table,
    refs: Mapping[str, pa.Array | AbstractSet[int] | None] | None = None,
    *,
    rules: ValidationRules | None = None,
    source: str | None = None,
) -> ValidationResult:
    """Split ``table`` (canonical table ``name``, columns typed or raw strings) into accepted and quarantined rows.

    ``refs`` maps an id column (``user_id``, ``product_id``, ``stream_id``, ``community_id``) to
    the known ids; a column absent from ``refs`` or mapped to None is not checked. A missing
    required column raises ``TableFormatError`` (nothing to validate row by row).
    """
    if name not in SCHEMAS:
        raise KeyError(f"unknown table {name!r}; known: {', '.join(TABLES)}")
    rules = rules or ValidationRules()
    schema, n = SCHEMAS[name], table.num_rows
    where = f"{source}: " if source else ""
    missing = [f.name for f in schema if f.name not in table.column_names and f.name not in NULLABLE[name]]
    if missing:
        raise TableFormatError(f"{where}table {name!r} lacks required column(s) {', '.join(missing)}")

    rows = (
        table.column(ROW).combine_chunks().cast(pa.int64())
        if ROW in table.column_names
        else pa.array(np.arange(1, n + 1, dtype=np.int64))
    )
    prior = table.column(REASON).combine_chunks().cast(pa.string()) if REASON in table.column_names else None
    reasons = Reasons(n, prior)

    cols: dict[str, pa.Array] = {}
    for f in schema:
        if f.name not in table.column_names:
            cols[f.name] = pa.nulls(n, type=f.type)
            continue
        values, bad = parse_column(table.column(f.name), f.type)
        cols[f.name] = values
        reasons.add(bad, f"unparseable {f.name}")
    for f in schema:
        if f.name not in NULLABLE[name] and cols[f.name].null_count:
            reasons.add(pc.is_null(cols[f.name]), f"missing {f.name}")
    for mask, text in rule_masks(name, cols, rules):
        reasons.add(mask, text)
    for mask, text in reference_masks(name, cols, dict(refs or {})):
        reasons.add(mask, text)
    reasons.add(duplicate_mask(name, cols, reasons.ok), f"duplicate {', '.join(PRIMARY_KEYS[name])}")

    ok_np = reasons.ok
    ok = pa.array(ok_np)
    accepted = pa.Table.from_arrays([cols[f.name] for f in schema], schema=schema)
    accepted = accepted if ok_np.all() else accepted.filter(ok)
    quarantined = _quarantine_rows(name, table, ~ok_np, rows, reasons.text_for(~ok_np), source)
    return ValidationResult(name, accepted, quarantined, ok)


def validate(
    table: str, data: pa.Table, known: Mapping[str, pa.Array | None] | None = None, **kw
) -> ValidationResult:
    """Alias of ``validate_table`` under the name used in docs/architecture.md."""
    return validate_table(table, data, known, **kw)


def validate_events(
    table: pa.Table,
    known_products: pa.Array | AbstractSet[int] | Iterable[int] | None = None,
    *,
    rules: ValidationRules | None = None,
) -> ValidationResult:
    """Validate event rows (for example a single ``POST /events`` row); products are checked only if given.

    For single rows pass ``known_products`` as a set built once: the check is then a set lookup.
    """
    known: pa.Array | AbstractSet[int] | None
    if known_products is None or isinstance(known_products, (pa.Array, pa.ChunkedArray, AbstractSet)):
        known = known_products  # type: ignore[assignment]
    else:
        known = pa.array(list(known_products), pa.int64())
    return validate_table("events", table, {"product_id": known}, rules=rules)


@dataclass
class TableCounts:
    read: int
    accepted: int
    quarantined: int
    reasons: dict[str, int] = field(default_factory=dict)

    @property
    def share(self) -> float:
        return self.quarantined / self.read if self.read else 0.0


@dataclass
class DirReport:
    """What ``validate_dir`` found; ``over_threshold`` names the tables whose quarantined share is too large."""

    data_dir: Path
    max_quarantine_share: float
    tables: dict[str, TableCounts]
    quarantine_path: Path | None
    written: bool

    @property
    def over_threshold(self) -> list[str]:
        return [t for t, c in self.tables.items() if c.share > self.max_quarantine_share]

    @property
    def ok(self) -> bool:
        return not self.over_threshold

    def raise_for_threshold(self) -> None:
        if self.over_threshold:
            parts = ", ".join(f"{t} {self.tables[t].share:.1%}" for t in self.over_threshold)
            raise QuarantineThresholdError(
                f"quarantined share above {self.max_quarantine_share:.1%} in {parts}; "
                f"the tables in {self.data_dir} were left unchanged and the rejected rows written to {self.quarantine_path}"
            )


def append_quarantine(data_dir: Path, rows: pa.Table, file_name: str = QUARANTINE_FILE) -> Path:
    """Add ``rows`` to the quarantine file of ``data_dir`` (created if absent); returns its path."""
    import pyarrow.parquet as pq

    path = Path(data_dir) / file_name
    if path.exists() and file_name == QUARANTINE_FILE:
        rows = pa.concat_tables([pq.read_table(path).cast(QUARANTINE_SCHEMA), rows.cast(QUARANTINE_SCHEMA)])
    atomic_write_parquet(rows.cast(QUARANTINE_SCHEMA), path)
    return path


def _read_raw(path: Path) -> pa.Table:
    import pyarrow.parquet as pq

    try:
        return pq.read_table(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise TableFormatError(f"{path}: not a readable parquet file ({exc})") from exc


def validate_dir(
    data_dir: str | Path,
    max_quarantine_share: float = 0.05,
    *,
    rules: ValidationRules | None = None,
    write: bool = True,
    on_table: Callable[[str], None] | None = None,
) -> DirReport:
    """Validate every canonical table present in ``data_dir``.

    Within the threshold (and ``write``), tables that lost rows are rewritten with their accepted
    rows and the quarantined rows are appended to ``quarantine.parquet``. Above it, the tables are
    left as they are and this run's rejected rows go to ``quarantine.rejected.parquet`` for
    inspection; call ``raise_for_threshold()`` on the report to turn that into an error. Writing,
    it holds the directory's lock (``data_lock``) from the first read to the last write.
    """
    data_dir = Path(data_dir)
    if write and data_dir.is_dir():
        with data_lock(data_dir):
            return _validate_dir(data_dir, max_quarantine_share, rules, write, on_table)
    return _validate_dir(data_dir, max_quarantine_share, rules, write, on_table)


def _validate_dir(
    data_dir: Path,
    max_quarantine_share: float,
    rules: ValidationRules | None,
    write: bool,
    on_table: Callable[[str], None] | None,
) -> DirReport:
    if not data_dir.is_dir():
        what = "a file, not a data directory" if data_dir.exists() else "no such data directory"
        raise FileNotFoundError(f"{data_dir}: {what}")
    rules = rules or ValidationRules()
    refs: dict[str, pa.Array | None] = {}
    results: dict[str, ValidationResult] = {}
    for name in VALIDATION_ORDER:
        path = table_path(data_dir, name)
        if on_table:
            on_table(name)
        if not path.exists():
            if name in ("users", "products", "events"):
                raise FileNotFoundError(f"{path}: required table {name!r} is missing from {data_dir}")
            data = SCHEMAS[name].empty_table()
        else:
            data = _read_raw(path)
        results[name] = validate_table(name, data, refs, rules=rules, source=path.name)
        key = {
            "users": "user_id",
            "products": "product_id",
            "streams": "stream_id",
            "communities": "community_id",
        }.get(name)
        if key:
            refs[key] = results[name].accepted.column(key).combine_chunks()
    assert set(REFERENCES) <= set(VALIDATION_ORDER)

    counts = {
        n: TableCounts(r.read, r.accepted.num_rows, r.quarantined.num_rows, r.reasons())
        for n, r in results.items()
        if table_path(data_dir, n).exists()
    }
    report = DirReport(data_dir, max_quarantine_share, counts, None, False)
    quarantined = [r.quarantined for r in results.values() if r.quarantined.num_rows]
    if not write:
        return report
    if not report.ok:
        q = pa.concat_tables(quarantined) if quarantined else QUARANTINE_SCHEMA.empty_table()
        report.quarantine_path = append_quarantine(data_dir, q, REJECTED_FILE)
        return report
    for n, r in results.items():
        if r.quarantined.num_rows:
            atomic_write_parquet(conform(n, r.accepted), table_path(data_dir, n))
    if quarantined:
        report.quarantine_path = append_quarantine(data_dir, pa.concat_tables(quarantined))
    report.written = True
    return report
