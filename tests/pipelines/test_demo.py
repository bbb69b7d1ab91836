"""The demo's example request: what it prints can be pasted back as it is shown."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pandas as pd
import pytest

from pipelines.demo import pick_examples
from pipelines.simulator import SimConfig, generate


def _on_air(sp: pd.DataFrame, stream_id: int, at: pd.Timestamp) -> int:
    s = sp[sp["stream_id"] == stream_id]
    return int(((s["on_air_from"] <= at) & (s["on_air_to"].isna() | (at < s["on_air_to"]))).sum())


def test_the_carousel_time_is_a_whole_second_with_the_products_still_on_air(tmp_path: Path) -> None:
    # The README showed the demo's `at` without its microseconds (2025-01-19T21:36:25Z): it lay
    # before the products came on air at 21:36:25.573660, and that carousel came back empty.
    generate(SimConfig(users=200, products=80, days=2, seed=7, categories=4), tmp_path)
    ex = pick_examples(tmp_path)
    at = datetime.fromisoformat(ex["at"])
    assert at.microsecond == 0 and at.tzinfo is not None
    assert ex["at"].endswith("Z")
    sp = pd.read_parquet(tmp_path / "stream_products.parquet")
    stream = sp[sp["stream_id"] == ex["stream_id"]]
    most = max(_on_air(sp, ex["stream_id"], t) for t in stream["on_air_from"])
    assert _on_air(sp, ex["stream_id"], pd.Timestamp(at)) >= most


def test_the_demo_viewer_is_one_the_service_answers_personally(tmp_path: Path) -> None:
    # After a walk through the README's privacy calls the demo picked a deleted viewer, and its
    # carousel showed `fallback: "deleted"` instead of a personal one.
    from features.consent import ConsentLedger
    from features.privacy import DeletionLedger

    data, state = tmp_path / "data", tmp_path / "state"
    generate(SimConfig(users=200, products=80, days=2, seed=7, categories=4), data)
    first = pick_examples(data)["user_id"]
    assert pick_examples(data, state)["user_id"] == first  # nothing recorded: the same viewer
    DeletionLedger(state).add(first)
    second = pick_examples(data, state)["user_id"]
    ConsentLedger(state).add(second, personalization=False, marketing=None)
    ConsentLedger(state).add(second, personalization=True, marketing=None)  # back: a new user now
    third = pick_examples(data, state)["user_id"]
    assert len({first, second, third}) == 3
    assert pick_examples(data)["user_id"] == first  # without a state directory, as before


def test_the_demo_shows_its_own_runs_data_and_report(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # It read $STATE/data whatever the config's data.dir, and named the newest report under
    # $STATE/reports: after a `slotcast evaluate`, that run's report instead of the pipeline's.
    import pipelines.commands.pipeline as pipeline_cmd
    import pipelines.demo as demo
    from pipelines.cli import main
    from pipelines.runner import StepOutcome, StepResult

    report = str(tmp_path / "reports" / "pipeline-abc" / "report.html")
    outcomes = [
        StepOutcome("data", "cached", 0.0, StepResult({"data": str(tmp_path / "elsewhere")})),
        StepOutcome("validate", "cached", 0.0, StepResult({"data": str(tmp_path / "elsewhere")})),
        StepOutcome("evaluate", "cached", 0.0, StepResult({"report": report})),
    ]
    calls: list[tuple[object, ...]] = []
    monkeypatch.setattr(pipeline_cmd, "_run", lambda *a: outcomes)
    monkeypatch.setattr(demo, "call_service", lambda *a: calls.append(a))
    assert main(["pipeline", "demo"]) == 0
    assert calls == [(tmp_path / "elsewhere", report)]

    newer = tmp_path / "reports" / "20990101T000000Z" / "report.html"
    newer.parent.mkdir(parents=True)
    newer.write_text("a later `slotcast evaluate`")
    demo.where_next(demo.Console(width=400), tmp_path, report)
    assert f"evaluation report:  {report}" in capsys.readouterr().out
    demo.where_next(demo.Console(width=400), tmp_path, None)  # no pipeline report: the latest of any run
    assert f"evaluation report:  {newer}" in capsys.readouterr().out
