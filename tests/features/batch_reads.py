"""What both batch readers (features.online_reads.RedisBatch, features.online_sqlite.SqliteBatch)
are checked on: a few view reads with awkward keys, and their rows against Feast's ``online_read``."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from features.online_fast import AFFINITY, LIVE_FEATURES, USER_FEATURES
from features.online_reads import ViewRead, entity_keys, read_rows
from tests.features.world import day


def sample_reads(store: Any) -> list[ViewRead]:
    """User 1 twice, an unknown user and no one; odd category strings; join keys in both orders;
    a read with no key (no rows, and nothing to ask the store for)."""
    view = store.get_feature_view
    return [
        ViewRead(view("user_profile"), [{"user_id": u} for u in (1, 2, 987654, -1, 1)], USER_FEATURES),
        ViewRead(
            view("user_category_affinity"),
            [{"user_id": 1, "category": c} for c in ("beauty", "food", "bébé ✓", "")],
            AFFINITY,
        ),  # fmt: skip
        ViewRead(
            view("live_session"),
            [{"user_id": 2, "stream_id": 100}, {"stream_id": -1, "user_id": 2}],
            LIVE_FEATURES,
            timed=True,
        ),  # fmt: skip
        ViewRead(view("stream_live"), [], ["live_viewers"]),
    ]


def assert_rows_match_feast(store: Any, reads: list[ViewRead], got: list[list[dict[str, Any]]]) -> None:
    """``got`` holds, per read, the rows Feast's own ``online_read`` gives: same features in the
    same order, same values (NaN where absent); and user 1's known spend."""
    for r, rows in zip(reads, got, strict=True):
        want = read_rows(store, r.view, r.keys, r.feats, r.timed) if r.keys else []
        assert [list(row) for row in rows] == [list(row) for row in want]
        np.testing.assert_array_equal(
            np.array([list(row.values()) for row in rows], dtype=object).astype("float64"),
            np.array([list(row.values()) for row in want], dtype=object).astype("float64"),
        )
    profile = got[0]
    assert profile[0]["monetary_90d"] == 60.0 == profile[4]["monetary_90d"] and np.isnan(
        profile[2]["monetary_90d"]
    )


def assert_batch_matches_feast(
    store: Any,
    batch: Any,
    our_key: Callable[[dict[str, Any]], bytes],
    feast_keys: Callable[[list[Any]], list[bytes]],
) -> None:
    """A batch reader's rows equal Feast's ``online_read`` (``assert_rows_match_feast``), its keys
    equal the ones Feast's store writes (``feast_keys`` of the EntityKey protos), and an empty
    batch asks nothing."""
    reads = sample_reads(store)
    assert_rows_match_feast(store, reads, batch.read(reads))
    for r in reads:
        assert [our_key(k) for k in r.keys] == feast_keys(entity_keys(r.keys))
    assert batch.read([]) == []


def assert_same_lookups(a: Any, b: Any, products: list[int]) -> None:
    """Two readers' ``online`` frames are equal for known, unknown and no users, with and without a
    stream (``repurchase_due_ratio`` to 1e-6: it uses "now", read microseconds apart), now and at a
    time the build's live sessions are live (now they have expired)."""
    for (user, stream), at in itertools.product(
        ((1, 100), (2, 100), (3, None), (4, 100), (987654, 5), (-1, None)), (None, day(30, 11))
    ):
        x = a.online(user, products, stream_id=stream, at=at)
        y = b.online(user, products, stream_id=stream, at=at)
        now = ["repurchase_due_ratio"]
        pd.testing.assert_frame_equal(x.drop(columns=now), y.drop(columns=now), check_exact=True)
        pd.testing.assert_series_equal(x[now[0]], y[now[0]], rtol=1e-6)
