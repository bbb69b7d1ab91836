"""Pushing a product the ALS model never saw picks users who truly buy it more than chance.

A simulated world (its truth: P(purchase | pushed) per user and product), a real ALS fitted on its
events, and the push ranking's factors (``serving.push._factors``): a product nobody interacted
with has zero factors (in the vocabulary) or none (outside it), so every user scored the same and
the audience came in user-id order, no better than random. With its category's mean factors the
users chosen buy it about three times as often as a random choice on the demo world."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from serving.catalog import Catalog
from serving.push import _factor_scores, _factors

pytestmark = pytest.mark.slow
N = 50  # users per push


@pytest.fixture(scope="module")
def fitted(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Catalog, dict[str, object]]:
    from models.als import ALSCandidateGenerator, ALSConfig
    from models.vocab import IdVocab
    from pipelines.simulator import SimConfig, generate
    from training.interactions import build_interactions, load_events
    from training.settings import EventWeights

    data = tmp_path_factory.mktemp("sim") / "data"
    generate(SimConfig(users=4_000, products=600, days=10, seed=5), data)
    catalog = Catalog.from_data_dir(data)
    events = load_events(data)
    models = {}
    # Training pins the catalogue as the columns (never-touched products get zero factors); a
    # vocabulary of the events' products alone leaves them out of it: both are served.
    for name, item_ids in (("pinned", catalog.products.index.to_numpy(np.int64)), ("events only", None)):
        inter = build_interactions(events, EventWeights(), item_ids=item_ids)
        cfg = ALSConfig(factors=16, iterations=10, random_state=0, num_threads=1)
        models[name] = ALSCandidateGenerator(cfg).fit(
            inter.matrix, IdVocab(inter.user_ids), IdVocab(inter.item_ids)
        )
    return data, catalog, models


@pytest.mark.parametrize("vocabulary", ["pinned", "events only"])
def test_a_product_nobody_interacted_with_reaches_users_who_buy_it(
    fitted: tuple[Path, Catalog, dict[str, object]], vocabulary: str
) -> None:
    from pipelines.simulator.truth import TrueWorld

    data, catalog, models = fitted
    als = models[vocabulary]
    truth = TrueWorld.load(data)
    touched = np.unique(load_product_ids(data))
    cold = np.setdiff1d(catalog.products.index.to_numpy(np.int64), touched)
    assert len(cold) >= 20, "the world should have products nobody interacted with"
    users = catalog.user_ids[als.users.index(catalog.user_ids) >= 0]  # type: ignore[attr-defined]
    rng = np.random.default_rng(0)
    chosen, random, ceiling = [], [], []
    for pid in rng.choice(cold, 40, replace=False):
        f = _factors(als, np.array([pid]), catalog)
        assert f is not None and np.isfinite(f).all() and np.any(f != 0)
        scores = _factor_scores(als, f, users)[:, 0]
        true_p = truth.push_purchase_prob(users, np.full(len(users), pid))
        chosen.append(true_p[np.argsort(-scores, kind="stable")[:N]].sum())
        random.append(true_p[rng.choice(len(users), N, replace=False)].sum())
        ceiling.append(true_p[np.argsort(-true_p)[:N]].sum())
    # Known answer: the world's product factors are their category's centroid plus noise.
    assert np.mean(chosen) > 1.8 * np.mean(random), (np.mean(chosen), np.mean(random), np.mean(ceiling))
    # Without a catalogue there is nothing to go on: no score rather than a made-up one.
    assert np.isnan(_factors(als, np.array([cold[0]]))).all()  # type: ignore[arg-type]


def load_product_ids(data: Path) -> np.ndarray:
    from features.data_model import read_table

    ev = read_table(data, "events").to_pandas()
    return ev["product_id"].dropna().to_numpy(np.int64)
