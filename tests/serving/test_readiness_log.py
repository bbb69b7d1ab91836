"""The readiness probe's log: a long not-ready spell is a few lines with counts, not one per probe."""

from __future__ import annotations

import logging

import pytest

from serving.outage_log import OutageLog
from serving.service import check_ready


class FakeApp:
    def __init__(self) -> None:
        self.why: str | None = "models not loaded: MLflow unreachable"

    def ready(self) -> tuple[bool, str]:
        return (False, self.why) if self.why else (True, "ready")


def test_a_long_not_ready_spell_logs_bounded_lines(caplog: pytest.LogCaptureFixture) -> None:
    now = [0.0]
    outage = OutageLog(
        "readiness",
        logging.getLogger("serving"),
        10.0,
        clock=lambda: now[0],
        consequence="/readyz answers 503",
    )
    app = FakeApp()
    with caplog.at_level(logging.INFO, logger="serving"):
        for _ in range(113):  # a probe every 3 s for 5.6 minutes, all not ready
            assert check_ready(app, outage) is False  # type: ignore[arg-type]
            now[0] += 3.0
        app.why = None
        assert check_ready(app, outage) is True  # type: ignore[arg-type]
        assert check_ready(app, outage) is True  # type: ignore[arg-type]
    lines = [r.getMessage() for r in caplog.records]
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert "MLflow unreachable" in lines[0] and "/readyz answers 503" in lines[0]
    # One first line, then one summary per 10 s (3 s probes: every 4th), then one recovery line.
    assert len(warnings) == 1 + 112 // 4
    counts = sum(int(m.split(": ")[1].split()[0]) for m in lines[1:-1])
    assert counts == 112  # every probe after the first is counted in a summary
    assert lines[-1].startswith("readiness answers again") and "(113 failed calls)" in lines[-1]
    assert len(lines) == len(warnings) + 1
