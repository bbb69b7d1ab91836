"""Errors as the one line the CLI prints (pipelines/cli.py, and a failed pipeline step)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

ENV_PREFIX = "SLOTCAST_"  # every settings class's (features, training, serving, pipelines)
NESTED = "__"  # training.settings' env_nested_delimiter: SLOTCAST_RANKER__NUM_THREADS


def problems(exc: Any, where: Callable[[list[str]], str] = ".".join) -> str:
    """A pydantic ValidationError's errors as ``where: what; ...`` (``where`` names an error's
    location, ``.``-joined by default; an error with none is its message alone)."""
    parts = []
    for e in exc.errors():
        loc = [str(x) for x in e["loc"]]
        what = e["msg"].removeprefix("Value error, ")
        parts.append(f"{where(loc)}: {what}" if loc else what)
    return "; ".join(parts)


def one_line(exc: BaseException) -> str:
    """``str(exc)``, but a pydantic ValidationError as ``where: what; ...`` on one line; for a
    settings class (its name ends in "Settings") ``where`` is the environment variable, since that
    is where a value reaches it from. The input is not repeated: it may be a URL with a password."""
    from pydantic import ValidationError

    if not isinstance(exc, ValidationError):
        return str(exc)
    settings = exc.title.endswith("Settings")
    head = "bad setting" if settings else f"invalid {exc.title}"
    if settings:
        return f"{head}: {problems(exc, lambda loc: ENV_PREFIX + NESTED.join(loc).upper())}"
    return f"{head}: {problems(exc)}"
