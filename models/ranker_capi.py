"""Serving's fast path into LightGBM: ``LGBM_BoosterPredictForMat`` called through LightGBM's own
ctypes handles, skipping ``Booster.predict``'s Python overhead (see
``models.ranker.LightGBMRanker.predict_matrix``). Those handles are private to LightGBM, so when
they are missing this answers None and the caller uses ``booster.predict``."""

from __future__ import annotations

from typing import Any

import numpy as np

from models.errors import ModelFitError


def raw_predict_for_mat() -> Any:
    """A function (booster, C-contiguous float64 matrix, num_iteration, num_threads) -> predictions
    through LightGBM's C API, or None when this LightGBM's Python module lacks the handles used."""
    global _RAW_PREDICT
    if _RAW_PREDICT is not None:
        return _RAW_PREDICT or None
    try:
        import ctypes

        from lightgbm.basic import (
            _C_API_DTYPE_FLOAT64,
            _C_API_IS_ROW_MAJOR,
            _C_API_PREDICT_NORMAL,
            _C_API_PREDICT_RAW_SCORE,
            _LIB,
            _safe_call,
        )
    except ImportError:
        _RAW_PREDICT = False
        return None
    params = {t: f"num_threads={t}".encode() for t in (1, 2, 4)}
    c_double_p = ctypes.POINTER(ctypes.c_double)

    def predict(
        booster: Any, X: np.ndarray, num_iteration: int, num_threads: int, raw: bool = False
    ) -> np.ndarray:
        n = X.shape[0]
        out = np.empty(n, dtype=np.float64)
        got = ctypes.c_int64(0)
        _safe_call(
            _LIB.LGBM_BoosterPredictForMat(
                booster._handle,
                X.ctypes.data_as(ctypes.c_void_p),
                ctypes.c_int(_C_API_DTYPE_FLOAT64),
                ctypes.c_int32(n),
                ctypes.c_int32(X.shape[1]),
                ctypes.c_int(_C_API_IS_ROW_MAJOR),
                ctypes.c_int(_C_API_PREDICT_RAW_SCORE if raw else _C_API_PREDICT_NORMAL),
                ctypes.c_int(0),  # start_iteration
                ctypes.c_int(num_iteration),  # <= 0: every tree
                params.get(num_threads) or f"num_threads={num_threads}".encode(),
                ctypes.byref(got),
                out.ctypes.data_as(c_double_p),
            )
        )
        if got.value != n:
            raise ModelFitError(f"LightGBM answered {got.value} values for {n} rows")
        return out

    _RAW_PREDICT = predict
    return predict


_RAW_PREDICT: Any = None  # the function above once built; False when unavailable
