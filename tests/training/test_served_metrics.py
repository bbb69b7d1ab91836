"""The ranking metrics rank what serving would rank (training.fit.served): a carousel query only
its on-air products, any query only its candidate rows. The positives the candidates missed count
as misses and are never listed; a product bought off air leaves a carousel query."""

from __future__ import annotations

import numpy as np
import pandas as pd

from training.fit import query_topk, ranking_scores


def rows(query: int, products: list[int], labels: list[int], on_air: list[int] | None = None,
         candidate: list[bool] | None = None) -> pd.DataFrame:  # fmt: skip
    n = len(products)
    return pd.DataFrame(
        {
            "query_id": query,
            "product_id": products,
            "label": labels,
            "on_air": on_air if on_air is not None else [0] * n,
            "candidate": candidate if candidate is not None else [True] * n,
        }
    )


def test_a_missed_positive_is_never_listed_but_counts_as_a_miss() -> None:
    # the bought product 13 was outside the candidates; a score for it (what a model would give a
    # row it cannot be asked about) must not put it in the list
    f = rows(1, [10, 11, 12, 13], [1, 0, 0, 1], candidate=[True, True, True, False])
    score = np.array([1.0, 3.0, 2.0, 99.0])
    qids, top, rel = query_topk(f, score, 3)
    assert qids.tolist() == [1]
    assert top.tolist() == [[11, 12, 10]]
    assert rel == [{10, 13}]
    nd, means = ranking_scores(f, score, 3)
    assert means["recall_at_3"] == 0.5  # one of the two purchases was reachable
    assert 0.0 < nd[0] < 1.0


def test_a_carousel_ranks_its_on_air_products_only() -> None:
    # products 20, 21 on air; 22 (an ALS candidate off air) scores highest and was bought, yet the
    # carousel could never have shown it
    f = rows(2, [20, 21, 22], [0, 1, 1], on_air=[1, 1, 0])
    qids, top, rel = query_topk(f, np.array([1.0, 2.0, 9.0]), 3)
    assert top.tolist() == [[21, 20, -1]]
    assert rel == [{21}]
    nd, _ = ranking_scores(f, np.array([1.0, 2.0, 9.0]), 3)
    assert nd.tolist() == [1.0]


def test_a_carousel_query_whose_purchases_were_all_off_air_drops_out() -> None:
    f = pd.concat(
        [rows(3, [30, 31, 32], [0, 0, 1], on_air=[1, 1, 0]), rows(4, [40, 41], [1, 0])],
        ignore_index=True,
    )
    qids, top, _ = query_topk(f, np.array([3.0, 2.0, 1.0, 1.0, 2.0]), 2)
    assert qids.tolist() == [4]  # the stream-less query 4 ranks all its candidates
    assert top.tolist() == [[41, 40]]


def test_a_query_with_no_rankable_row_counts_as_zero() -> None:
    # its only row is a missed purchase: the query stays, with nothing listed
    f = pd.concat([rows(5, [50], [1], candidate=[False]), rows(6, [60, 61], [1, 0])], ignore_index=True)
    nd, _ = ranking_scores(f, np.array([5.0, 2.0, 1.0]), 2)
    assert nd.tolist() == [0.0, 1.0]


def test_frames_without_context_columns_rank_every_row() -> None:
    f = pd.DataFrame({"query_id": [7, 7, 7], "product_id": [70, 71, 72], "label": [0, 0, 1]})
    _, top, rel = query_topk(f, np.array([1.0, 3.0, 2.0]), 2)
    assert top.tolist() == [[71, 72]] and rel == [{72}]
