"""A small step runner: idempotent steps cached by the content hash of their inputs and config.

Each step declares the steps it depends on and the slice of the config it reads. Its cache key is
the hash of that slice, of the upstream steps' output digests, and of the step's own code version.
A step whose key matches its last successful record, and whose outputs still exist, is skipped, so
running again with nothing changed does no work; a failed run resumes at the step that failed.
``--from STEP`` forces that step and everything downstream of it to run.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


class PipelineError(Exception):
    """A step failed; the message names it. Completed steps stay cached, so a rerun resumes here."""

    exit_code = 1

    def __init__(self, step: str, cause: BaseException) -> None:
        from pipelines.messages import one_line

        super().__init__(f"step {step!r} failed: {one_line(cause)}")
        self.step = step
        self.cause = cause


class UnknownStepError(ValueError):
    exit_code = 2


@dataclass(frozen=True)
class StepResult:
    """What a step produced: paths that must keep existing for the cache to hold, and figures to show."""

    outputs: Mapping[str, str] = field(default_factory=dict)
    figures: Mapping[str, Any] = field(default_factory=dict)
    digest: str | None = None  # content digest of the outputs; defaults to the cache key


@dataclass(frozen=True)
class Step:
    name: str
    run: Callable[[Mapping[str, Any], Mapping[str, StepResult]], StepResult]
    needs: tuple[str, ...] = ()
    config_keys: tuple[str, ...] = ()
    version: str = "1"
    description: str = ""


@dataclass
class StepOutcome:
    name: str
    status: str  # ran | cached | failed | skipped
    seconds: float
    result: StepResult | None = None
    error: str | None = None


def _digest(obj: Any) -> str:
    blob = json.dumps(obj, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()


def file_digest(paths: Sequence[Path]) -> str:
    """A content hash of files (streamed in 1 MiB blocks); directories are walked in sorted order,
    leaving out hidden files (a lock file, a table being written)."""
    h = hashlib.sha256()
    files: list[Path] = []
    for p in paths:
        p = Path(p)
        if p.is_dir():
            files.extend(sorted(q for q in p.rglob("*") if q.is_file() and not q.name.startswith(".")))
        else:
            files.append(p)
    for f in files:
        h.update(str(f.name).encode())
        with open(f, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()


class Runner:
    """Runs steps in order with a cache of records under ``cache_dir`` (one JSON file per step)."""

    def __init__(self, steps: Sequence[Step], config: Mapping[str, Any], cache_dir: Path) -> None:
        names = [s.name for s in steps]
        if len(set(names)) != len(names):
            raise ValueError(f"duplicate step names in {names}")
        for s in steps:
            missing = [n for n in s.needs if n not in names[: names.index(s.name)]]
            if missing:
                raise ValueError(f"step {s.name!r} needs {missing}, which do not run before it")
        self.steps = list(steps)
        self.config = config
        self.cache_dir = Path(cache_dir)

    def _record_path(self, name: str) -> Path:
        return self.cache_dir / f"{name}.json"

    def _key(self, step: Step, results: Mapping[str, StepResult]) -> str:
        upstream = {n: results[n].digest for n in step.needs}
        sliced = {k: self.config.get(k) for k in step.config_keys}
        return _digest({"step": step.name, "version": step.version, "config": sliced, "upstream": upstream})

    def _cached(self, step: Step, key: str) -> StepResult | None:
        path = self._record_path(step.name)
        if not path.exists():
            return None
        try:
            rec = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            return None
        if rec.get("key") != key or rec.get("status") != "ok":
            return None
        outputs = rec.get("outputs", {})
        if not all(Path(p).exists() for p in outputs.values()):
            return None
        return StepResult(outputs=outputs, figures=rec.get("figures", {}), digest=rec.get("digest"))

    def _save(self, step: Step, key: str, result: StepResult, seconds: float) -> None:
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        rec = {
            "step": step.name,
            "key": key,
            "status": "ok",
            "outputs": dict(result.outputs),
            "figures": dict(result.figures),
            "digest": result.digest,
            "seconds": round(seconds, 3),
            "finished_at": datetime.now(UTC).isoformat(),
        }
        tmp = self._record_path(step.name).with_suffix(".tmp")
        tmp.write_text(json.dumps(rec, indent=2, default=str))
        tmp.replace(self._record_path(step.name))

    def run(
        self,
        from_step: str | None = None,
        until: str | None = None,
        on_step: Callable[[Step, str], None] | None = None,
    ) -> list[StepOutcome]:
        """Run the steps; ``from_step`` forces it and everything after it, ``until`` stops after that step."""
        names = [s.name for s in self.steps]
        for n in (from_step, until):
            if n is not None and n not in names:
                raise UnknownStepError(f"unknown step {n!r}; steps are: {', '.join(names)}")
        forced = set(names[names.index(from_step) :]) if from_step else set()
        results: dict[str, StepResult] = {}
        outcomes: list[StepOutcome] = []
        for step in self.steps:
            key = self._key(step, results)
            cached = None if step.name in forced else self._cached(step, key)
            if cached is not None:
                results[step.name] = cached
                outcomes.append(StepOutcome(step.name, "cached", 0.0, cached))
                if on_step:
                    on_step(step, "cached")
            else:
                if on_step:
                    on_step(step, "running")
                t0 = time.perf_counter()
                try:
                    result = step.run(self.config, results)
                except Exception as exc:
                    outcomes.append(
                        StepOutcome(step.name, "failed", time.perf_counter() - t0, error=str(exc))
                    )
                    self._record_path(step.name).unlink(missing_ok=True)
                    raise PipelineError(step.name, exc) from exc
                if result.digest is None:
                    result = StepResult(result.outputs, result.figures, digest=key)
                seconds = time.perf_counter() - t0
                self._save(step, key, result, seconds)
                results[step.name] = result
                outcomes.append(StepOutcome(step.name, "ran", seconds, result))
                log.info("step %s ran in %.2f s", step.name, seconds)
                if on_step:
                    on_step(step, "ran")
            if until is not None and step.name == until:
                break
        return outcomes
