"""The bounded log of a failing dependency (serving/outage_log.py) and serving's MLflow client
defaults: fast unit tests, no server (the real-server outage is tests/reliability/test_fault_redis.py)."""

from __future__ import annotations

import logging
import threading

import pytest

from serving.adapters import mlflow_client_defaults
from serving.outage_log import OutageLog
from serving.settings import ServingSettings


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def _log(caplog: pytest.LogCaptureFixture) -> tuple[OutageLog, Clock]:
    caplog.set_level(logging.INFO, logger="test.outage")
    clock = Clock()
    return OutageLog("online store", logging.getLogger("test.outage"), interval_s=10.0, clock=clock), clock


def test_an_outage_of_a_minute_at_100_failures_a_second_is_at_most_eight_lines(
    caplog: pytest.LogCaptureFixture,
) -> None:
    out, clock = _log(caplog)
    out.ok()  # healthy: nothing to say
    for _ in range(6000):  # 60 s, 100 failed calls a second
        out.failed(ConnectionError("Error 111 connecting to 127.0.0.1:6379. Connection refused."))
        clock.t += 0.01
    out.ok()
    out.ok()  # recovery is said once
    recs = [(r.levelname, r.getMessage()) for r in caplog.records]
    assert recs[0][0] == "WARNING" and "online store failing (ConnectionError: Error 111" in recs[0][1]
    summaries = [m for lvl, m in recs if lvl == "WARNING" and "still failing" in m]
    assert 5 <= len(summaries) <= 6, recs  # one per 10 s of the minute after the first line
    assert recs[-1] == ("INFO", "online store answers again after 60.0 s (6000 failed calls)")
    assert len(recs) == 1 + len(summaries) + 1
    # The counts add up: the first failure + every summary's count + what the recovery line closes.
    counted = 1 + sum(int(m.split(": ")[1].split()[0]) for m in summaries)
    assert counted <= 6000 and 6000 - counted < 10.0 / 0.01


def test_a_second_outage_starts_a_new_first_line(caplog: pytest.LogCaptureFixture) -> None:
    out, clock = _log(caplog)
    for _ in range(2):
        out.failed(TimeoutError("read timed out"))
        clock.t += 1
        out.failed(TimeoutError("read timed out"))  # within the interval: counted, not logged
        out.ok()
    msgs = [r.getMessage() for r in caplog.records]
    assert (
        msgs
        == [
            "online store failing (TimeoutError: read timed out); answering degraded; "
            "further failures summarized every 10 s",
            "online store answers again after 1.0 s (2 failed calls)",
        ]
        * 2
    )


def test_concurrent_failures_are_all_counted(caplog: pytest.LogCaptureFixture) -> None:
    out, _ = _log(caplog)

    def fail() -> None:
        for _ in range(2000):
            out.failed(OSError("down"))

    threads = [threading.Thread(target=fail) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    out.ok()
    assert caplog.records[-1].getMessage() == "online store answers again after 0.0 s (8000 failed calls)"
    assert len(caplog.records) == 2  # the clock stood still: no summary is due


def test_mlflow_client_defaults_fill_only_what_the_user_left_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    import mlflow.environment_variables as mev

    for name in ("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR"):
        monkeypatch.setenv(name, "0")  # so that monkeypatch restores the real value (or absence) after
        monkeypatch.delenv(name)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "42")
    settings = ServingSettings(
        mlflow_http_max_retries=3, mlflow_http_backoff_factor=1, mlflow_http_timeout_s=7
    )
    applied = mlflow_client_defaults(settings)
    assert applied == {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "3", "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1"}
    # What MLflow's client will read on its next request.
    assert mev.MLFLOW_HTTP_REQUEST_MAX_RETRIES.get() == 3
    assert mev.MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR.get() == 1
    assert mev.MLFLOW_HTTP_REQUEST_TIMEOUT.get() == 42  # the user's value wins


def test_overlapping_calls_neither_end_nor_start_an_outage(caplog: pytest.LogCaptureFixture) -> None:
    """Requests overlap: one that started before the outage may succeed after the first failure was
    logged, and one that started before the recovery may fail after it. Neither changes the state."""
    out, clock = _log(caplog)
    before = clock.t
    clock.t += 0.01
    out.failed(ConnectionError("reset"), started=clock.t)
    out.ok(started=before)  # read before the store died, answered after: not a recovery
    clock.t += 5
    out.failed(ConnectionError("refused"), started=clock.t)
    inflight = clock.t
    clock.t += 0.01
    out.ok(started=clock.t)  # the recovery
    out.failed(ConnectionError("refused"), started=inflight)  # began before it: a straggler
    clock.t += 1
    out.failed(ConnectionError("refused"), started=clock.t)  # began after it: a new outage
    msgs = [r.getMessage() for r in caplog.records]
    assert [m.split(" (")[0] for m in msgs] == [
        "online store failing",
        "online store answers again after 5.0 s",
        "online store failing",
    ], msgs
    assert "(2 failed calls)" in msgs[1]


def test_log_level_takes_the_clis_variable_in_any_case(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLOTCAST_LOG_LEVEL", "debug")  # as pipelines/cli.py reads it
    assert ServingSettings().log_level == "DEBUG"
    monkeypatch.setenv("SLOTCAST_LOG_LEVEL", "chatty")
    with pytest.raises(ValueError, match="log_level"):
        ServingSettings()
