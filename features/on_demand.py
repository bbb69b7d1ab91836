"""On-demand (request-time) features, computed by Feast from stored features and the request.

The transformations are plain functions over pandas frames so serving's fast path
(``features.retrieval``) can call exactly the same code.
"""

from __future__ import annotations

import inspect
from typing import Any

import numpy as np
import pandas as pd

REQUEST_SOURCE = "ranker_request"
# The request time as UTC epoch days; features.retrieval fills it (label time or now).
REQUEST_TIME = "request_epoch_days"
ON_DEMAND_FEATURES = ("price_vs_user_aov", "repurchase_due_ratio")


def ranker_request_features(inputs: pd.DataFrame) -> pd.DataFrame:
    """price / the user's average order value; days since the user last bought it / its repurchase cycle.

    Self-contained (imports and names inside): Feast may rebuild it from its source text.
    """
    import numpy as np
    import pandas as pd

    out = pd.DataFrame(index=inputs.index)
    price = pd.to_numeric(inputs["price"], errors="coerce").astype("float64")
    aov = pd.to_numeric(inputs["avg_order_value"], errors="coerce").astype("float64")
    out["price_vs_user_aov"] = (price / aov.where(aov > 0)).astype("float64")
    last = pd.to_numeric(inputs["last_purchase_epoch_days"], errors="coerce").astype("float64")
    cycle = pd.to_numeric(inputs["repurchase_cycle_days"], errors="coerce").astype("float64")
    now = pd.to_numeric(inputs["request_epoch_days"], errors="coerce").astype("float64")
    out["repurchase_due_ratio"] = ((now - last) / cycle.where(cycle > 0)).astype("float64")
    return out.replace([np.inf, -np.inf], np.nan)


def make_on_demand_views(views: dict[str, Any]) -> dict[str, Any]:
    from feast import Field, RequestSource
    from feast.on_demand_feature_view import OnDemandFeatureView
    from feast.types import Float64

    request = RequestSource(name=REQUEST_SOURCE, schema=[Field(name=REQUEST_TIME, dtype=Float64)])
    odfv = OnDemandFeatureView(
        name="ranker_request_features",
        sources=[
            views["product_stats"][["price", "repurchase_cycle_days"]],
            views["user_rfm"][["avg_order_value"]],
            views["user_product_history"],
            request,
        ],
        schema=[Field(name=f, dtype=Float64) for f in ON_DEMAND_FEATURES],
        udf=ranker_request_features,
        udf_string=inspect.getsource(ranker_request_features),
        mode="pandas",
        description="price relative to the user's AOV; repurchase due ratio",
    )
    return {"ranker_request_features": odfv}
