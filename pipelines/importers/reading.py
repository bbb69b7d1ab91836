"""Reading log files in blocks of whole lines, with exact line numbers and without holding the file.

A file is read as raw bytes in blocks (16 MiB by default) cut at the last newline, so a 100M-line
log never has to fit in memory. Each block is split into fields by pyarrow's CSV parser (fast
path); a block holding any odd line (wrong field count, blank, not UTF-8, or a multi-character
separator) is split line by line instead (slow path), so that every line keeps its own number and
its own reason. Compressed files (.gz, .bz2, .zst, .lz4) are read through pyarrow; a .zip must
hold the log as its only (or its expected) member.
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv

from features.validation_rules import safe_cast

DEFAULT_BLOCK_SIZE = 16 << 20


class InputFormatError(ValueError):
    """An input file that cannot be imported as a whole; the message names the file and the line."""

    exit_code = 2
    http_status = 400

    def __init__(self, path: Path | str, line: int | None, message: str) -> None:
        self.path, self.line = Path(path), line
        where = f"{path}:{line}" if line is not None else str(path)
        super().__init__(f"{where}: {message}")


def open_binary(path: Path) -> BinaryIO:
    """Open ``path`` for reading bytes, decompressing by extension."""
    if not path.is_file():
        raise InputFormatError(path, None, "no such file")
    if path.suffix.lower() == ".zip":
        try:
            zf = zipfile.ZipFile(path)
        except zipfile.BadZipFile as exc:
            raise InputFormatError(path, None, f"not a readable zip file ({exc})") from exc
        members = [m for m in zf.namelist() if not m.endswith("/")]
        if len(members) != 1:
            raise InputFormatError(
                path, None, f"a zip must hold exactly one file, found {len(members)}: unzip it"
            )
        return zf.open(members[0])  # type: ignore[return-value]
    try:
        return pa.input_stream(str(path), compression="detect")  # type: ignore[return-value]
    except (pa.ArrowInvalid, OSError) as exc:
        raise InputFormatError(path, None, f"cannot open ({exc})") from exc


def first_line(path: Path, limit: int = 1 << 16) -> str:
    """The file's first line (for sniffing a header or a separator); empty for an empty file.

    A UTF-8 byte order mark before it (a file re-saved by Excel or Notepad) is not part of the
    line: it made RetailRocket's header name '\\ufefftimestamp' and the import refuse the file."""
    with open_binary(path) as f:
        try:
            head = f.read(limit)
        except (OSError, EOFError, pa.ArrowInvalid) as exc:
            raise InputFormatError(path, 1, f"cannot read ({exc})") from exc
    line = head.split(b"\n", 1)[0].rstrip(b"\r").decode("utf-8", errors="replace")
    return line.removeprefix("\ufeff")


@dataclass
class Block:
    """Whole lines from ``path``; ``first`` is the 1-based number of the first one."""

    path: Path
    first: int
    data: bytes
    n_lines: int
    unterminated: bool  # the file ends here without a final newline: the last line may be cut short

    def lines(self) -> list[bytes]:
        parts = self.data.split(b"\n")
        return parts[: self.n_lines]

    def raw_lines(self, line_numbers: list[int]) -> list[str]:
        """The text of the given lines (for the quarantine), decoded leniently."""
        ends = np.flatnonzero(np.frombuffer(self.data, np.uint8) == 10)
        starts = np.concatenate([[0], ends + 1])
        out = []
        for ln in line_numbers:
            i = ln - self.first
            end = int(ends[i]) if i < len(ends) else len(self.data)
            out.append(self.data[int(starts[i]) : end].rstrip(b"\r").decode("utf-8", errors="replace"))
        return out


def iter_blocks(path: Path, block_size: int = DEFAULT_BLOCK_SIZE, skip_lines: int = 0) -> Iterator[Block]:
    """Yield ``path`` in blocks of whole lines, skipping the first ``skip_lines`` (a header)."""
    line_no = 1
    carry = b""
    with open_binary(path) as f:
        while True:
            try:
                chunk = f.read(block_size)
            except (OSError, EOFError, pa.ArrowInvalid, zipfile.BadZipFile) as exc:
                # A truncated .gz/.zip fails here, mid-stream: name the line reached so far.
                raise InputFormatError(
                    path, line_no + carry.count(b"\n"), f"the file ends early or is corrupt ({exc})"
                ) from exc
            final = not chunk
            data = carry + chunk
            if not final:
                cut = data.rfind(b"\n")
                if cut < 0:
                    carry = data
                    if len(carry) > 64 * block_size:
                        raise InputFormatError(
                            path, line_no, "a line longer than 64 blocks: is this a text log?"
                        )
                    continue
                data, carry = data[: cut + 1], data[cut + 1 :]
            if not data:
                return
            n = data.count(b"\n")
            unterminated = final and not data.endswith(b"\n")
            n_lines = n + (1 if unterminated else 0)
            if skip_lines:
                drop = min(skip_lines, n_lines)
                pos = 0
                for _ in range(drop):
                    nxt = data.find(b"\n", pos)
                    pos = len(data) if nxt < 0 else nxt + 1
                data, n_lines, line_no, skip_lines = (
                    data[pos:],
                    n_lines - drop,
                    line_no + drop,
                    skip_lines - drop,
                )
            if n_lines:
                yield Block(path, line_no, data, n_lines, unterminated)
            line_no += n_lines
            if final:
                return


