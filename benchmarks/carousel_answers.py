"""Carousel answers for a fixed request mix, to compare two versions of the serving code: run in
each checkout (``git archive <commit> | tar -x -C /tmp/old``), then ``cmp`` the two files.

    .venv/bin/python -m benchmarks.carousel_answers /tmp/new.jsonl
    (cd /tmp/old && /work/main/.venv/bin/python -m benchmarks.carousel_answers /tmp/old.jsonl)

The mix: the demo world at a frozen clock; demo, LightGBM and no ranker; shortlists of 7, 50 and
1000; streams, candidate lists with duplicates, excludes, unknown and cold-start users, no-consent
and deleted users, times before and after the streams, unknown streams (404) and store outages,
with a seeded exploration rng. Written: each answer without its request_id, then every impression
record without its request_id, as JSON lines."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

import serving.demo as demo
from benchmarks.bench_serving import lightgbm_ranker
from serving.adapters import make_policy
from serving.catalog import Catalog
from serving.errors import NotFoundError
from serving.pipeline import PipelineConfig, Recommender
from serving.schemas import CarouselRequest
from serving.settings import ServingSettings
from serving.sources import Models

FIXED = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


class _FrozenClock(datetime):
    @classmethod
    def now(cls, tz: Any = None) -> datetime:  # type: ignore[override]
        return FIXED


class MemoryLog:
    """The ImpressionLog interface, in memory."""

    def __init__(self) -> None:
        self.records: list[dict[str, Any]] = []

    def write(self, record: dict[str, Any]) -> bool:
        self.records.append(record)
        return True


def request(i: int, rs: np.random.Generator) -> CarouselRequest:
    kind = i % 8
    kw: dict[str, Any] = {"user_id": int(rs.integers(0, 700)), "k": int(rs.integers(1, 21))}  # > 600: cold
    if kind in (0, 1, 2, 3):
        kw["stream_id"] = int(rs.integers(0, 6))
    elif kind == 4:
        kw["candidates"] = [int(x) for x in rs.integers(0, 450, int(rs.integers(1, 120)))]
    elif kind == 5:
        kw["stream_id"] = int(rs.integers(0, 6))
        kw["exclude"] = [int(x) for x in rs.integers(0, 400, 30)]
    elif kind == 6:
        kw["candidates"] = [int(x) for x in rs.integers(0, 400, 80)]
        kw["exclude"] = [int(x) for x in rs.integers(0, 400, 10)]
    if i % 13 == 0:
        kw["at"] = FIXED - timedelta(hours=3)  # before the streams went on air
    elif i % 11 == 0:
        kw["at"] = FIXED + timedelta(days=int(rs.integers(1, 60)))
    else:
        kw["at"] = FIXED + timedelta(minutes=5)
    if i % 17 == 0:
        kw["stream_id"] = 99  # unknown
    return CarouselRequest(**kw)


def main(out_path: str) -> None:
    print("serving code from", demo.__file__)
    demo.datetime = _FrozenClock  # type: ignore[misc]  # the world's on-air times and purchases
    tables = demo.demo_tables(600, 400, 6, 100)
    base = demo.DemoModelSource(600, 400, 0.3, 2).load("champion")
    policy = make_policy(ServingSettings(epsilon=0.3, category_cap=2))
    rankers = {"demo": base.ranker, "lightgbm": lightgbm_ranker(tables, 60), "none": None}
    feats = demo.DemoFeatureSource(tables)
    with open(out_path, "w") as out:
        for ranker_name, ranker in rankers.items():
            models = Models(**{**base.__dict__, "policy": policy, "ranker": ranker})
            for shortlist in (50, 1000, 7):
                log = MemoryLog()
                rec = Recommender(
                    lambda m=models: (m, None), feats, Catalog(tables), log,  # type: ignore[misc, arg-type]
                    PipelineConfig(rerank_shortlist=shortlist, candidates_per_request=60),
                    is_deleted={5, 17, 33}.__contains__,
                )  # fmt: skip
                rec.rng = np.random.default_rng(1234)
                rs = np.random.default_rng(99)
                for i in range(400):
                    feats.fail = i % 19 == 0
                    try:
                        answer = rec.carousel(request(i, rs)).model_dump(mode="json")
                        answer.pop("request_id")
                    except NotFoundError as exc:
                        answer = {"error": str(exc)}
                    line = {"ranker": ranker_name, "shortlist": shortlist, "i": i, "answer": answer}
                    out.write(json.dumps(line) + "\n")
                feats.fail = False
                for record in log.records:
                    rest = {k: v for k, v in record.items() if k != "request_id"}
                    out.write(json.dumps({"impression": rest}, default=str) + "\n")
    print("wrote", out_path)


if __name__ == "__main__":
    main(sys.argv[1])
