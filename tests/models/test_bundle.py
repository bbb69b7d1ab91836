from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from models import (
    ALSCandidateGenerator,
    ALSConfig,
    Bundle,
    IncompatibleBundleError,
    LightGBMRanker,
    PopularityModel,
    RankerConfig,
)
from tests.models.conftest import Checkerboard, make_checkerboard


def ranker_frame(n: int, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = pd.DataFrame(
        {"als_score": rng.normal(size=n), "price": rng.uniform(1, 50, n), "on_air": rng.integers(0, 2, n)}
    )
    y = (X["als_score"] + 0.5 * X["on_air"] + rng.normal(scale=0.5, size=n) > 0.5).astype(int).to_numpy()
    return X, y


@pytest.fixture(scope="module")
def board() -> Checkerboard:
    return make_checkerboard(seed=3)


@pytest.fixture(scope="module")
def bundle(board: Checkerboard) -> Bundle:
    als = ALSCandidateGenerator(ALSConfig(factors=2, iterations=10, num_threads=1)).fit(
        board.matrix, board.users, board.items
    )
    pop = PopularityModel.from_user_items(board.matrix, board.users, board.items, board.user_group)
    X, y = ranker_frame(600, 0)
    ranker = LightGBMRanker(RankerConfig(n_estimators=20, num_threads=1)).fit(X, y)
    return Bundle.create(
        als, pop, ranker, "ranker_v1", data_digest="sha256:abc", metrics={"auc": 0.8}, mlflow_run_id="r1"
    )


@pytest.fixture()
def saved(bundle: Bundle, tmp_path: Path) -> Path:
    return bundle.save(tmp_path / "artifacts" / "bundle")


def test_round_trip_gives_identical_answers(bundle: Bundle, saved: Path, board: Checkerboard) -> None:
    loaded = Bundle.load(saved)
    users, items = np.repeat(board.users.ids, 4), np.tile(board.items.ids[:4], len(board.users))
    np.testing.assert_array_equal(loaded.als.score(users, items), bundle.als.score(users, items))
    X, _ = ranker_frame(50, 1)
    assert loaded.ranker is not None and bundle.ranker is not None
    np.testing.assert_array_equal(loaded.ranker.predict(X), bundle.ranker.predict(X))
    for seg in (None, "A", "B"):
        np.testing.assert_array_equal(loaded.popularity.top(5, seg)[0], bundle.popularity.top(5, seg)[0])
    m = loaded.manifest
    assert m.feature_service == "ranker_v1" and m.feature_names == ["als_score", "price", "on_air"]
    assert (m.n_users, m.n_items) == (len(board.users), len(board.items))
    assert m.mlflow_run_id == "r1" and m.metrics == {"auc": 0.8} and m.data_digest == "sha256:abc"
    assert {"implicit", "lightgbm", "numpy", "python"} <= set(m.library_versions)
    assert "als/als.npz" in m.files and "ranker/ranker.txt" in m.files


def test_find_locates_a_nested_bundle(saved: Path, tmp_path: Path) -> None:
    assert Bundle.find(tmp_path) == saved
    assert Bundle.find(saved) == saved
    with pytest.raises(IncompatibleBundleError, match="no manifest.json"):
        Bundle.find(tmp_path / "artifacts" / "bundle" / "als")
    shutil.copytree(saved, tmp_path / "artifacts" / "other")
    with pytest.raises(IncompatibleBundleError, match="several bundles"):
        Bundle.find(tmp_path)


def tamper(saved: Path, **changes: object) -> None:
    path = saved / "manifest.json"
    data = json.loads(path.read_text())
    data.update(changes)
    path.write_text(json.dumps(data))


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"feature_names": ["price", "als_score", "on_air"]}, "lists features"),
        ({"n_users": 3}, "users x"),
        ({"format_version": 99}, "bundle format 99"),
        # regression: a newer format's new field hid the version behind a schema error
        ({"format_version": 2, "ranker_calibration": {}}, "bundle format 2, this slotcast reads 1"),
        (
            {"library_versions": {"implicit": "0.1.0", "lightgbm": "4.7.0", "numpy": "2.4.0"}},
            "implicit 0.1.0",
        ),
        (
            {"library_versions": {"implicit": "0.7.3", "lightgbm": "3.3.5", "numpy": "2.4.0"}},
            "lightgbm 3.3.5",
        ),
        # numpy 1 only warns (below), an incompatible implicit beside it is still refused
        (
            {"library_versions": {"implicit": "0.6.2", "lightgbm": "4.7.0", "numpy": "1.26.4"}},
            "implicit 0.6.2",
        ),
        ({"surprise": 1}, "not a valid bundle manifest"),
        ({"files": {}}, "lists no files"),
    ],
)
def test_tampered_manifest_is_refused(saved: Path, changes: dict[str, object], message: str) -> None:
    tamper(saved, **changes)
    with pytest.raises(IncompatibleBundleError, match=message):
        Bundle.load(saved)


