"""Import Feast without typeguard's import-time instrumentation (about 6 s of a 9 s ``import feast``).

Feast 0.67 puts typeguard's ``@typechecked`` on 22 classes and functions in 18 modules. Typeguard 4
instruments at *decoration* time: for every decorated method it reads the module's source, parses
it to an AST, rewrites it and compiles it again, so ``import feast`` spends most of its time in
``ast`` and ``compile`` (measured: 8.8 s with the decorator, 2.7 s without, on the development
machine). Every process that touches the feature store pays it: ``slotcast serve`` workers before
their first /readyz, each CLI step of a pipeline run, the demo.

Typeguard documents the decorator as a no-op under ``python -O`` because its checks "aren't meant
to be run in production". ``skip_feast_typechecks`` gives Feast that same no-op without ``-O``
(which would also strip every ``assert``): it swaps ``typeguard.typechecked`` for a pass-through
before Feast is imported. The checks only validate argument types of Feast's constructors and
methods; no behaviour depends on them. Only Feast uses typeguard in this environment.

``SLOTCAST_FEAST_TYPECHECKS=1`` keeps Feast's checks (a test runs the feature definitions so, to
show that slotcast's Feast objects pass them). Called from ``features/__init__.py``, so it runs
before any module of this package imports Feast.
"""

from __future__ import annotations

import os
import sys
from typing import Any

ENV = "SLOTCAST_FEAST_TYPECHECKS"


def _pass_through(target: Any = None, **_options: Any) -> Any:
    """``typechecked`` as it behaves under ``python -O``: the target unchanged, in both the bare
    (``@typechecked``) and the called (``@typechecked(...)``) forms."""
    if target is None:
        return _pass_through
    return target


def skip_feast_typechecks() -> bool:
    """Make typeguard's ``@typechecked`` a pass-through for the Feast modules not yet imported.

    Answers whether it did: not when ``SLOTCAST_FEAST_TYPECHECKS`` is set to 1/true/yes, and not
    when Feast is already imported (its classes are instrumented by then; nothing to gain)."""
    if os.environ.get(ENV, "").strip().lower() in ("1", "true", "yes"):
        return False
    if "feast" in sys.modules:
        return False
    try:
        import typeguard
    except ImportError:  # a Feast without typeguard: nothing to skip
        return False
    typeguard.typechecked = _pass_through
    return True
