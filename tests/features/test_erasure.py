"""Erasing deleted users from logs in place and from parquet tables (``features.erasure``)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from features.erasure import erase_jsonl, erase_parquet, users_named


def test_a_log_loses_the_users_records_in_place_and_nothing_else(tmp_path: Path) -> None:
    path = tmp_path / "log.jsonl"
    records = [
        {"event_id": 1, "user_id": 7, "type": "purchase", "product_id": 3},
        {"event_id": 2, "user_id": 8, "type": "purchase", "product_id": 3},
        {
            "kind": "push",
            "users": [8, 7, 9],
            "items": [1, 2, 3],
            "propensities": [1.0, 1.0, 1.0],
            "audience": 3,
        },
        {"user_id": "7", "note": "é, an id written as a string"},
        {"user_id": 17, "note": '"user_id": 7 inside a string is not the record\'s user'},
        {"kind": "push", "users": [7], "items": [4], "audience": 1},
        {"event_id": 3, "context": {"user_id": 7}, "user_id": 8},  # nested: the record is user 8's
    ]
    body = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records).encode()
    torn = b'{"event_id": 9, "user_id": 7'  # a line still being written: left to the next purge
    path.write_bytes(body + b"\n   \n" + torn)
    size = path.stat().st_size
    writer = os.open(path, os.O_WRONLY | os.O_APPEND)  # a worker's log stays open through the purge

    erased = erase_jsonl(path, {7})

    os.write(writer, b'\n{"event_id": 10, "user_id": 8}\n')  # its next append lands after, intact
    os.close(writer)
    assert (erased.records, erased.edited) == (2, 2)
    assert path.read_bytes()[:size].count(b"\n") == body.count(b"\n") + 2  # offsets did not move
    text = path.read_bytes()
    whole = text[: text.rindex(torn)]
    left = [json.loads(r) for r in whole.splitlines() if r.strip()]
    assert left == [
        records[1],
        {"kind": "push", "users": [8, 9], "items": [1, 3], "propensities": [1.0, 1.0], "audience": 3},
        records[4],
        {"kind": "push", "users": [], "items": [], "audience": 1},  # the answer stays, its user does not
        records[6],
    ]
    assert text.endswith(torn + b'\n{"event_id": 10, "user_id": 8}\n')
    assert erase_jsonl(path, {7}).records == 0  # nothing left of theirs but the torn line
    assert erase_jsonl(tmp_path / "absent.jsonl", {7}).records == 0


def test_a_table_is_rewritten_without_the_users_rows(tmp_path: Path) -> None:
    path = tmp_path / "events.parquet"
    pq.write_table(pa.table({"user_id": pa.array([1, 2, 1, 3], pa.int64()), "x": [10, 20, 30, 40]}), path)
    assert erase_parquet(path, {1, 99}, batch_rows=3) == 2  # copied in batches of 3 rows
    assert pq.read_table(path).to_pydict() == {"user_id": [2, 3], "x": [20, 40]}
    quarantine = tmp_path / "quarantine.parquet"  # ids kept as strings, nulls where a row had none
    pq.write_table(pa.table({"user_id": ["2", None, "x", "3"], "reason": ["a", "b", "c", "d"]}), quarantine)
    assert erase_parquet(quarantine, {2}) == 1
    assert pq.read_table(quarantine).column("user_id").to_pylist() == [None, "x", "3"]
    stamp = path.stat().st_mtime_ns, path.stat().st_ino
    assert erase_parquet(path, {1}) == 0 and (path.stat().st_mtime_ns, path.stat().st_ino) == stamp
    other = tmp_path / "products.parquet"
    pq.write_table(pa.table({"product_id": [1, 2]}), other)
    assert erase_parquet(other, {1}) == 0 and pq.read_table(other).num_rows == 2


def test_which_users_the_logs_name_across_chunks_and_files(tmp_path: Path) -> None:
    """``users_named`` reads a file a chunk at a time: a line cut by a chunk's end is read whole
    with the next one, a torn last line (being appended) is not read at all."""
    (tmp_path / "a").mkdir()
    lines = [json.dumps({"event_id": i, "user_id": 1000 + i, "type": "product_click"}) for i in range(50)]
    (tmp_path / "a" / "events.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (tmp_path / "b.jsonl").write_text('{"user_id": 42}\n{"user_id": 43', encoding="utf-8")
    for chunk in (7, 64, 1 << 20):
        got = users_named(tmp_path, {1000, 1033, 1049, 42, 43, 999}, chunk_bytes=chunk)
        assert got == {1000, 1033, 1049, 42}, chunk
