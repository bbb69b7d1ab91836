"""Carousel requests for the serving benchmark on a built world (``bench_serving --state``): real
users, and streams at moments when at least ``min_on_air`` products are on air.

The simulator's streams lie in the past, so each request carries ``at`` (the middle of an on-air
segment): the pipeline decides what is on air and what was bought recently as of then.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pyarrow.compute as pc
import pyarrow.parquet as pq

from serving.catalog import US


def _table(data: Path, name: str, columns: list[str]):  # type: ignore[no-untyped-def]
    path = data / name
    return pq.read_table(path if path.exists() else data / f"{name}.parquet", columns=columns)


def on_air_moments(data: Path, min_on_air: int) -> list[tuple[int, int, int]]:
    """(stream_id, time in us, products on air then) for every on-air segment with at least
    ``min_on_air`` products: one per (stream, segment), at the segment's midpoint."""
    sp = _table(data, "stream_products", ["stream_id", "on_air_from", "on_air_to"])
    start = pc.cast(sp["on_air_from"], "int64").to_numpy()
    end = pc.cast(sp["on_air_to"], "int64").to_numpy()
    sid = sp["stream_id"].to_numpy()
    keys = np.stack([sid, start, end], axis=1)
    segments, counts = np.unique(keys, axis=0, return_counts=True)
    keep = counts >= min_on_air
    return [
        (int(s), int((a + b) // 2), int(c)) for (s, a, b), c in zip(segments[keep], counts[keep], strict=True)
    ]


def state_requests(data: Path, n: int, min_on_air: int, k: int = 8, seed: int = 0) -> list[dict]:
    """``n`` request bodies: a random user of the world in a random well-stocked on-air moment."""
    moments = on_air_moments(data, min_on_air)
    if not moments:
        raise SystemExit(f"{data}: no stream has {min_on_air}+ products on air at once (--min-on-air)")
    users = _table(data, "users", ["user_id"])["user_id"].to_numpy()
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(moments), n)
    who = rng.choice(users, n)
    out = []
    for m, u in zip(picks, who, strict=True):
        stream, t_us, _ = moments[m]
        at = datetime.fromtimestamp(t_us / US, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        out.append({"user_id": int(u), "stream_id": stream, "k": k, "at": at})
    return out


def lua_script(route: str, bodies: list[dict]) -> str:
    """A wrk script that posts one of ``bodies``, chosen at random, per request."""
    rows = ",\n".join("  [[" + json.dumps(b) + "]]" for b in bodies)
    return (
        "math.randomseed(os.time())\n"
        f"local bodies = {{\n{rows}\n}}\n"
        "local n = #bodies\n"
        "request = function()\n"
        f'  return wrk.format("POST", "/{route}", {{["Content-Type"] = "application/json"}}, bodies[math.random(1, n)])\n'
        "end\n"
    )
