"""The bundle: ALS candidates + LightGBM ranker + popularity fallback + a manifest, without pickle.

Layout of a bundle directory::

    manifest.json          Manifest (written last: a bundle without it is incomplete)
    als/                   als.npz (implicit's format), users.npz, items.npz, als.json,
                           history.npz (each user's training row; optional, models/als_history.py)
    ranker/                ranker.txt (LightGBM text model), ranker.json   (optional)
    popularity/            popularity.npz

``Bundle.load`` checks the manifest against the files (sha256, feature list, vocabulary sizes,
library versions) and raises IncompatibleBundleError with the reason, so serving can answer 503
and keep its previous model.
"""

from __future__ import annotations

import hashlib
import logging
import os
import platform
import shutil
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from models._io import read_json
from models.als import ALSCandidateGenerator
from models.errors import IncompatibleBundleError, SlotcastModelError
from models.popularity import PopularityModel
from models.ranker import LightGBMRanker

log = logging.getLogger(__name__)

BUNDLE_FORMAT_VERSION = 1
MANIFEST = "manifest.json"
COMPONENTS = ("als", "popularity", "ranker")
# Libraries whose file formats the bundle depends on: another major (minor while 0.x) is refused.
# Python itself is recorded but not checked: nothing is pickled, so any Python that runs these
# libraries reads the files.
CHECKED_LIBRARIES = ("implicit", "lightgbm")
# Compared, but another major only warns: every array is an .npz read with allow_pickle=False
# (implicit's own file too), a format numpy 1 and numpy 2 write and read alike.
WARNED_LIBRARIES = ("numpy",)


