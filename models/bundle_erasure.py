"""Erasing users from a saved bundle directory, in place (the right to erasure reaching the models).

A bundle holds two per-user records: the ALS user factors with their id vocabulary and their
training rows (``als/``: ``history.npz``'s rows follow ``users.npz``) and the popularity model's
user -> segment map (``popularity/``). ``erase_users`` removes both for the
given users and rewrites the manifest (checksums, user count) last, so a reader that catches the
directory half-written fails the checksum check instead of loading a mix. Item factors, rankings
and the ranker are sums over everyone and stay as they are.

``held_users`` reads only the two small id arrays, so a caller holding many bundles (a registry)
can fetch those files first and the whole bundle only when there is something to erase.
"""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import numpy as np
import numpy.typing as npt

from models.als import ALSCandidateGenerator
from models.bundle import MANIFEST, Bundle, _sha256
from models.errors import IncompatibleBundleError
from models.popularity import PopularityModel
from models.vocab import ids_within_int64

# The files that name users, relative to the bundle directory.
USER_FILES = ("als/users.npz", "popularity/popularity.npz")
_USER_ARRAYS = {"als/users.npz": "ids", "popularity/popularity.npz": "user_ids"}


def held_users(directory: str | Path) -> np.ndarray:
    """The user ids the bundle files under ``directory`` name, file after file (an id held by both
    is there twice; no sort: a million ids are checked with ``np.isin`` in ~50 ms, made distinct in
    ~600). Either file may be absent: a partial download of ``USER_FILES`` is enough."""
    d = Path(directory)
    found = [np.empty(0, np.int64)]
    for rel, key in _USER_ARRAYS.items():
        path = d / rel
        if not path.is_file():
            continue
        try:
            with np.load(path, allow_pickle=False) as data:
                found.append(np.asarray(data[key], dtype=np.int64))
        except (OSError, ValueError, KeyError, zipfile.BadZipFile, EOFError) as exc:
            raise IncompatibleBundleError(f"{path} is corrupted or lacks '{key}': {exc}") from exc
    return np.concatenate(found)


def erase_users(directory: str | Path, user_ids: npt.ArrayLike) -> int:
    """Remove ``user_ids`` from the bundle in ``directory``; the number of user records removed
    (ALS rows plus segment entries; 0 leaves every file untouched).

    The files are checked against the manifest first: a corrupted bundle raises
    IncompatibleBundleError and is not rewritten (its checksums would then hide the damage).
    """
    d = Path(directory)
    manifest = Bundle.read_manifest(d)
    for rel, digest in manifest.files.items():
        if rel.startswith(("als/", "popularity/")) and _sha256(d / rel) != digest:
            raise IncompatibleBundleError(f"bundle file {d / rel} does not match its manifest checksum")
    ids = ids_within_int64(user_ids)  # 2**64 - 1 is no user here, and must not wrap onto user -1
    als = ALSCandidateGenerator.load(d / "als")
    popularity = PopularityModel.load(d / "popularity")
    dropped = als.drop_users(ids) + popularity.drop_users(ids)
    if not dropped:
        return 0
    (d / MANIFEST).unlink()  # from here until the new manifest, the directory is no bundle
    als.save(d / "als")
    popularity.save(d / "popularity")
    files = dict(manifest.files)
    for sub in ("als", "popularity"):
        for p in sorted((d / sub).iterdir()):
            if p.is_file():
                files[str(p.relative_to(d))] = _sha256(p)
    new = manifest.model_copy(update={"files": files, "n_users": len(als.users)})
    tmp = d / (MANIFEST + ".tmp")
    tmp.write_text(new.model_dump_json(indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, d / MANIFEST)
    return dropped
