"""The demo's example request: what it prints can be pasted back as it is shown."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pandas as pd

from pipelines.demo import pick_examples
from pipelines.simulator import SimConfig, generate


def _on_air(sp: pd.DataFrame, stream_id: int, at: pd.Timestamp) -> int:
    s = sp[sp["stream_id"] == stream_id]
    return int(((s["on_air_from"] <= at) & (s["on_air_to"].isna() | (at < s["on_air_to"]))).sum())


def test_the_carousel_time_is_a_whole_second_with_the_products_still_on_air(tmp_path: Path) -> None:
    # The README showed the demo's `at` without its microseconds (2025-01-19T21:36:25Z): it lay
    # before the products came on air at 21:36:25.573660, and that carousel came back empty.
    generate(SimConfig(users=200, products=80, days=2, seed=7, categories=4), tmp_path)
    ex = pick_examples(tmp_path)
    at = datetime.fromisoformat(ex["at"])
    assert at.microsecond == 0 and at.tzinfo is not None
    assert ex["at"].endswith("Z")
    sp = pd.read_parquet(tmp_path / "stream_products.parquet")
    stream = sp[sp["stream_id"] == ex["stream_id"]]
    most = max(_on_air(sp, ex["stream_id"], t) for t in stream["on_air_from"])
    assert _on_air(sp, ex["stream_id"], pd.Timestamp(at)) >= most
