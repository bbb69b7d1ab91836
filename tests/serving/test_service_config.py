"""BentoML's per-service config: the per-request tracing and access log are off unless asked for."""

from __future__ import annotations

import pytest

from serving.service import _service_config


def test_lean_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("SLOTCAST_TRACING", "SLOTCAST_ACCESS_LOG", "SLOTCAST_SERVICE_WORKERS"):
        monkeypatch.delenv(name, raising=False)
    cfg = _service_config()
    assert cfg["workers"] == 1
    assert cfg["logging"]["access"]["enabled"] is False
    assert cfg["tracing"]["excluded_urls"] == ["."]


def test_switches_turn_them_back_on(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLOTCAST_TRACING", "true")
    monkeypatch.setenv("SLOTCAST_ACCESS_LOG", "1")
    monkeypatch.setenv("SLOTCAST_SERVICE_WORKERS", "2")
    cfg = _service_config()
    assert "tracing" not in cfg and cfg["logging"]["access"]["enabled"] is True and cfg["workers"] == 2
