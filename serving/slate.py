"""The carousel's last stage: the slot policy arranges the candidate columns into a slate, which
becomes the answer and its impression record (items, slots, propensities, variant). Plain
columns on the hot path (``serving.pipeline.Recommender``)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd

from serving.impressions import ImpressionLog
from serving.schemas import CarouselRequest, CarouselResponse
from serving.sources import Models


def slate_columns(slate: Any) -> dict[str, np.ndarray]:
    """The policy's Slate as column arrays, whichever shape it comes in (models.policy's Slate has
    ``columns``; a DataFrame works too). Columns avoid pandas row iteration on the hot path."""
    cols = getattr(slate, "columns", None)
    if isinstance(cols, dict):
        return {k: np.asarray(v) for k, v in cols.items()}
    frame = getattr(slate, "frame", slate)
    if not isinstance(frame, pd.DataFrame):
        frame = pd.DataFrame(frame)
    return {str(c): frame[c].to_numpy() for c in frame.columns}


def arrange(policy: Any, cand: dict[str, Any], k: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """The policy's slate of ``k`` slots for the candidate columns, as columns."""
    # Plain columns when the policy takes them (models.policy.SlotPolicy): a DataFrame built here
    # and taken apart again by the policy cost more than the rules themselves.
    arrange_columns = getattr(policy, "arrange_columns", None)
    return slate_columns(
        arrange_columns(cand, k, rng)
        if arrange_columns is not None
        else policy.arrange(pd.DataFrame(cand), k, rng)
    )


def carousel_answer(
    slate: dict[str, np.ndarray],
    req: CarouselRequest,
    now: datetime,
    models: Models,
    variant: str,
    fallback: str | None,
    degraded: bool,
    impressions: ImpressionLog | None,
) -> CarouselResponse:
    """The answer for a slate, its impression written first when there is a log."""
    request_id = uuid.uuid4().hex
    product_ids = slate["product_id"].astype(np.int64).tolist()
    slot_numbers = slate["slot"].astype(np.int64).tolist()
    # One NaN -> 0 pass over the three float columns (JSON has no NaN).
    floats = np.vstack([slate[c].astype(float) for c in ("score", "p_convert", "expected_value")])
    if not np.isfinite(floats).all():  # nan_to_num's Python overhead only when it has work
        floats = np.nan_to_num(floats)
    fields = ("product_id", "slot", "score", "p_convert", "expected_value", "reason")
    rows = zip(product_ids, slot_numbers, *floats.tolist(), [str(r) for r in slate["reason"]], strict=True)
    if impressions is not None:
        impressions.write(
            {
                "kind": "carousel", "request_id": request_id, "ts": now.isoformat(),
                "user_id": req.user_id, "stream_id": req.stream_id,
                "items": product_ids, "slots": slot_numbers,
                "propensities": slate["propensity"].astype(float).tolist() if "propensity" in slate else None,
                "variant": variant, "model_version": models.version, "fallback": fallback, "degraded": degraded,
                # Answered as of a given ``at``: no user was shown it (evaluation leaves it out).
                "replay": req.at is not None,
            }
        )  # fmt: skip
    # One validation of plain dicts in pydantic-core: ~3x cheaper than a model_construct per slot.
    return CarouselResponse.model_validate(
        {
            "request_id": request_id, "slots": [dict(zip(fields, row, strict=True)) for row in rows],
            "model_version": models.version, "variant": variant, "personalized": fallback is None,
            "fallback": fallback, "degraded": degraded,
        }
    )  # fmt: skip