def test_a_bundle_from_another_numpy_major_loads_with_a_warning(
    saved: Path, bundle: Bundle, board: Checkerboard, caplog: pytest.LogCaptureFixture
) -> None:
    # regression: a bundle saved under numpy 1.26.4 was refused under numpy 2 (and back), though
    # every file of it is an .npz read with allow_pickle=False, the same format under both
    with caplog.at_level(logging.WARNING, logger="models.bundle"):
        Bundle.load(saved)
    assert "numpy" not in caplog.text  # the same numpy: no warning
    other = "1.26.4" if np.__version__.startswith("2.") else "2.2.6"
    versions = json.loads((saved / "manifest.json").read_text())["library_versions"]
    tamper(saved, library_versions={**versions, "numpy": other})
    with caplog.at_level(logging.WARNING, logger="models.bundle"):
        loaded = Bundle.load(saved)
    assert f"numpy {other}" in caplog.text and f"numpy {np.__version__}" in caplog.text
    users, items = np.repeat(board.users.ids, 4), np.tile(board.items.ids[:4], len(board.users))
    np.testing.assert_array_equal(loaded.als.score(users, items), bundle.als.score(users, items))
    assert loaded.popularity.top(5, "A")[0].tolist() == bundle.popularity.top(5, "A")[0].tolist()


def test_missing_file_is_refused(saved: Path) -> None:
    (saved / "ranker" / "ranker.txt").unlink()
    with pytest.raises(IncompatibleBundleError, match=r"ranker\.txt listed in the manifest is missing"):
        Bundle.load(saved)


def test_corrupted_file_is_refused(saved: Path) -> None:
    f = saved / "als" / "als.npz"
    raw = bytearray(f.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    f.write_bytes(bytes(raw))
    with pytest.raises(IncompatibleBundleError, match="checksum"):
        Bundle.load(saved)


def test_a_ranker_file_for_other_features_is_refused(saved: Path, bundle: Bundle, tmp_path: Path) -> None:
    """Replace the ranker (and its checksums) with one trained on other features: the manifest's
    feature list no longer matches the ranker file."""
    X, y = ranker_frame(300, 2)
    other = LightGBMRanker(RankerConfig(n_estimators=5, num_threads=1)).fit(
        X.rename(columns={"price": "cost"}), y
    )
    shutil.rmtree(saved / "ranker")
    other.save(saved / "ranker")
    data = json.loads((saved / "manifest.json").read_text())
    from models.bundle import _sha256

    data["files"].update({f"ranker/{p.name}": _sha256(p) for p in (saved / "ranker").iterdir()})
    (saved / "manifest.json").write_text(json.dumps(data))
    with pytest.raises(IncompatibleBundleError, match="cost"):
        Bundle.load(saved)


def test_missing_manifest_and_missing_directory(tmp_path: Path, saved: Path) -> None:
    (saved / "manifest.json").unlink()
    with pytest.raises(IncompatibleBundleError, match="manifest.json is missing"):
        Bundle.load(saved)
    with pytest.raises(IncompatibleBundleError, match="does not exist"):
        Bundle.load(tmp_path / "nowhere")


def test_bundle_without_ranker(bundle: Bundle, tmp_path: Path) -> None:
    als_only = Bundle.create(bundle.als, bundle.popularity, None, "ranker_v1")
    loaded = Bundle.load(als_only.save(tmp_path / "b"))
    assert loaded.ranker is None and loaded.manifest.feature_names == []
    bundle.save(tmp_path / "b2")
    again = Bundle.load(als_only.save(tmp_path / "b2"))  # over a bundle that had a ranker
    assert again.ranker is None and not (tmp_path / "b2" / "ranker").exists()


UNPICKLED: list[str] = []


def _mark_unpickled() -> str:
    UNPICKLED.append("ran")
    return "payload"


class _Payload:
    """Unpickling it runs ``_mark_unpickled``: the sign that a loader trusted a pickle."""

    def __reduce__(self) -> tuple[object, tuple[()]]:
        return _mark_unpickled, ()


def test_saved_files_need_no_pickle(saved: Path) -> None:
    npz = sorted(saved.rglob("*.npz"))
    assert {p.name for p in npz} >= {"als.npz", "users.npz", "items.npz", "popularity.npz"}
    for p in npz:
        with np.load(p, allow_pickle=False) as z:
            for k in z.files:
                assert z[k].dtype != object, f"{p.name}:{k}"


@pytest.mark.parametrize(
    "target", ["als/users.npz", "als/items.npz", "als/als.npz", "popularity/popularity.npz"]
)
def test_a_pickled_payload_is_refused_unread(saved: Path, target: str) -> None:
    """A bundle file swapped for one that carries a pickle (checksums updated, as an attacker with
    write access would) is refused, and the pickle is never run."""
    path = saved / target
    with np.load(path, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    key = next(iter(arrays))
    arrays[key] = np.array([_Payload()], dtype=object)
    np.savez(path, **arrays)  # type: ignore[arg-type]
    data = json.loads((saved / "manifest.json").read_text())
    from models.bundle import _sha256

    data["files"][target] = _sha256(path)
    (saved / "manifest.json").write_text(json.dumps(data))
    UNPICKLED.clear()
    with pytest.raises(IncompatibleBundleError, match=target.split("/")[-1]):
        Bundle.load(saved)
    assert UNPICKLED == []