def library_versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in (*CHECKED_LIBRARIES, *WARNED_LIBRARIES, "scipy", "pandas"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "unknown"
    return out


def _compat_key(v: str) -> tuple[int, ...]:
    """The part of a version that must match: major, or major.minor while major is 0 (semver)."""
    parts: list[int] = []
    for piece in v.split(".")[:2]:
        digits = "".join(ch for ch in piece if ch.isdigit())
        parts.append(int(digits) if digits else -1)
    return tuple(parts[:2]) if parts and parts[0] == 0 else tuple(parts[:1])


class Manifest(BaseModel):
    """What a bundle is: made by whom, from what, for which features. Stored as manifest.json."""

    model_config = ConfigDict(extra="forbid")

    format_version: int = BUNDLE_FORMAT_VERSION
    created_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    library_versions: dict[str, str] = Field(default_factory=library_versions)
    feature_service: str = Field(..., description="the Feast FeatureService the ranker was trained on")
    feature_names: list[str] = Field(default_factory=list, description="the ranker's features, in order")
    objective: str | None = None
    n_users: int = Field(..., ge=0)
    n_items: int = Field(..., ge=0)
    mlflow_run_id: str | None = None
    data_digest: str = ""
    metrics: dict[str, float] = Field(default_factory=dict)
    params: dict[str, Any] = Field(default_factory=dict)
    files: dict[str, str] = Field(default_factory=dict, description="relative path -> sha256, set on save")


def _check_versions(saved: dict[str, str], manifest: Path) -> None:
    """Refuse a bundle written by an incompatible implicit or lightgbm; warn on another numpy."""
    now = library_versions()
    for lib in CHECKED_LIBRARIES:
        if lib not in saved:
            raise IncompatibleBundleError(f"{manifest} does not record the {lib} version")
        if _compat_key(saved[lib]) != _compat_key(now[lib]):
            raise IncompatibleBundleError(
                f"{manifest}: written with {lib} {saved[lib]}, incompatible with the installed {now[lib]}"
            )
    for lib in WARNED_LIBRARIES:
        if lib in saved and _compat_key(saved[lib]) != _compat_key(now[lib]):
            log.warning(
                "%s: written with %s %s, installed %s %s; loading it (its .npz files read the same)",
                manifest, lib, saved[lib], lib, now[lib],
            )  # fmt: skip


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@dataclass
class Bundle:
    als: ALSCandidateGenerator
    popularity: PopularityModel
    manifest: Manifest
    ranker: LightGBMRanker | None = None

    @classmethod
    def create(
        cls,
        als: ALSCandidateGenerator,
        popularity: PopularityModel,
        ranker: LightGBMRanker | None,
        feature_service: str,
        *,
        data_digest: str = "",
        metrics: dict[str, float] | None = None,
        params: dict[str, Any] | None = None,
        mlflow_run_id: str | None = None,
    ) -> Bundle:
        """A bundle whose manifest is filled from the components (sizes, features, versions)."""
        manifest = Manifest(
            feature_service=feature_service,
            feature_names=list(ranker.feature_names) if ranker is not None else [],
            objective=ranker.objective if ranker is not None else None,
            n_users=len(als.users),
            n_items=len(als.items),
            mlflow_run_id=mlflow_run_id,
            data_digest=data_digest,
            metrics=dict(metrics or {}),
            params={"als": als.config.model_dump(), **({"ranker": ranker.config.model_dump()} if ranker else {}),
                    **(params or {})},
        )  # fmt: skip
        return cls(als=als, popularity=popularity, manifest=manifest, ranker=ranker)

    def save(self, directory: str | Path) -> Path:
        """Write the bundle; the manifest (with file checksums) is written last and atomically."""
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        # a re-save into the same directory must not keep a previous component's stale files
        (d / MANIFEST).unlink(missing_ok=True)
        for sub in COMPONENTS:
            shutil.rmtree(d / sub, ignore_errors=True)
        self.als.save(d / "als")
        self.popularity.save(d / "popularity")
        if self.ranker is not None:
            self.ranker.save(d / "ranker")
        files = {
            str(p.relative_to(d)): _sha256(p)
            for sub in COMPONENTS
            if (d / sub).is_dir()
            for p in sorted((d / sub).iterdir())
            if p.is_file()
        }
        self.manifest = self.manifest.model_copy(
            update={"files": files, "n_users": len(self.als.users), "n_items": len(self.als.items)}
        )
        tmp = d / (MANIFEST + ".tmp")
        tmp.write_text(self.manifest.model_dump_json(indent=2) + "\n", encoding="utf-8")
        os.replace(tmp, d / MANIFEST)
        return d

    @classmethod
    def read_manifest(cls, directory: str | Path) -> Manifest:
        path = Path(directory) / MANIFEST
        data = read_json(path)
        fmt = data.get("format_version", BUNDLE_FORMAT_VERSION)
        if fmt != BUNDLE_FORMAT_VERSION:
            # before the schema: another format's manifest may hold fields this one does not know
            raise IncompatibleBundleError(
                f"{path}: bundle format {fmt!r}, this slotcast reads {BUNDLE_FORMAT_VERSION}"
            )
        try:
            return Manifest.model_validate(data)
        except ValidationError as exc:
            raise IncompatibleBundleError(f"{path} is not a valid bundle manifest: {exc}") from exc

    @classmethod
    def load(cls, directory: str | Path, *, check_versions: bool = True) -> Bundle:
        """Load and verify a bundle; IncompatibleBundleError says what is wrong."""
        d = Path(directory)
        if not d.is_dir():
            raise IncompatibleBundleError(f"bundle directory {d} does not exist")
        m = cls.read_manifest(d)  # checks the format version
        if check_versions:
            _check_versions(m.library_versions, d / MANIFEST)
        for rel, digest in m.files.items():
            p = d / rel
            if not p.is_file():
                raise IncompatibleBundleError(f"bundle file {p} listed in the manifest is missing")
            if _sha256(p) != digest:
                raise IncompatibleBundleError(
                    f"bundle file {p} does not match its manifest checksum (corrupted?)"
                )
        if not m.files:
            raise IncompatibleBundleError(f"{d / MANIFEST} lists no files; the bundle was never completed")
        try:
            als = ALSCandidateGenerator.load(d / "als")
            popularity = PopularityModel.load(d / "popularity")
            has_ranker = any(rel.startswith("ranker/") for rel in m.files)
            ranker = LightGBMRanker.load(d / "ranker") if has_ranker else None
        except IncompatibleBundleError:
            raise
        except SlotcastModelError as exc:
            raise IncompatibleBundleError(f"bundle {d} failed to load: {exc}") from exc
        if (len(als.users), len(als.items)) != (m.n_users, m.n_items):
            raise IncompatibleBundleError(
                f"{d / MANIFEST} says {m.n_users} users x {m.n_items} items, the ALS files hold "
                f"{len(als.users)} x {len(als.items)}"
            )
        ranker_names = ranker.feature_names if ranker is not None else []
        if ranker_names != m.feature_names:
            raise IncompatibleBundleError(
                f"{d / MANIFEST} lists features {m.feature_names} but the ranker file has {ranker_names}"
            )
        return cls(als=als, popularity=popularity, manifest=m, ranker=ranker)

    @staticmethod
    def find(root: str | Path) -> Path:
        """The directory under ``root`` that holds a bundle manifest (MLflow downloads nest it)."""
        r = Path(root)
        if (r / MANIFEST).is_file():
            return r
        if not r.is_dir():
            raise IncompatibleBundleError(f"{r} is not a directory; no bundle there")
        found = sorted(r.rglob(MANIFEST), key=lambda p: (len(p.parts), str(p)))
        if not found:
            raise IncompatibleBundleError(f"no {MANIFEST} under {r}; not a slotcast bundle")
        shallowest = [p for p in found if len(p.parts) == len(found[0].parts)]
        if len(shallowest) > 1:
            raise IncompatibleBundleError(f"several bundles under {r}: {[str(p.parent) for p in shallowest]}")
        return found[0].parent
