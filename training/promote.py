"""``slotcast promote``: champion <- challenger only if the challenger is better on the current test
split (paired bootstrap over queries, training.gate), or when forced, or when there is no champion.

Both bundles score the SAME candidate rows: the test-split queries of the given data, candidates
from the challenger's ALS plus on-air and the truly converted products, point-in-time features;
each bundle recomputes als_score / als_rank with its own ALS before its ranker scores the rows.
The decision and its figures go to an MLflow run ("promote") and onto the challenger's version tags.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from models.popularity import RANKER_FEATURE
from training.dataset import (
    HistoricalReader,
    TimeSplits,
    attach_features,
    candidate_rows,
    label_window,
    on_air_pairs,
    select_queries,
)
from training.fit import Progress, ranking_scores, served
from training.gate import GateResult, decide
from training.settings import TrainSettings

log = logging.getLogger(__name__)


class PromotionError(RuntimeError):
    """Nothing to promote, or the comparison cannot be made (exit code 1)."""

    exit_code = 1
    http_status = 409


@dataclass(frozen=True)
class PromotionReport:
    result: GateResult
    champion_version: str | None
    challenger_version: str
    promoted: bool
    run_id: str | None  # the "promote" run; None when the challenger was already champion


def test_frame(events: pd.DataFrame, stream_products: pd.DataFrame, settings: TrainSettings,
               reader: HistoricalReader | None, als: Any, other_als: tuple[Any, ...] = (),
               progress: Progress = lambda _: None) -> pd.DataFrame:  # fmt: skip
    """The current data's test-split candidate rows (with features), built the way training does."""
    progress("building the test split's queries and candidates")
    splits = TimeSplits.from_events(events, settings.split)
    window = label_window(splits, settings.split, settings.label_window_hours)
    rng = np.random.default_rng(settings.seed)
    queries, positives = select_queries(
        events, splits, settings.label_event, window, settings.max_queries, settings.negative_query_ratio, rng
    )
    queries = queries.loc[queries["split"] == "test"]
    positives = positives.loc[positives["query_id"].isin(queries["query_id"])]
    if queries.empty or positives.empty:
        raise PromotionError(
            "the current data's test split has no query with a positive label: cannot compare"
        )
    on_air = on_air_pairs(queries, stream_products)
    cand = candidate_rows(queries, positives, on_air, {"test": als}, settings.candidates_n, other_als)
    if reader is not None:
        progress(f"point-in-time features for {len(cand):,} candidate rows")
    cand, _ = attach_features(cand, reader, settings.feature_service)
    cand["on_air"] = cand["on_air"].astype(np.int8)
    return cand


def score_bundle(bundle: Any, frame: pd.DataFrame, k: int) -> np.ndarray:
    """Per-query nDCG@k of ``bundle`` on ``frame`` (queries with a positive, in query-id order)."""
    f = frame.copy()
    f["als_score"] = bundle.als.score(f["user_id"].to_numpy(), f["product_id"].to_numpy())
    f["als_rank"] = (
        f["als_score"].fillna(-np.inf).groupby(f["query_id"]).rank(ascending=False, method="first")
    )
    if bundle.popularity is not None:  # each bundle's own, as for als_score
        f[RANKER_FEATURE] = bundle.popularity.relative_log_score(f["product_id"].to_numpy())
    for c in bundle.ranker.feature_names if bundle.ranker is not None else []:
        if c in f.columns and f[c].dtype == object:
            f[c] = f[c].astype("category")
    score = bundle.ranker.predict(f) if bundle.ranker is not None else f["als_score"].to_numpy()
    nd, _ = ranking_scores(f, score, k)
    return nd


def _lacking(bundle: Any, frame: pd.DataFrame) -> list[str]:
    """The features ``bundle``'s ranker was trained on that ``frame`` lacks."""
    return [c for c in bundle.ranker.feature_names if c not in frame.columns] if bundle.ranker else []


