"""The serving benchmark's requests on a built world (benchmarks/serving_requests.py): every
request names a stream at a moment when at least the asked number of products are on air."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from benchmarks.serving_requests import lua_script, on_air_moments, state_requests
from features.data_model import read_table
from pipelines.simulator import SimConfig
from pipelines.simulator import generate as simulate
from serving.schemas import CarouselRequest


def test_requests_hit_streams_with_enough_products_on_air(tmp_path: Path) -> None:
    data = tmp_path / "data"
    simulate(SimConfig(users=300, products=600, days=2, seed=4, segment_products=(20, 26)), data)
    sp = read_table(data, "stream_products").to_pandas()

    def on_air(stream: int, at: pd.Timestamp) -> int:
        live = (sp["stream_id"] == stream) & (sp["on_air_from"] <= at) & (at < sp["on_air_to"])
        return int(live.sum())

    moments = on_air_moments(data, 22)
    assert moments
    for stream, t_us, count in moments:
        assert count >= 22 and on_air(stream, pd.Timestamp(t_us, unit="us", tz="UTC")) == count
    users = set(read_table(data, "users").column("user_id").to_pylist())
    bodies = state_requests(data, 50, 22, k=6, seed=2)
    assert len(bodies) == 50
    for b in bodies:
        req = CarouselRequest.model_validate(b)
        assert req.user_id in users and req.k == 6 and req.at is not None and req.stream_id is not None
        assert on_air(req.stream_id, pd.Timestamp(req.at)) >= 22
    script = lua_script("carousel", bodies[:3])
    assert script.count("[[{") == 3 and '"/carousel"' in script


def test_no_moment_with_that_many_on_air_is_a_clear_exit(tmp_path: Path) -> None:
    data = tmp_path / "data"
    simulate(SimConfig(users=200, products=300, days=1, seed=1), data)
    with pytest.raises(SystemExit, match="500\\+ products on air"):
        state_requests(data, 5, 500)
