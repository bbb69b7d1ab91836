"""The pipeline's validate step after an import checks times as that importer does."""

from __future__ import annotations

from pathlib import Path

from pipelines.config import PipelineConfig
from pipelines.runner import Runner
from pipelines.steps import build_steps


def test_a_movielens_100k_import_passes_the_validate_step(tmp_path: Path) -> None:
    # MovieLens 100k is from 1997-98: the importer accepts it (earliest 1995-01-01), but the validate
    # step checked it against the default 2000-01-01 and quarantined every row (exit 1).
    log = tmp_path / "u.data"
    log.write_text("".join(f"{u}\t{i}\t{4 + (u + i) % 2}\t{881250949 + 600 * n}\n"
                           for n, (u, i) in enumerate((u, i) for u in range(1, 6) for i in range(1, 9))))  # fmt: skip
    cfg = PipelineConfig.model_validate(
        {"data": {"source": "import", "import": {"format": "movielens", "input": str(log)}}}
    )
    state = tmp_path / "state"
    outcomes = Runner(build_steps(state), cfg.sections(), state / "pipeline").run(until="validate")
    assert [o.status for o in outcomes] == ["ran", "ran"]
    assert outcomes[1].result is not None
    assert outcomes[1].result.figures["quarantined"] == 0
