"""Importers of real interaction logs into slotcast's canonical tables (docs/data-model.md has the mappings)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pipelines.importers.driver import FileCounts, ImportReport
from pipelines.importers.mapping import LogFormat
from pipelines.importers.reading import InputFormatError

__all__ = ["FORMAT_NAMES", "FileCounts", "ImportReport", "InputFormatError", "get_format", "import_logs"]

FORMAT_NAMES: tuple[str, ...] = ("movielens", "taobao", "retailrocket", "yoochoose")


def get_format(name: str) -> LogFormat:
    """The ``LogFormat`` called ``name`` (imported on demand: each lives in its own module)."""
    import importlib

    if name not in FORMAT_NAMES:
        raise InputFormatError(name, None, f"unknown format; choose one of {', '.join(FORMAT_NAMES)}")
    return importlib.import_module(f"pipelines.importers.{name}").FORMAT


def import_logs(format: str, input_path: str | Path, out_dir: str | Path, **kw: Any) -> ImportReport:
    """Import a log of ``format`` into ``out_dir``; see ``pipelines.importers.driver.import_logs``."""
    from pipelines.importers.driver import import_logs as _import

    return _import(get_format(format), input_path, out_dir, **kw)