def _parse_clean(data: bytes, sep: str, names: list[str], expected_rows: int) -> pa.Table | None:
    """pyarrow's CSV parser on lines known to have the right field count; None if it sees otherwise."""
    odd: list[object] = []

    def on_invalid(row: object) -> str:
        odd.append(row)
        return "skip"

    try:
        table = pcsv.read_csv(
            io.BytesIO(data),
            read_options=pcsv.ReadOptions(column_names=names, use_threads=False, block_size=len(data) + 1),
            parse_options=pcsv.ParseOptions(
                delimiter=sep, quote_char=False, ignore_empty_lines=False, invalid_row_handler=on_invalid
            ),
            convert_options=pcsv.ConvertOptions(
                column_types={n: pa.string() for n in names},
                strings_can_be_null=False,
                quoted_strings_can_be_null=False,
            ),
        )
    except (pa.ArrowInvalid, UnicodeDecodeError):
        return None
    if odd or table.num_rows != expected_rows:  # e.g. a lone '\r' inside a line, which pyarrow ends lines at
        return None
    return table


def _fast_split(block: Block, sep: str, names: list[str]) -> tuple[pa.Table, pa.Array] | None:
    """Classify lines with numpy (field count, blank), parse the good ones with pyarrow in one go.

    Returns None when the block needs the line-by-line path (bytes that are not UTF-8, or lines
    that pyarrow splits differently from us).
    """
    try:
        block.data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    k, n = len(names), block.n_lines
    data, orig_sep = block.data, sep
    if (
        len(sep) > 1
    ):  # pyarrow wants one separator byte; \x01 stands in (a line holding one gets a wrong count)
        data, sep = data.replace(sep.encode(), b"\x01"), "\x01"
    arr = np.frombuffer(data, np.uint8)
    ends = np.flatnonzero(arr == 10)
    if block.unterminated:
        ends = np.append(ends, len(arr))
    if len(ends) != n:
        return None
    starts = np.concatenate([[0], ends[:-1] + 1])
    lengths = ends - starts
    # Separators per line: how many separator positions lie before each line end, differenced.
    seps = np.diff(np.searchsorted(np.flatnonzero(arr == ord(sep)), ends), prepend=0)
    blank = (lengths == 0) | ((lengths == 1) & (arr[np.minimum(starts, len(arr) - 1)] == 13))
    good = (seps == k - 1) & ~blank
    n_good = int(good.sum())
    if n_good == n:
        clean = data
    else:
        keep = np.repeat(good, np.minimum(lengths + 1, len(arr) - starts))  # each line with its newline
        clean = arr[keep].tobytes()
    table = (
        _parse_clean(clean, sep, names, n_good)
        if n_good
        else pa.table({c: pa.array([], pa.string()) for c in names})
    )
    if table is None:
        return None
    if b"\r" in data:
        last = names[-1]
        table = table.set_column(k - 1, last, pc.utf8_rtrim(table.column(last), characters="\r"))
    if n_good == n:
        return table, pa.nulls(n, pa.string())
    # Spread the parsed rows back over all n lines: bad lines get null fields and a reason.
    pos = np.cumsum(good) - 1
    table = table.take(pa.array(pos, mask=~good))
    texts = ["blank line"] + [
        f"expected {k} fields separated by {orig_sep!r}, found {c + 1}" for c in range(int(seps.max()) + 1)
    ]
    codes = np.where(good, -1, np.where(blank, 0, seps + 1))
    reason = pc.take(pa.array(texts, pa.string()), pa.array(codes, mask=good))
    return table, reason


def _slow_split(block: Block, sep: str, names: list[str]) -> tuple[pa.Table, pa.Array]:
    """Line-by-line split: every line gets its fields (null where absent) and a reason where it is odd."""
    raw = pa.array(block.lines(), pa.binary())
    text = safe_cast(raw, pa.string())
    reason = pc.if_else(
        pc.is_null(text), pa.scalar("not valid UTF-8 text", pa.string()), pa.nulls(len(raw), pa.string())
    )
    text = pc.utf8_rtrim(pc.fill_null(text, ""), characters="\r")
    k = len(names)
    # Padding with k separators guarantees k+1 pieces, so the first k can be taken without bounds checks.
    parts = pc.split_pattern(pc.binary_join_element_wise(text, pa.scalar(sep * k), ""), sep)
    found = pc.subtract(pc.list_value_length(parts), k)
    blank = pc.equal(pc.utf8_length(text), 0)
    reason = pc.if_else(pc.and_(pc.is_null(reason), blank), pa.scalar("blank line", pa.string()), reason)
    wrong = pc.and_(pc.is_null(reason), pc.not_equal(found, k))
    msg = pc.binary_join_element_wise(
        pa.scalar(f"expected {k} fields separated by {sep!r}, found "), pc.cast(found, pa.string()), ""
    )
    reason = pc.if_else(wrong, msg, reason)
    ok = pc.is_null(reason)
    cols = {
        name: pc.if_else(ok, pc.list_element(parts, i), pa.nulls(len(raw), pa.string()))
        for i, name in enumerate(names)
    }
    return pa.table(cols), reason


def split_block(block: Block, sep: str, names: list[str]) -> tuple[pa.Table, pa.Array]:
    """Split ``block`` into string fields named ``names``; returns (fields, reason per line or null)."""
    fast = _fast_split(block, sep, names)
    return fast if fast is not None else _slow_split(block, sep, names)


def line_numbers(block: Block) -> pa.Array:
    return pa.array(np.arange(block.first, block.first + block.n_lines, dtype=np.int64))
