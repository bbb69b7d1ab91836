"""Erasing deleted users' records from the files on disk, not only from what is read.

A deletion takes a user out of every answer and every training and evaluation run at once (the
ledger, ``features.privacy``); the append-only logs under the state directory and the tables of a
data directory still hold their lines until something rewrites them. ``slotcast privacy purge``
erases them with the two functions here.

JSON-lines logs are edited **in place, at the same length**: a record of a deleted user
(``user_id``) becomes a line of spaces; a record that lists many users (a push audience:
``users`` and the lists beside it) loses those users' entries and is padded with spaces. Offsets
do not move, so the processes appending to these files (``O_APPEND``) and the readers that tail
them by offset (``serving.shared_events``) go on as before, with no lock and no restart; every
reader skips a line that is not JSON. Parquet tables are rewritten without the users' rows and
renamed into place.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq


@dataclass
class Erased:
    """What one purge removed from one file: whole records, and records that lost some users."""

    records: int = 0
    edited: int = 0

    def __iadd__(self, other: Erased) -> Erased:
        self.records += other.records
        self.edited += other.edited
        return self


def erase_jsonl(path: Path, user_ids: set[int]) -> Erased:
    """Blank the records of ``user_ids`` in a JSON-lines file, in place (see the module's note).

    Only whole lines (ending with a newline) are looked at: a line being appended is left to the
    next purge. A record listing users is re-encoded without the deleted ones; in the rare case
    the shorter list does not encode shorter (another encoder wrote it), the record is blanked
    whole and counted as erased."""
    out = Erased()
    if not user_ids:
        return out
    edits: list[tuple[int, bytes]] = []
    try:
        f = open(path, "rb")  # noqa: SIM115 - read line by line, closed below
    except FileNotFoundError:
        return out
    with f:
        offset = 0
        for line in f:
            if line.endswith(b"\n"):
                new = _erased_line(line, user_ids)
                if new is not None:
                    edits.append((offset, new))
                    out.records += not new.strip()
                    out.edited += bool(new.strip())
            offset += len(line)
    if edits:
        try:
            fd = os.open(path, os.O_WRONLY)  # not O_APPEND: pwrite at the records' own offsets
        except FileNotFoundError:  # deleted meanwhile (a shared-events file that aged out)
            return Erased()
        try:
            for at, new in edits:
                os.pwrite(fd, new, at)
            os.fsync(fd)
        finally:
            os.close(fd)
    return out


def _erased_line(line: bytes, user_ids: set[int]) -> bytes | None:
    """The line's replacement (same length, newline kept), or None to leave it as it is."""
    if b'"users"' not in line and not any(int(m) in user_ids for m in _USER_ID.findall(line)):
        return None  # the common case, without decoding the line
    try:
        rec = json.loads(line)
    except ValueError:
        return None
    if not isinstance(rec, dict):
        return None
    blank = b" " * (len(line) - 1) + b"\n"
    if _as_int(rec.get("user_id")) in user_ids:
        return blank
    users = rec.get("users")
    if not isinstance(users, list) or not any(_as_int(u) in user_ids for u in users):
        return None
    keep = [i for i, u in enumerate(users) if _as_int(u) not in user_ids]
    for key, value in rec.items():
        if isinstance(value, list) and len(value) == len(users):
            rec[key] = [value[i] for i in keep]
    new = json.dumps(rec, separators=(",", ":"), ensure_ascii=False).encode()
    if len(new) > len(line) - 1:
        return blank
    return new + b" " * (len(line) - 1 - len(new)) + b"\n"


# A user id as a key's value, the record's own or nested (a JSON string cannot hold an unescaped
# quote, so this never matches inside a string value): a line none of whose matches is a deleted
# user, and that lists no users, is left without decoding it.
_USER_ID = re.compile(rb'"user_id"\s*:\s*"?(-?\d+)')


def _as_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    return None


def erase_parquet(path: Path, user_ids: set[int], column: str = "user_id", batch_rows: int = 1 << 18) -> int:
    """Rewrite a parquet file without the rows whose ``column`` is one of ``user_ids`` (an integer
    column, or a string one as in the quarantine file); returns the rows removed. The column is
    read to find them and a file with some is copied ``batch_rows`` rows at a time (memory does not
    grow with the table) beside itself and renamed into place (a reader sees the old file
    or the new one, whole). A file without the column, or without those users, is left untouched."""
    if not user_ids or not path.exists():
        return 0
    source = pq.ParquetFile(path, pre_buffer=False)
    if column not in source.schema_arrow.names:
        return 0
    kind = source.schema_arrow.field(column).type
    ids = sorted(user_ids)
    values = pa.array([str(u) for u in ids]) if pa.types.is_string(kind) else pa.array(ids, kind)

    def gone(col: pa.Array | pa.ChunkedArray) -> pa.Array:
        return pc.fill_null(pc.is_in(col, value_set=values), False)

    n = sum(
        int(pc.sum(gone(b.column(0))).as_py() or 0)
        for b in source.iter_batches(batch_size=batch_rows, columns=[column], use_threads=False)
    )
    if n:
        tmp = path.with_name(f".{path.name}.purge-{os.getpid()}")
        try:
            with pq.ParquetWriter(tmp, source.schema_arrow, compression="zstd") as out:
                for batch in source.iter_batches(batch_size=batch_rows, use_threads=False):
                    out.write_batch(batch.filter(pc.invert(gone(batch.column(column)))))
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
    return n


def users_named(directory: Path, user_ids: Iterable[int], chunk_bytes: int = 8 << 20) -> set[int]:
    """Which of ``user_ids`` a whole line of the JSON-lines files under ``directory`` names as a
    ``user_id`` (the lines ``erase_jsonl`` would erase): the regex over each file ``chunk_bytes`` at
    a time, stopping once every one is found. Users the service knows only from its logs (events
    naming no product it keeps, carousels asked for an unknown user) are held there all the same."""
    wanted = {int(u) for u in user_ids}
    found: set[int] = set()
    for path in jsonl_files(directory):
        if found == wanted:
            break
        try:
            f = open(path, "rb")  # noqa: SIM115 - read in chunks, closed below
        except FileNotFoundError:  # aged out meanwhile
            continue
        with f:
            tail = b""
            while chunk := f.read(chunk_bytes):
                chunk = tail + chunk
                end = chunk.rfind(b"\n") + 1  # whole lines only; the rest waits for the next chunk
                tail = chunk[end:]
                named = {int(m) for m in set(_USER_ID.findall(chunk, 0, end))}
                found |= named & wanted
    return found


def lines_naming(directory: Path, user_id: int) -> dict[str, int]:
    """How many lines of the JSON-lines files under ``directory`` are about ``user_id`` (the lines
    ``erase_jsonl`` would blank or edit: their own ``user_id``, or a push listing them among its
    ``users``), per log: the first folder below ``directory`` (``events``, ``impressions``, ...).
    Logs without such a line are left out. One pass over every file: for a person's access
    request, not a hot path."""
    ids, counts = {int(user_id)}, dict[str, int]()
    for path in jsonl_files(directory):
        rel = path.relative_to(directory).parts
        log = rel[0] if len(rel) > 1 else path.stem
        try:
            f = open(path, "rb")  # noqa: SIM115 - read line by line, closed below
        except FileNotFoundError:  # aged out meanwhile
            continue
        with f:
            n = sum(1 for line in f if line.endswith(b"\n") and _erased_line(line, ids) is not None)
        if n:
            counts[log] = counts.get(log, 0) + n
    return counts


def jsonl_files(directory: Path, pattern: str = "*.jsonl") -> Iterator[Path]:
    """The JSON-lines files under ``directory`` (recursively), oldest name first."""
    if directory.is_dir():
        yield from sorted(p for p in directory.rglob(pattern) if p.is_file())