def promote(
    settings: TrainSettings,
    data_dir: Path | None,
    open_reader: Callable[[], HistoricalReader | None] | None = None,
    force: bool = False,
    progress: Progress = lambda _: None,
) -> PromotionReport:
    """Gate the challenger into champion; ``progress`` hears each phase (a first promotion spends
    its time opening MLflow; a comparison in reading the data, Feast features and the two bundles).

    ``open_reader`` gives the feature reader and is called only when the two versions are really
    compared: a first promotion (no champion), a promotion forced without --data or a challenger
    that is champion already needs no feature store. None: context features only (--no-features)."""
    from training.as_trained import AS_TRAINED, as_trained, measured_by, run_params
    from training.registry import CHALLENGER, CHAMPION, load_bundle, version_by_alias
    from training.run import load_inputs
    from training.tracking import configure, experiment_id, log_metrics, log_params

    progress("opening the MLflow registry")
    client = configure(settings)
    name = settings.registered_model
    chall = version_by_alias(client, name, CHALLENGER)
    if chall is None:
        raise PromotionError(f"model {name!r} has no {CHALLENGER!r} version; run `slotcast train` first")
    champ = version_by_alias(client, name, CHAMPION)
    if champ is not None and champ.version == chall.version:
        # Promoted already (a second `promote`, `pipeline run --from promote`): nothing to decide.
        reason = f"version {chall.version} is already the champion: nothing to promote"
        nan = float("nan")
        kept = GateResult(f"ndcg@{settings.k}", 0, nan, nan, nan, nan, nan, False, reason)
        return PromotionReport(kept, str(champ.version), str(chall.version), False, None)

    chall_params = run_params(client, chall)
    settings = as_trained(settings, chall_params)  # the label, splits, k, candidates it was measured on
    champ_scores: np.ndarray | None = None
    chall_scores = np.empty(0)
    if champ is not None and (data_dir is not None or not force):
        if data_dir is None:
            raise PromotionError("comparing with the champion needs --data DIR (the current test split)")
        reader = open_reader() if open_reader is not None else None  # fails here without a store
        progress(f"reading {data_dir}")
        events, stream_products, _ = load_inputs(Path(data_dir), settings)
        progress(f"loading challenger v{chall.version} and champion v{champ.version} from the registry")
        b_chall = load_bundle(name, str(chall.version))
        b_champ = load_bundle(name, str(champ.version))
        # Candidates: the union of both models' ALS top-n (+ on-air), so neither is judged on the
        # other's candidate set alone.
        frame = test_frame(events, stream_products, settings, reader, b_chall.als, (b_champ.als,), progress)
        lacking = {who: _lacking(b, frame) for who, b in (("challenger", b_chall), ("champion", b_champ))}
        for who, version in (("challenger", chall.version), ("champion", champ.version)):
            if lacking[who] and not force:
                raise PromotionError(
                    f"the {who} v{version} needs features this comparison lacks: {lacking[who]} (run "
                    "promote without --no-features, on a store built with them; or --force)"
                )
        if not lacking["challenger"]:  # forced past a lacking challenger: nothing to compare
            rows, _, _ = served(frame, np.zeros(len(frame)))  # the queries the metric counts
            n = rows.loc[rows["label"] > 0, "query_id"].nunique()
            progress(f"scoring both versions on the {n:,} test queries with a {settings.label}")
            chall_scores = score_bundle(b_chall, frame, settings.k)
            champ_scores = score_bundle(b_champ, frame, settings.k) if not lacking["champion"] else None
    result = decide(champ_scores, chall_scores, metric=f"ndcg@{settings.k}", force=force,
                    n_boot=settings.bootstrap_samples, seed=settings.seed)  # fmt: skip
    if champ is not None and champ_scores is None:  # forced, and nothing was compared
        result = replace(result, reason="forced without a comparison (no --data, or features differ)")

    progress("recording the decision in MLflow")
    exp = experiment_id(client, settings)
    run = client.create_run(
        exp, run_name="promote", tags={"decision": "promote" if result.promote else "keep"}
    )
    run_id = run.info.run_id
    log_params(client, run_id, {
        "challenger_version": chall.version,
        "champion_version": champ.version if champ else "none",
        "force": force,
        "metric": result.metric,
        **{k: getattr(settings, k) for k in AS_TRAINED},
        **{f"split.{k}": v for k, v in settings.split.model_dump().items()},
        **measured_by(chall_params, run_params(client, champ), str(champ.version) if champ else None),
        "reason": result.reason,
    })  # fmt: skip
    log_metrics(client, run_id, {k: float(v) for k, v in result.as_dict().items()
                                 if isinstance(v, (int, float)) and not isinstance(v, bool)})  # fmt: skip
    client.set_terminated(run_id, "FINISHED")
    for key, value in result.as_dict().items():
        client.set_model_version_tag(name, chall.version, f"gate.{key}", str(value))
    client.set_model_version_tag(name, chall.version, "gate.run_id", run_id)
    if result.promote:
        client.set_registered_model_alias(name, CHAMPION, chall.version)
        log.info("version %s promoted to champion (%s)", chall.version, result.reason)
    return PromotionReport(
        result, str(champ.version) if champ else None, str(chall.version), result.promote, run_id
    )
