"""Feast without typeguard's import-time instrumentation (features/feast_import.py), and with it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from features.feast_import import _pass_through

REPO = Path(__file__).resolve().parents[2]

# In a fresh interpreter: import Feast through this package, show whether Feast's constructors
# check argument types, and build every slotcast Feast object.
PROBE = """
import json, warnings
warnings.simplefilter("ignore")
import features, feast, typeguard
from features.definitions import build_definitions
from features.settings import FeatureSettings
try:
    feast.Entity(name="probe", description=5)  # description must be a str
    checked = False
except typeguard.TypeCheckError:
    checked = True
defs = build_definitions(FeatureSettings(state_dir={state!r}))
print(json.dumps({{"checked": checked, "objects": len(defs.objects())}}))
"""


def _probe(tmp_path: Path, typechecks: str | None) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if k != "SLOTCAST_FEAST_TYPECHECKS"}
    if typechecks is not None:
        env["SLOTCAST_FEAST_TYPECHECKS"] = typechecks
    run = subprocess.run(
        [sys.executable, "-c", PROBE.format(state=str(tmp_path))],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    out: dict[str, Any] = json.loads(run.stdout.strip().splitlines()[-1])
    return out


def test_pass_through_keeps_the_target_in_both_decorator_forms() -> None:
    def f(x: int) -> int:
        return x

    assert _pass_through(f) is f
    assert _pass_through(forward_ref_policy=None)(f) is f


@pytest.mark.slow
def test_feast_skips_its_type_checks_by_default_and_keeps_them_on_request(tmp_path: Path) -> None:
    default = _probe(tmp_path / "a", None)
    kept = _probe(tmp_path / "b", "1")
    assert default["checked"] is False  # the decorator was a pass-through
    assert kept["checked"] is True  # SLOTCAST_FEAST_TYPECHECKS=1: Feast's own checks run
    # slotcast's Feast objects pass Feast's checks, and are the same objects either way
    assert kept["objects"] == default["objects"] and default["objects"] > 10
