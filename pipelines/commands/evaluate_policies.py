"""The policies `slotcast evaluate` can name, and how each is built: popular and random need no model;
als, als+ranker, champion and challenger come from a bundle (--bundle, or MLflow by alias), with a
ranker's feature lookup from the Feast store. A policy that cannot be built raises PolicyUnavailable
with the reason, and the command skips it, saying so.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

KNOWN_POLICIES = ("popular", "random", "logging", "als", "als+ranker", "champion", "challenger")
DEFAULT_POLICIES = "popular,als,als+ranker,champion,challenger"
# DR's reward model is the ranker of the first of these evaluated with one (else of any policy with one)
REWARD_MODEL_ORDER = ("champion", "als+ranker", "challenger")


class PolicyUnavailable(Exception):
    """A requested policy that cannot be evaluated here (no model, no features): skipped with this reason."""


def parse_policies(text: str) -> list[str]:
    names = [p.strip() for p in text.split(",") if p.strip()]
    unknown = [p for p in names if p not in KNOWN_POLICIES]
    if unknown:
        raise typer.BadParameter(
            f"unknown policy {unknown}; known: {', '.join(KNOWN_POLICIES)}", param_hint="--policies"
        )
    if not names:
        raise typer.BadParameter("no policy named", param_hint="--policies")
    return list(dict.fromkeys(names))


class Bundles:
    """Bundles loaded once per alias (or from --bundle), with the reason when one is not there."""

    def __init__(self, settings: Any, bundle_dir: Path | None) -> None:
        self.settings, self.bundle_dir = settings, bundle_dir
        self._cache: dict[str, Any] = {}  # alias -> (key, bundle) or the reason it is unavailable
        self._by_key: dict[str, Any] = {}
        self.specs: dict[tuple[str, str], Any] = {}  # (bundle key, what) -> policy spec, shared by names
        self.features: dict[tuple[str, str], Any] = {}  # (feature service, as of) -> one feature cache

    def get(self, alias: str) -> Any:
        return self.resolve(alias)[1]

    def resolve(self, alias: str) -> tuple[str, Any]:
        """(key, bundle): aliases naming the same model version get the same key and the same bundle."""
        if alias not in self._cache:
            self._cache[alias] = self._load(alias)
        found = self._cache[alias]
        if isinstance(found, PolicyUnavailable):
            raise found
        return found  # type: ignore[no-any-return]

    def _load(self, alias: str) -> Any:
        from models.bundle import Bundle
        from models.errors import SlotcastModelError

        try:
            if alias == "default" and self.bundle_dir is not None:
                path = Bundle.find(self.bundle_dir)
                return self._keep(f"dir {path}", lambda: Bundle.load(path))
            from training import tracking
            from training.registry import load_bundle, version_by_alias

            name = self.settings.registered_model
            client = tracking.configure(self.settings)
            ref = "champion" if alias == "default" else alias
            mv = version_by_alias(client, name, ref)
            if mv is None:
                return PolicyUnavailable(
                    f"no MLflow model {name}@{ref} (run `slotcast train`, then `slotcast promote`)"
                )
            return self._keep(f"{name} version {mv.version}", lambda: load_bundle(name, ref))
        except SlotcastModelError as exc:
            return PolicyUnavailable(f"bundle {alias!r} cannot be loaded: {exc}")
        except Exception as exc:  # noqa: BLE001 - an unreachable MLflow store skips the model, not the evaluation
            return PolicyUnavailable(f"bundle {alias!r} unavailable: {type(exc).__name__}: {exc}")

    def loaded(self) -> dict[str, Any]:
        """key -> bundle, of every bundle loaded so far."""
        return dict(self._by_key)

    def _keep(self, key: str, load: Any) -> tuple[str, Any]:
        if key not in self._by_key:
            self._by_key[key] = load()
        return key, self._by_key[key]


def _feature_fn(bundle: Any, settings: Any, as_of: Any, caches: dict[tuple[str, str], Any]) -> Any:
    """The ranker's feature lookup (the Feast store built by `slotcast features build`), one cache per
    feature service and as-of time, so every ranker on that service shares one point-in-time lookup."""
    if bundle.ranker is None:
        raise PolicyUnavailable("the bundle has no ranker")
    from training.evaluation.ranker_features import CONTEXT_FEATURES, context_feature_fn

    if set(bundle.ranker.feature_names) <= set(CONTEXT_FEATURES):
        return context_feature_fn()  # trained without the feature store: nothing to look up
    try:
        from features.retrieval import FeastFeatureReader
        from features.settings import FeatureSettings

        fs = FeatureSettings(state_dir=settings.state_dir)  # type: ignore[call-arg]
        if not fs.registry_path.exists():
            raise PolicyUnavailable(f"no feature store at {fs.registry_path} (run `slotcast features build`)")
        # DuckDB's ASOF join over the same offline sources: Feast's file store reads and sorts every
        # source table per call (8.8 GB at 10M events); both engines return the same rows
        # (tests/features/test_retrieval_duckdb.py)
        reader = FeastFeatureReader(fs, offline_engine="duckdb")
    except ImportError as exc:
        raise PolicyUnavailable(f"feature retrieval unavailable: {exc}") from exc
    from training.evaluation.ranker_features import PointInTimeFeatures

    key = (bundle.manifest.feature_service, str(as_of))
    if key not in caches:
        caches[key] = PointInTimeFeatures(reader, bundle.manifest.feature_service, as_of)
    return caches[key]


def build_policy(
    name: str, bundles: Bundles, settings: Any, as_of: Any, popular_factory: Any, notes: list[str]
) -> Any:
    from training.evaluation.policies import ALSPolicy, PopularPolicy, RandomPolicy, RankerPolicy

    if name == "popular":
        return PopularPolicy.from_events
    if name == "random":
        return RandomPolicy()
    alias = {"als": "default", "als+ranker": "default"}.get(name, name)
    if alias == "default" and bundles.bundle_dir is None:
        alias = "champion"  # the same model: one download, one spec
    key, bundle = bundles.resolve(alias)

    def shared(what: str, make: Any) -> Any:
        # names resolving to one model version get one spec: evaluate() then scores it once
        if (key, what) not in bundles.specs:
            bundles.specs[(key, what)] = make()
        return bundles.specs[(key, what)]

    def als_policy() -> Any:
        return shared("als", lambda: lambda train: ALSPolicy(bundle.als, popular_factory(train), name=name))

    if name == "als":
        return als_policy()
    try:
        features = _feature_fn(bundle, settings, as_of, bundles.features)
    except PolicyUnavailable as exc:
        if name == "als+ranker":
            raise
        # champion / challenger without a usable ranker are still their ALS stage: evaluate that, and say so
        notes.append(f"{name}: evaluated as its ALS stage only ({exc})")
        return als_policy()
    # Every logged candidate (a stream's on-air products) reaches the ranker, as serving reranks them
    # all for a personal answer (SLOTCAST_RERANK_ON_AIR; benchmarks/bench_shortlist.py measured why).
    # Serving's fallback answers keep the shortlist; their value did not depend on it.
    return shared("ranker", lambda: lambda train: RankerPolicy(
        ALSPolicy(bundle.als, popular_factory(train)), bundle.ranker, features, n_candidates=None, name=name,
        popularity=bundle.popularity,
    ))  # fmt: skip


def seen_window_notes(bundles: Bundles, events: Any, cut: Any) -> list[str]:
    """Notes on the loaded bundles whose ALS was fitted on events of the held-out window (from
    ``cut``): their replay is optimistic, the held-out users' later interactions being in its
    factors. A bundle's ALS history says until when it saw events (``UserHistory.until_us``: the
    start of training's test split); the note gives the ``--test-fraction`` that holds out only what
    it did not see. A bundle that does not say gets the general caution."""
    import math

    import pandas as pd

    t0, t1 = events["ts"].min(), events["ts"].max()
    notes = []
    for key, bundle in bundles.loaded().items():
        history = getattr(bundle.als, "history", None)
        until_us = getattr(history, "until_us", None)
        if until_us is None:
            notes.append(f"{key}: replay is optimistic if it was trained on data that covers the held-out "
                         "window (its bundle does not say until when; a user 'new' here may be known to it)")  # fmt: skip
            continue
        until = pd.Timestamp(int(until_us), unit="us", tz="UTC")
        if until <= cut:
            continue
        fraction = math.floor(100 * (t1 - until) / (t1 - t0)) / 100 if t1 > t0 else 0.0
        fix = (
            f"`--test-fraction {fraction:.2f}` holds out only what it did not see"
            if fraction > 0
            else "no window of this data is unseen by it"
        )
        notes.append(
            f"{key}: its ALS was fitted on events up to {until:%Y-%m-%d %H:%M} UTC, "
            f"{(until - cut) / pd.Timedelta(days=1):.1f} days into the held-out window (from {cut:%Y-%m-%d %H:%M}): "
            f"its replay is optimistic; {fix}"
        )
    return notes
