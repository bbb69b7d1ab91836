"""The carousel's candidates before any model scores them: a stream's products on air, a list the
request gives, or none (then the models choose from the whole catalogue), and the popularity that
fallback answers are chosen and scored by. Plain numpy on the hot path
(``serving.pipeline.Recommender``)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from serving.catalog import Catalog
from serving.errors import NotFoundError, listed
from serving.schemas import CarouselRequest
from serving.sources import Models

Columns = dict[str, np.ndarray]


def on_air_rows(ids: np.ndarray, on_air: np.ndarray) -> np.ndarray | None:
    """Positions of the rows on air, the first per product id, in the given order; None when that
    is every row (the arrays can be used as they are, without a copy)."""
    live = np.flatnonzero(on_air)
    if len(live) > 1:
        on = np.sort(ids[live])
        if bool((on[1:] == on[:-1]).any()):  # a product on air twice (overlapping segments)
            _, first = np.unique(ids[live], return_index=True)
            live = live[np.sort(first)]
    return None if len(live) == len(ids) else live


def request_candidates(
    catalog: Catalog, req: CarouselRequest, now_us: int
) -> tuple[np.ndarray | None, np.ndarray | None, np.ndarray | None, Columns | None]:
    """(ids, pinned, on_air, attributes) of the request's stream or candidate list; ids None when
    it names neither. ``attributes``: the catalogue's product columns for ids, when the stream
    has them. An unknown stream or product is a 404 naming the field."""
    pinned = None
    on_air = None
    attributes = None
    if req.stream_id is not None:
        sp = catalog.stream_products(req.stream_id)
        if sp is None:
            raise NotFoundError(f"unknown stream {req.stream_id}", field="stream_id")
        ids = sp.product_ids
        on_air = (sp.on_air_from <= now_us) & (now_us < sp.on_air_to)
        pinned = sp.pinned_slot
        attributes = sp.attributes
        # A stream lists a product once per segment it is shown in: the candidates are the rows
        # on air now, one per product (its first such row), as training's on_air_pairs builds
        # them. Off-air rows would take shortlist places, and a product's off-air row could
        # hide its on-air one from the slot policy (which keeps the first row per product).
        live = on_air_rows(ids, on_air)
        if live is not None:
            ids, pinned, on_air = ids[live], pinned[live], on_air[live]
            attributes = {k: v[live] for k, v in attributes.items()} if attributes is not None else None
    elif req.candidates is not None:
        ids = np.asarray(req.candidates, np.int64)
        unknown = pd.unique(ids[catalog.product_rows(ids) < 0])
        if len(unknown):  # as push refuses an unknown product: never a slot the catalogue lacks
            raise NotFoundError(
                f"unknown products in candidates: {listed(unknown.tolist())}", field="candidates"
            )
    else:
        ids = None
    return ids, pinned, on_air, attributes


def popular_ids(models: Models, n: int, segment: str | None, exclude: np.ndarray) -> np.ndarray:
    out = models.popularity.top(n, segment=segment, exclude=exclude.tolist() or None)
    ids = out[0] if isinstance(out, tuple) else out
    return np.asarray(ids, np.int64)


def popularity_scores(models: Models, ids: np.ndarray) -> np.ndarray:
    """Overall popularity of ``ids`` (0 where the model has none): no segment, no user."""
    if not len(ids):
        return np.zeros(0)
    score = getattr(models.popularity, "score", None)  # models.popularity: one searchsorted
    if score is not None:
        got = np.asarray(score(ids, None), float)
        return np.where(np.isnan(got), 0.0, got)
    out = models.popularity.top(len(ids), segment=None, candidates=ids.tolist())
    if isinstance(out, tuple):
        got_ids, got = np.asarray(out[0], np.int64), np.asarray(out[1], float)
    else:  # ids only, best first: rank-based scores
        got_ids = np.asarray(out, np.int64)
        got = 1.0 / (1.0 + np.arange(len(got_ids)))
    # Each id's first score (duplicates ignored), 0 where the model has none.
    uniq, first = np.unique(got_ids, return_index=True)
    if not len(uniq):
        return np.zeros(len(ids))
    pos = np.clip(np.searchsorted(uniq, ids), 0, len(uniq) - 1)
    out = np.where(uniq[pos] == ids, got[first][pos], 0.0)
    return np.where(np.isnan(out), 0.0, out)
