"""The service's impression log read back for `slotcast evaluate --service-log`, including files that
are damaged or were written by another version: a bad record is counted and left out, the rest of
the log still evaluates (a single bad line made the whole evaluation fail, or end in a traceback)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from serving.impressions import ImpressionLog, read_impressions
from training.evaluation.logs import carousel_log, impressions_from_service

T0 = pd.Timestamp("2026-01-01T12:00:00", tz="UTC")


def _record(i: int, **over: object) -> dict[str, object]:
    rec: dict[str, object] = {
        "kind": "carousel", "request_id": f"r{i}", "ts": (T0 + pd.Timedelta(minutes=i)).isoformat(),
        "user_id": i, "stream_id": 7, "items": [10, 11], "slots": [0, 1], "propensities": [0.9, 0.1],
        "variant": "champion",
    }  # fmt: skip
    rec.update(over)
    return rec


def _events() -> pd.DataFrame:
    return pd.DataFrame(
        {"ts": [T0 + pd.Timedelta(hours=1)], "user_id": [0], "type": ["purchase"], "product_id": [11]}
    )


def test_lines_that_are_not_json_objects_are_skipped(tmp_path: Path) -> None:
    log = ImpressionLog(tmp_path)
    for i in range(3):
        log.write(_record(i))
    log.close()
    (path,) = tmp_path.glob("impressions-*.jsonl")
    with path.open("ab") as fh:
        fh.write(b"[1, 2, 3]\n")  # valid JSON, not a record
        fh.write(b'"carousel"\n')
        fh.write(b"\xff\xfe\x00 bytes a disk fault left\n")  # not UTF-8 at all
        fh.write((json.dumps(_record(3)) + "\n").encode())
    records = list(read_impressions(tmp_path))
    assert [r["request_id"] for r in records] == ["r0", "r1", "r2", "r3"]


def test_malformed_records_are_counted_and_left_out() -> None:
    records = [
        _record(0),
        {k: v for k, v in _record(1).items() if k != "ts"},  # no time
        _record(2, ts="yesterday"),  # a time that is not one
        {k: v for k, v in _record(3).items() if k != "user_id"},
        _record(4, user_id=None),
        _record(5, items=[10, 11, 12]),  # three items in two slots
        _record(6, items="10,11"),
        _record(7, propensities=["n/a", 0.1]),  # that row has no propensity: carousel_log drops it
        _record(8),
    ]
    imp = impressions_from_service(records, _events())
    assert sorted(imp["request_id"].unique()) == ["r0", "r7", "r8"]
    assert imp.attrs["malformed_records"] == 6
    assert imp.loc[imp["request_id"] == "r0", "purchased"].tolist() == [False, True]
    lr = carousel_log(imp)
    assert lr.log.n_requests == 3 and lr.dropped == 1
