"""Reading and writing the bundle's small files without pickle; every failure names the file."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from models.errors import IncompatibleBundleError


def read_npz(path: Path, required: tuple[str, ...] = ()) -> dict[str, np.ndarray]:
    """All arrays of an ``.npz`` (``allow_pickle=False``); IncompatibleBundleError when missing,
    corrupted or lacking one of ``required``."""
    if not path.is_file():
        raise IncompatibleBundleError(f"{path} is missing")
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
    except (OSError, ValueError, KeyError, zipfile.BadZipFile, EOFError) as exc:
        raise IncompatibleBundleError(f"{path} is corrupted or not an npz file: {exc}") from exc
    missing = [k for k in required if k not in arrays]
    if missing:
        raise IncompatibleBundleError(f"{path} lacks the arrays {missing}")
    return arrays


def read_json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise IncompatibleBundleError(f"{path} is missing")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise IncompatibleBundleError(f"{path} is not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise IncompatibleBundleError(f"{path} must hold a JSON object, got {type(data).__name__}")
    return data


def write_json(path: Path, data: dict[str, Any]) -> None:
    path.write_text(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n", encoding="utf-8")
