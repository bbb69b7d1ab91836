"""Import a real log into canonical tables, block by block, with validation and quarantine.

Per block: split lines into fields, map them to event columns (the format's ``to_events``),
validate (``features.validation``), write accepted events and quarantined lines as they come,
and fold users and products seen into small first-seen tables. Nothing is held but one block and
those tables, so the file size is bounded by disk, not memory. Output goes to a temporary folder
inside ``out`` and is moved in only when the import succeeds.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import shutil
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from features.data_model import SCHEMAS, TABLES, conform, table_path
from features.validation import (
    QUARANTINE_FILE,
    QUARANTINE_SCHEMA,
    REJECTED_FILE,
    QuarantineThresholdError,
    ValidationRules,
    validate_table,
)
from pipelines.importers.mapping import FileSpec, LogFormat, first_reason
from pipelines.importers.reading import (
    DEFAULT_BLOCK_SIZE,
    Block,
    InputFormatError,
    iter_blocks,
    line_numbers,
    split_block,
)

log = logging.getLogger(__name__)

_ATTRS_FILE = "_product_attrs.parquet"
_ATTRS_SCHEMA = pa.schema(
    [("product_id", pa.int64()), ("seq", pa.int64()), ("category", pa.string()), ("price", pa.float64())]
)

# Reasons that mean "this line is not of this format" rather than "this record is wrong".
_PARSE_PREFIXES = ("expected ", "unparseable ", "not valid UTF-8", "blank line", "unknown ", "missing ")


@dataclass
class FileCounts:
    path: Path
    read: int = 0
    accepted: int = 0
    quarantined: int = 0
    first_bad: tuple[int, str] | None = None  # (line, reason)


@dataclass
class ImportReport:
    format: str
    out_dir: Path
    max_quarantine_share: float
    files: list[FileCounts] = field(default_factory=list)
    events: int = 0
    users: int = 0
    products: int = 0
    reasons: Counter = field(default_factory=Counter)
    written: bool = False
    quarantine_path: Path | None = None

    @property
    def read(self) -> int:
        return sum(f.read for f in self.files)

    @property
    def accepted(self) -> int:
        return sum(f.accepted for f in self.files)

    @property
    def quarantined(self) -> int:
        return sum(f.quarantined for f in self.files)

    @property
    def share(self) -> float:
        return self.quarantined / self.read if self.read else 0.0

    @property
    def ok(self) -> bool:
        return self.share <= self.max_quarantine_share

    def raise_for_threshold(self) -> None:
        """Raise ``QuarantineThresholdError`` (exit code 1) when too many lines were quarantined."""
        if not self.ok:
            raise QuarantineThresholdError(
                f"{self.share:.2%} of the lines were quarantined, above the allowed {self.max_quarantine_share:.2%}; "
                f"nothing was imported. The rejected lines are in {self.quarantine_path}."
            )


def _is_parse_reason(reason: str) -> bool:
    return reason.startswith(_PARSE_PREFIXES)


SNIFF_LINES = 10  # the opening lines that decide whether a file is of the format at all


def _looks_foreign(block: Block, q_rows: list[int], q_reasons: list[str]) -> bool:
    """Whether a file whose first line does not parse is not of the format at all: most of its
    first ``SNIFF_LINES`` lines do not parse either. A good file whose first line alone is bad (a
    stray blank line, a header on a headerless log, one garbled row) has that line quarantined
    like any other; before, the whole file was refused."""
    if not _is_parse_reason(q_reasons[0]):
        return False
    window = min(SNIFF_LINES, block.n_lines)
    bad = sum(
        1
        for r, why in zip(q_rows, q_reasons, strict=True)
        if r < block.first + window and _is_parse_reason(why)
    )
    return 2 * bad > window


class _Run:
    """The state of one import: writers, counters, first-seen tables."""

    def __init__(
        self, fmt: LogFormat, tmp: Path, rules: ValidationRules, allow_truncated: bool, report: ImportReport
    ) -> None:
        self.fmt, self.tmp, self.rules, self.allow_truncated, self.report = (
            fmt,
            tmp,
            rules,
            allow_truncated,
            report,
        )
        self.events_writer = pq.ParquetWriter(
            table_path(tmp, "events"), SCHEMAS["events"], compression="zstd"
        )
        self.q_writer = pq.ParquetWriter(tmp / QUARANTINE_FILE, QUARANTINE_SCHEMA, compression="zstd")
        self.next_event_id = 1
        # What the log says about products (category, price), keyed by the event id that said it;
        # folded into the products table at the end (duckdb, out of core), like first-seen times.
        self.attrs_writer = pq.ParquetWriter(tmp / _ATTRS_FILE, _ATTRS_SCHEMA, compression="zstd")

    def close(self) -> None:
        self.events_writer.close()
        self.q_writer.close()
        self.attrs_writer.close()

    def block(self, spec: FileSpec, block: Block, counts: FileCounts, first_block: bool) -> None:
        fields, split_reason = split_block(block, spec.sep, spec.fields)
        rows = line_numbers(block)
        mapped = spec.to_events(fields)
        cols = dict(mapped.events)
        cols.update({"event_id": rows, "_row": rows, "_reason": first_reason(split_reason, mapped.reason)})
        res = validate_table("events", pa.table(cols), None, rules=self.rules, source=block.path.name)
        q = res.quarantined
        if q.num_rows:
            q_rows = q.column("row").to_pylist()
            q_reasons = q.column("reason").to_pylist()
            if first_block and q_rows[0] == block.first and _looks_foreign(block, q_rows, q_reasons):
                raise InputFormatError(
                    block.path,
                    block.first,
                    f"does not look like a {self.fmt.name} {spec.label} file: {q_reasons[0]}",
                )
            last_line = block.first + block.n_lines - 1
            if block.unterminated and q_rows[-1] == last_line:
                if not self.allow_truncated:
                    raise InputFormatError(
                        block.path,
                        last_line,
                        f"the file ends mid-line (truncated download?): {q_reasons[-1]}. "
                        "Rerun with --allow-truncated to import the complete lines and quarantine this one.",
                    )
                q_reasons[-1] = f"truncated last line: {q_reasons[-1]}"
                q = q.set_column(
                    q.schema.get_field_index("reason"), "reason", pa.array(q_reasons, pa.string())
                )
            q = q.set_column(
                q.schema.get_field_index("raw"), "raw", pa.array(block.raw_lines(q_rows), pa.string())
            )
            self.q_writer.write_table(q)
            self.report.reasons.update(q_reasons)
            if counts.first_bad is None:
                counts.first_bad = (q_rows[0], q_reasons[0])
        counts.read += block.n_lines
        counts.quarantined += q.num_rows
        counts.accepted += res.accepted.num_rows
        self._accept(res.accepted, res.mask, mapped)

    def _accept(self, events: pa.Table, mask: pa.Array, mapped) -> None:  # type: ignore[no-untyped-def]
        if events.num_rows == 0:
            return
        n = events.num_rows
        category = mapped.category.filter(mask) if mapped.category is not None else None
        if category is not None:  # an empty field is a missing value, never the category ""
            category = pc.if_else(pc.equal(category, ""), pa.nulls(len(category), pa.string()), category)
        price = mapped.price.filter(mask) if mapped.price is not None else None
        base_products = events.column("product_id")
        if mapped.also_purchase is not None:
            extra = events.filter(mapped.also_purchase.filter(mask))
            if extra.num_rows:
                extra = extra.set_column(
                    extra.schema.get_field_index("type"),
                    "type",
                    pa.array(["purchase"] * extra.num_rows, pa.string()),
                )
                # Each purchase follows its click at once: interleave so that source order is kept.
                both = pa.concat_tables([events, extra])
                order = np.concatenate(
                    [
                        np.arange(n),
                        np.flatnonzero(mapped.also_purchase.filter(mask).to_numpy(zero_copy_only=False)),
                    ]
                )
                events = both.take(pa.array(np.argsort(order, kind="stable")))
        if category is not None or price is not None:
            # seq only orders the attributes ("the first one given wins"): increasing across blocks.
            attrs = pa.table(
                {
                    "product_id": base_products,
                    "seq": pa.array(np.arange(self.next_event_id, self.next_event_id + n, dtype=np.int64)),
                    "category": category if category is not None else pa.nulls(n, pa.string()),
                    "price": price if price is not None else pa.nulls(n, pa.float64()),
                },
                schema=_ATTRS_SCHEMA,
            )
            self.attrs_writer.write_table(attrs)
        ids = pa.array(np.arange(self.next_event_id, self.next_event_id + events.num_rows, dtype=np.int64))
        self.next_event_id += events.num_rows
        self.events_writer.write_table(events.set_column(0, "event_id", ids))
        self.report.events += events.num_rows


def _derived_tables(tmp: Path) -> dict[str, pa.Table]:
    """users and products from the written events (first seen) and product attributes (first given)."""
    import duckdb

    def lit(
        path: Path,
    ) -> str:  # a path as an SQL string literal (a quote in a folder name must not break it)
        return "'" + str(path).replace("'", "''") + "'"

    events, attrs = lit(table_path(tmp, "events")), lit(tmp / _ATTRS_FILE)
    con = duckdb.connect()
    try:
        con.execute("SET TimeZone = 'UTC'")
        con.execute("SET threads = 2")
        con.execute(f"SET temp_directory = {lit(tmp / '_duckdb')}")
        users = con.sql(
            f"SELECT user_id, min(ts) AS signup_ts FROM read_parquet({events}) GROUP BY user_id ORDER BY user_id"
        ).to_arrow_table()
        products = con.sql(
            f"""
            WITH seen AS (
                SELECT product_id, min(ts) AS launch_ts FROM read_parquet({events})
                WHERE product_id IS NOT NULL GROUP BY product_id),
            given AS (
                SELECT product_id,
                       arg_min(category, seq) FILTER (WHERE category IS NOT NULL) AS category,
                       arg_min(price, seq) FILTER (WHERE price IS NOT NULL) AS price
                FROM read_parquet({attrs}) GROUP BY product_id)
            SELECT seen.product_id, given.category, given.price, seen.launch_ts
            FROM seen LEFT JOIN given USING (product_id) ORDER BY seen.product_id
            """
        ).to_arrow_table()
    finally:
        con.close()
    n = users.num_rows
    users = users.append_column("consent_personalization", pa.array(np.ones(n, dtype=bool)))
    # Logs say nothing of consent: personalization within the shop yes, marketing pushes no.
    users = users.append_column("consent_marketing", pa.array(np.zeros(n, dtype=bool)))
    # signup_ts / launch_ts are the first event seen: the real dates are at or before them.
    return {"users": conform("users", users), "products": conform("products", products)}


def _existing_outputs(out: Path) -> list[Path]:
    return [p for p in (*(table_path(out, t) for t in TABLES), out / QUARANTINE_FILE) if p.exists()]


def import_logs(
    fmt: LogFormat,
    input_path: str | Path,
    out_dir: str | Path,
    *,
    max_quarantine_share: float = 0.05,
    allow_truncated: bool = False,
    overwrite: bool = False,
    rules: ValidationRules | None = None,
    block_size: int = DEFAULT_BLOCK_SIZE,
    on_progress: Callable[[int], None] | None = None,
) -> ImportReport:
    """Import ``input_path`` (a file or a directory holding the format's files) into ``out_dir``.

    Raises ``InputFormatError`` (exit code 2, names file and line) for input that is not of the
    format at all or that ends mid-line (unless ``allow_truncated``). Above the quarantine
    threshold nothing is written but ``quarantine.rejected.parquet``; check ``report.ok``.
    """
    out = Path(out_dir)
    rules = rules or ValidationRules(min_ts=fmt.min_ts)
    files = fmt.find_files(Path(input_path))
    specs = [(p, fmt.spec_for(p)) for p in files]  # sniff every file before writing anything
    if out.exists() and not out.is_dir():
        raise InputFormatError(out, None, "not a directory (the output is a data directory)")
    existing = _existing_outputs(out)
    if existing and not overwrite:
        raise InputFormatError(
            out,
            None,
            f"already holds data ({', '.join(p.name for p in existing)}); pass --overwrite to replace it",
        )
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / f".import-{os.getpid()}-{dt.datetime.now(dt.UTC):%H%M%S%f}"
    tmp.mkdir()
    report = ImportReport(fmt.name, out, max_quarantine_share)
    try:
        run = _Run(fmt, tmp, rules, allow_truncated, report)
        try:
            for path, spec in specs:
                counts = FileCounts(path)
                report.files.append(counts)
                for i, block in enumerate(iter_blocks(path, block_size, spec.header_lines)):
                    run.block(spec, block, counts, first_block=i == 0)
                    if on_progress:
                        on_progress(len(block.data))
                if counts.read == 0:
                    raise InputFormatError(path, None, "holds no data lines")
        finally:
            run.close()
        derived = _derived_tables(tmp)
        report.users, report.products = derived["users"].num_rows, derived["products"].num_rows
        if not report.ok:
            os.replace(tmp / QUARANTINE_FILE, out / REJECTED_FILE)
            report.quarantine_path = out / REJECTED_FILE
            return report
        for name, table in derived.items():
            pq.write_table(table, table_path(tmp, name), compression="zstd")
        for p in existing:
            p.unlink()
        for name in ("users", "products", "events"):
            os.replace(table_path(tmp, name), table_path(out, name))
        (out / REJECTED_FILE).unlink(missing_ok=True)  # a failed earlier attempt's leftovers
        if report.quarantined:
            os.replace(tmp / QUARANTINE_FILE, out / QUARANTINE_FILE)
            report.quarantine_path = out / QUARANTINE_FILE
        report.written = True
        log.info(
            "imported %s: %d lines read, %d accepted, %d quarantined, %d events",
            fmt.name,
            report.read,
            report.accepted,
            report.quarantined,
            report.events,
        )
        return report
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
