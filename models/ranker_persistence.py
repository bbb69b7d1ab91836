"""The ranker's files: LightGBM's own text model (``ranker.txt``, cut at the best iteration) and
``ranker.json`` (feature names and order, categorical features, objective, baseline, config, the
training curves). No pickle: readable with any LightGBM 4.x. Loading checks the two files against
each other and raises IncompatibleBundleError naming the file. ``models.ranker.LightGBMRanker.save``
/ ``load`` call these."""

from __future__ import annotations

from pathlib import Path
from typing import Any, NamedTuple

from models._io import read_json, write_json
from models.errors import IncompatibleBundleError
from models.ranker_config import RankerConfig

FILES = ("ranker.txt", "ranker.json")


class SavedRanker(NamedTuple):
    """What a saved ranker directory holds."""

    config: RankerConfig
    booster: Any  # lightgbm.Booster
    feature_names: list[str]
    categorical_features: list[str]
    best_iteration: int
    base: tuple[float, float] | None  # (intercept, slope) on config.base_feature
    evals_result: dict[str, dict[str, list[float]]]


def save_ranker(directory: str | Path, saved: SavedRanker) -> None:
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    saved.booster.save_model(str(d / "ranker.txt"), num_iteration=saved.best_iteration)
    write_json(
        d / "ranker.json",
        {
            "feature_names": saved.feature_names,
            "categorical_features": saved.categorical_features,
            "objective": saved.config.objective,
            "best_iteration": saved.best_iteration,
            "base": list(saved.base) if saved.base is not None else None,
            "config": saved.config.model_dump(),
            "evals_result": saved.evals_result,
        },
    )


def load_ranker(directory: str | Path) -> SavedRanker:
    import lightgbm as lgb

    d = Path(directory)
    meta = read_json(d / "ranker.json")
    try:
        config = RankerConfig.model_validate(meta["config"])
        names = [str(x) for x in meta["feature_names"]]
        cats = [str(x) for x in meta.get("categorical_features", [])]
        best = int(meta.get("best_iteration", 0))
        base = meta.get("base")
        base = (float(base[0]), float(base[1])) if base is not None else None
    except (KeyError, TypeError, ValueError) as exc:
        raise IncompatibleBundleError(f"{d / 'ranker.json'} is invalid: {exc}") from exc
    if (base is None) != (config.base_feature is None) or (
        base is not None and config.base_feature not in names
    ):
        raise IncompatibleBundleError(f"{d / 'ranker.json'}: base and base_feature disagree")
    not_features = [c for c in cats if c not in names]
    if not_features:
        raise IncompatibleBundleError(
            f"{d / 'ranker.json'}: categorical features {not_features} are not among its features {names}"
        )
    if meta.get("objective") != config.objective:
        raise IncompatibleBundleError(f"{d / 'ranker.json'}: objective disagrees with its config")
    path = d / "ranker.txt"
    if not path.is_file():
        raise IncompatibleBundleError(f"{path} is missing")
    try:
        booster = lgb.Booster(model_file=str(path))
    except (lgb.basic.LightGBMError, ValueError, OSError) as exc:
        raise IncompatibleBundleError(f"{path} cannot be loaded by LightGBM: {exc}") from exc
    if booster.feature_name() != names:
        raise IncompatibleBundleError(
            f"{path} was trained on features {booster.feature_name()} but ranker.json lists {names}"
        )
    best = min(best, booster.current_iteration()) if best else booster.current_iteration()
    return SavedRanker(config, booster, names, cats, best, base, meta.get("evals_result", {}))
