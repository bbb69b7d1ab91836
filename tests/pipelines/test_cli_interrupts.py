"""Ctrl-C in the middle of a long command, or a second run beside it: what the next run finds."""

from __future__ import annotations

import importlib
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipelines.cli import main

WORLD = ["data", "generate", "--users", "300", "--products", "200", "--days", "2", "--no-progress"]


def _files(d: Path) -> dict[str, bytes]:
    return {str(p.relative_to(d)): p.read_bytes() for p in sorted(d.rglob("*")) if p.is_file()}


def test_an_interrupted_generate_leaves_the_world_before_and_a_rerun_completes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    gen = importlib.import_module("pipelines.simulator.generate")  # the package's `generate` is the function
    out = tmp_path / "data"
    assert main([*WORLD, "--seed", "1", "--out", str(out)]) == 0
    before = _files(out)
    real_day = gen.simulate_day

    def day_then_ctrl_c(world, day, *args):  # type: ignore[no-untyped-def]
        if day == 1:
            raise KeyboardInterrupt
        return real_day(world, day, *args)

    monkeypatch.setattr(gen, "simulate_day", day_then_ctrl_c)
    assert main([*WORLD, "--seed", "2", "--users", "400", "--out", str(out)]) == 130
    # Was: seed 2's users and its first day of events beside seed 1's truth, which validated clean.
    assert _files(out) == before

    monkeypatch.setattr(gen, "simulate_day", real_day)
    assert main([*WORLD, "--seed", "2", "--users", "400", "--out", str(out)]) == 0
    assert pq.read_metadata(out / "users.parquet").num_rows == 400
    assert '"users": 400' in (out / "truth" / "truth.json").read_text()
    assert not list(out.glob(".generate-*"))
    capsys.readouterr()


def test_a_new_world_drops_the_quarantine_of_the_one_it_replaces(tmp_path: Path) -> None:
    # Training leaves out the events quarantine.parquet names by id: the old world's ids hit new events.
    out = tmp_path / "data"
    out.mkdir()
    pq.write_table(pa.table({"table": ["events"], "event_id": ["1"]}), out / "quarantine.parquet")
    assert main([*WORLD, "--out", str(out)]) == 0
    assert not (out / "quarantine.parquet").exists()


def test_a_second_features_build_on_the_same_state_dir_is_refused(
    state_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Two at once wrote the same offline tables through the same temporary files (no lock).
    import fcntl

    lock = state_dir / "features" / ".build.lock"
    lock.parent.mkdir(parents=True)
    with open(lock, "a+") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        held.write("4242")
        held.flush()
        assert main(["features", "build", "--data", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "another `slotcast features build` (pid 4242)" in err and "Traceback" not in err
    assert not (state_dir / "features" / "offline").exists()  # refused before any work


def test_an_interrupted_append_events_keeps_the_events_table_and_a_rerun_appends_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from serving.schemas import Event, EventsRequest
    from tests.pipelines.test_append_events import _served_state

    app, data = _served_state(tmp_path)
    app.events(EventsRequest(events=[Event(user_id=5, type="product_click", product_id=3, stream_id=0)]))
    monkeypatch.setenv("SLOTCAST_STATE_DIR", str(tmp_path))
    before = (data / "events.parquet").read_bytes()
    real_write = pq.write_table

    def ctrl_c_halfway(table: pa.Table, where: object, **kwargs: object) -> None:
        Path(str(where)).write_bytes(b"PAR1 the first row groups, no footer")
        raise KeyboardInterrupt

    monkeypatch.setattr(pq, "write_table", ctrl_c_halfway)
    assert main(["data", "append-events"]) == 130
    # Was written in place: the events table cut short, unreadable, the data directory's events gone.
    assert (data / "events.parquet").read_bytes() == before
    assert not list(data.glob(".events.parquet.tmp-*"))

    monkeypatch.setattr(pq, "write_table", real_write)
    assert main(["data", "append-events"]) == 0
    assert "1 appended" in capsys.readouterr().out
