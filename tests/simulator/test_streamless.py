"""A stream-less shop (`--no-streams`): legal data every later stage must handle."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow.compute as pc
import pytest

from features.data_model import read_table, table_path
from features.validation import validate_dir
from pipelines.simulator import SimConfig, TrueWorld, generate


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("shop")
    (out / "streams.parquet").write_bytes(b"stale")  # left over from an earlier run: must go
    generate(SimConfig(users=4_000, products=600, days=7, seed=8, streams=False), out)
    return out


def test_no_stream_tables_or_ids(shop: Path) -> None:
    assert not table_path(shop, "streams").exists()
    assert not table_path(shop, "stream_products").exists()
    assert read_table(shop, "streams").num_rows == 0  # absent optional tables read as empty
    events = read_table(shop, "events")
    assert events.column("stream_id").null_count == events.num_rows
    types = set(pc.unique(events.column("type")).to_pylist())
    assert not types & {"stream_view", "comment", "like", "share"}
    assert {"product_click", "purchase", "push_sent"} <= types
    imp = read_table(shop, "impressions")
    assert imp.num_rows > 0 and imp.column("stream_id").null_count == imp.num_rows


def test_streamless_tables_validate_and_the_truth_holds(shop: Path) -> None:
    report = validate_dir(shop, write=False)
    assert {n: c.quarantined for n, c in report.tables.items() if c.quarantined} == {}
    truth = TrueWorld.load(shop)
    imp = read_table(shop, "impressions", ["user_id", "product_id", "slot", "purchased"])
    u, i, s = (imp.column(c).to_numpy() for c in ("user_id", "product_id", "slot"))
    prob = truth.purchase_prob(u, i, s)  # no stream: the average host, which is exact here
    bought = imp.column("purchased").to_numpy(zero_copy_only=False)
    assert bought.sum() > 20
    assert abs((bought.sum() - prob.sum()) / np.sqrt((prob * (1 - prob)).sum())) < 4
