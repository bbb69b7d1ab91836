"""Input files of the wrong shape are a one-line error naming them, in every command that reads them."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipelines.cli import main

# events.parquet holding another table's rows (a copy gone wrong), or ids that are not numbers
WRONG = {
    "users' rows": (pa.table({"user_id": [1, 2], "region": ["n", "s"]}), "lacks required column 'event_id'"),
    "text ids": (
        pa.table({"event_id": ["a", "b"], "ts": [0, 1], "user_id": [1, 2], "type": ["like", "like"]}),
        "event_id",
    ),
}


@pytest.mark.parametrize("case", list(WRONG))
@pytest.mark.parametrize(
    "command",
    [["features", "build"], ["evaluate", "--policies", "popular", "--no-mlflow"]],
    ids=["features-build", "evaluate"],
)
def test_an_events_table_of_the_wrong_shape_is_named(
    state_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], case: str, command: list[str]
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    table, reason = WRONG[case]
    pq.write_table(table, data / "events.parquet")
    assert main([*command, "--data", str(data)]) == 2  # was a KeyError traceback (exit 1)
    err = capsys.readouterr().err
    assert f"{data / 'events.parquet'}: " in err and reason in err and "Traceback" not in err


def test_an_event_log_record_whose_ts_does_not_parse_is_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from features.data_model import empty_table, write_table

    data, log = tmp_path / "data", tmp_path / "events"
    write_table(data, "events", empty_table("events"))
    before = (data / "events.parquet").read_bytes()
    log.mkdir()
    (log / "events-0001.jsonl").write_text(
        '{"event_id": 5, "ts": "not a time", "user_id": 1, "type": "like"}\n'
    )
    assert main(["data", "append-events", "--data", str(data), "--log", str(log)]) == 2
    err = capsys.readouterr().err
    # was pandas' four lines of format advice, naming neither the log nor the field
    assert err.count("\n") == 1 and f"{log}: a logged event's ts does not parse" in err
    assert (data / "events.parquet").read_bytes() == before
