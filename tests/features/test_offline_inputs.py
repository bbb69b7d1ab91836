"""What a features build recorded it was computed from (features.offline_inputs): the same data and
as-of give the same digest, although DuckDB writes the tables' bytes differently each build;
another as-of, other data or other segment rules give another; without a record, the tables' bytes."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest

from features.offline import compute_offline_features
from features.offline_inputs import inputs_path, offline_digest
from features.segments import load_segment_rules
from features.settings import FeatureSettings
from tests.features.conftest import AS_OF
from tests.features.world import day


def test_the_same_inputs_give_the_same_digest_and_other_inputs_another(
    world_dir: Path, tmp_path: Path
) -> None:
    s = FeatureSettings(state_dir=tmp_path / "state")
    compute_offline_features(world_dir, s, as_of=AS_OF)
    first = offline_digest(s)
    compute_offline_features(world_dir, s, as_of=AS_OF)
    assert offline_digest(s) == first  # an unchanged rebuild

    compute_offline_features(world_dir, s, as_of=day(20, 0))
    assert offline_digest(s) not in (first, "none")
    rules = load_segment_rules()
    fewer = type(rules)(rules.rules[1:], rules.default)
    compute_offline_features(world_dir, s, as_of=AS_OF, rules=fewer)
    assert offline_digest(s) != first
    compute_offline_features(world_dir, s, as_of=AS_OF, excluded_users={1})
    assert offline_digest(s) != first

    other = tmp_path / "other"
    shutil.copytree(world_dir, other)
    products = pd.read_parquet(other / "products.parquet")
    products.loc[0, "price"] = float(products.loc[0, "price"]) * 2
    products.to_parquet(other / "products.parquet", index=False)
    compute_offline_features(other, s, as_of=AS_OF)
    assert offline_digest(s) != first
    compute_offline_features(world_dir, s, as_of=AS_OF)
    assert offline_digest(s) == first


def test_without_a_record_the_digest_is_the_tables_bytes(world_dir: Path, tmp_path: Path) -> None:
    s = FeatureSettings(state_dir=tmp_path / "state")
    compute_offline_features(world_dir, s, as_of=AS_OF)
    recorded = offline_digest(s)

    def stop(step: str) -> None:
        if step == "product":
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):  # a build that stops halfway records nothing
        compute_offline_features(world_dir, s, as_of=day(20, 0), on_step=stop)
    assert not inputs_path(s).exists()
    unrecorded = offline_digest(s)
    assert unrecorded != recorded
    table = s.offline_dir / "user_features.parquet"
    table.write_bytes(table.read_bytes() + b"\0")
    assert offline_digest(s) != unrecorded


def test_a_change_to_any_module_of_the_features_package_gives_another_digest(
    world_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Not only the SQL: the modules it calls (here data_model, which conforms the tables) compute
    the tables too, so a rebuild after a change to any of them is not "the same inputs"."""
    import features.offline as offline

    s = FeatureSettings(state_dir=tmp_path / "state")
    package = tmp_path / "features"
    shutil.copytree(Path(offline.__file__).parent, package, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(offline, "__file__", str(package / "offline.py"))
    compute_offline_features(world_dir, s, as_of=AS_OF)
    first = offline_digest(s)
    with (package / "data_model.py").open("a") as f:
        f.write("\n# a change to how tables are conformed\n")
    compute_offline_features(world_dir, s, as_of=AS_OF)
    assert offline_digest(s) != first
