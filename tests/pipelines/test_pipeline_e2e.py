"""The whole pipeline on a tiny simulated world, through the real steps (Feast, MLflow, training, evaluation)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from pipelines.cli import main


@pytest.mark.slow
def test_pipeline_runs_end_to_end_then_is_fully_cached(state_dir: Path, tmp_path: Path) -> None:
    cfg = {
        "name": "tiny",
        "data": {"source": "simulate", "simulate": {"users": 3000, "products": 300, "days": 14, "seed": 11}},
        "train": {"als_factors": 16, "als_iterations": 8},
        "evaluate": {"policies": ["popular", "als", "champion"], "k": 6, "n_boot": 50, "max_users": 300},
    }
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(cfg))
    assert main(["pipeline", "run", "--config", str(path)]) == 0

    records = {p.stem: json.loads(p.read_text()) for p in (state_dir / "pipeline").glob("*.json")}
    assert set(records) == {"data", "validate", "features", "train", "evaluate", "promote"}
    assert all(r["status"] == "ok" for r in records.values())
    # The world is valid, the first challenger became champion, the report exists.
    assert records["validate"]["figures"]["quarantined"] == 0
    assert records["validate"]["figures"]["rows read"] == records["validate"]["figures"]["accepted"] > 0
    assert records["promote"]["figures"]["promoted"] is True
    assert Path(records["evaluate"]["outputs"]["report"]).exists()
    # The evaluation holds out training's test split, which the champion did not see; it held out
    # 20% of the time before, half of it in the champion's fit, and said only "optimistic" of it.
    report = json.loads((Path(records["evaluate"]["outputs"]["report"]).parent / "metrics.json").read_text())
    assert report["params"]["test_fraction"] == 0.1
    assert not [n for n in report["notes"] if "optimistic" in n], report["notes"]
    # The ranker learned something on a world with a known signal.
    assert records["train"]["figures"]["test_auc"] > 0.6

    before = {k: r["finished_at"] for k, r in records.items()}
    assert main(["pipeline", "run", "--config", str(path)]) == 0
    after = {
        p.stem: json.loads(p.read_text())["finished_at"] for p in (state_dir / "pipeline").glob("*.json")
    }
    assert after == before, "a second run with nothing changed must do no work"

    # Rerunning from promote once its challenger is champion changes nothing; it was a failed step
    # ("already both champion and challenger", exit 1).
    assert main(["pipeline", "run", "--config", str(path), "--from", "promote", "--until", "promote"]) == 0
    again = json.loads((state_dir / "pipeline" / "promote.json").read_text())["figures"]
    assert again["promoted"] is False and "already the champion" in again["reason"]
