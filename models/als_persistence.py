"""The ALS candidate generator's files: implicit's own ``als.npz`` for the factors, the two
vocabularies as ``users.npz`` / ``items.npz``, ``als.json`` (config and sizes) and, when kept, the
users' history (``history.npz``). No pickle; loading checks each file against the others and
raises IncompatibleBundleError naming the file. ``models.als.ALSCandidateGenerator.save`` / ``load``
call these."""

from __future__ import annotations

from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from models._io import read_json, read_npz, write_json
from models.als_history import FILE as HISTORY_FILE
from models.als_history import UserHistory
from models.als_implicit import ALSConfig
from models.errors import IncompatibleBundleError
from models.vocab import IdVocab

FILES = ("als.npz", "users.npz", "items.npz", "als.json")  # and history.npz when kept


class SavedALS(NamedTuple):
    """What a saved ALS directory holds: implicit's CPU model and what the wrapper keeps around it."""

    config: ALSConfig
    model: Any  # implicit.cpu.als.AlternatingLeastSquares
    users: IdVocab
    items: IdVocab
    history: UserHistory | None


def save_als(directory: str | Path, saved: SavedALS) -> None:
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    saved.model.save(str(d / "als.npz"))
    saved.users.save(d / "users.npz")
    saved.items.save(d / "items.npz")
    if saved.history is not None:
        saved.history.save(d / HISTORY_FILE)
    elif (d / HISTORY_FILE).exists():  # an older save's rows must not outlive an erasure
        (d / HISTORY_FILE).unlink()
    write_json(
        d / "als.json",
        {"config": saved.config.model_dump(), "n_users": len(saved.users), "n_items": len(saved.items)},
    )


def load_als(directory: str | Path) -> SavedALS:
    from implicit.cpu.als import AlternatingLeastSquares

    d = Path(directory)
    meta = read_json(d / "als.json")
    try:
        config = ALSConfig.model_validate(meta.get("config", {}))
    except ValueError as exc:
        raise IncompatibleBundleError(f"{d / 'als.json'} holds an invalid config: {exc}") from exc
    read_npz(d / "als.npz", required=("user_factors", "item_factors"))  # clear error first
    try:
        model = AlternatingLeastSquares.load(str(d / "als.npz"))
    except Exception as exc:  # noqa: BLE001 - any failure here means an unusable file
        raise IncompatibleBundleError(f"{d / 'als.npz'} cannot be loaded by implicit: {exc}") from exc
    users, items = IdVocab.load(d / "users.npz"), IdVocab.load(d / "items.npz")
    uf, itf = np.asarray(model.user_factors), np.asarray(model.item_factors)
    if uf.shape[0] != len(users) or itf.shape[0] != len(items):
        raise IncompatibleBundleError(
            f"{d}: factors are {uf.shape[0]} users x {itf.shape[0]} items but the vocabularies hold "
            f"{len(users)} users and {len(items)} items"
        )
    if uf.ndim != 2 or itf.ndim != 2 or uf.shape[1] != itf.shape[1]:
        raise IncompatibleBundleError(f"{d}: user and item factors disagree ({uf.shape} vs {itf.shape})")
    if not (np.isfinite(uf).all() and np.isfinite(itf).all()):
        raise IncompatibleBundleError(f"{d / 'als.npz'} holds non-finite factors")
    history = None
    if (d / HISTORY_FILE).is_file():
        history = UserHistory.load(d / HISTORY_FILE, (len(users), len(items)))
    return SavedALS(config, model, users, items, history)
