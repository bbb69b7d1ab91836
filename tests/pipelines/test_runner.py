"""The step runner: caching by content hash, reruns on change, --from, resume after a failure."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from pipelines.runner import PipelineError, Runner, Step, StepResult, UnknownStepError


class Counter:
    """Steps that write a file and count how often they really ran."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.calls: list[str] = []
        self.fail: set[str] = set()

    def step(self, name: str, needs: tuple[str, ...] = (), keys: tuple[str, ...] = ()) -> Step:
        def run(config: dict[str, Any], upstream: dict[str, StepResult]) -> StepResult:
            self.calls.append(name)
            if name in self.fail:
                raise RuntimeError(f"{name} broke")
            out = self.root / f"{name}.txt"
            out.write_text(repr({k: config.get(k) for k in keys}) + repr(sorted(upstream)))
            return StepResult(outputs={"file": str(out)}, figures={"n": len(self.calls)})

        return Step(name, run, needs=needs, config_keys=keys)


def make(tmp_path: Path, config: dict[str, Any]) -> tuple[Counter, Runner]:
    c = Counter(tmp_path)
    steps = [c.step("a", keys=("x",)), c.step("b", needs=("a",), keys=("y",)), c.step("c", needs=("b",))]
    return c, Runner(steps, config, tmp_path / "cache")


def test_second_run_with_nothing_changed_does_no_work(tmp_path: Path) -> None:
    c, r = make(tmp_path, {"x": 1, "y": 2})
    assert [o.status for o in r.run()] == ["ran", "ran", "ran"]
    assert [o.status for o in r.run()] == ["cached", "cached", "cached"]
    assert c.calls == ["a", "b", "c"]


def test_config_change_reruns_that_step_and_downstream_only(tmp_path: Path) -> None:
    c, r = make(tmp_path, {"x": 1, "y": 2})
    r.run()
    c2, r2 = make(tmp_path, {"x": 1, "y": 3})
    assert [o.status for o in r2.run()] == ["cached", "ran", "ran"]
    assert c2.calls == ["b", "c"]


def test_missing_output_invalidates_the_cache(tmp_path: Path) -> None:
    c, r = make(tmp_path, {"x": 1})
    r.run()
    (tmp_path / "b.txt").unlink()
    statuses = [o.status for o in r.run()]
    assert statuses[:2] == ["cached", "ran"]


def test_from_forces_the_step_and_everything_after(tmp_path: Path) -> None:
    c, r = make(tmp_path, {"x": 1})
    r.run()
    c.calls.clear()
    assert [o.status for o in r.run(from_step="b")] == ["cached", "ran", "ran"]
    assert c.calls == ["b", "c"]


def test_failure_names_the_step_and_a_rerun_resumes_there(tmp_path: Path) -> None:
    c, r = make(tmp_path, {"x": 1})
    c.fail = {"b"}
    with pytest.raises(PipelineError, match="step 'b' failed: b broke"):
        r.run()
    c.fail = set()
    c.calls.clear()
    assert [o.status for o in r.run()] == ["cached", "ran", "ran"]
    assert c.calls == ["b", "c"]


def test_unknown_step_and_bad_graph_are_refused(tmp_path: Path) -> None:
    c, r = make(tmp_path, {})
    with pytest.raises(UnknownStepError, match="unknown step 'zz'"):
        r.run(from_step="zz")
    with pytest.raises(ValueError, match="needs"):
        Runner([c.step("b", needs=("a",)), c.step("a")], {}, tmp_path / "cache")
