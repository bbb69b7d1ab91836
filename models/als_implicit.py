"""The ALS hyperparameters and the ``implicit`` model they build and fit (CPU or GPU class, the
BLAS thread check); ``models.als.ALSCandidateGenerator`` wraps the fitted model with vocabularies."""

from __future__ import annotations

import logging
import warnings
from typing import Any

import scipy.sparse as sp
from pydantic import BaseModel, ConfigDict, Field

from models.errors import ModelFitError

log = logging.getLogger(__name__)


class ALSConfig(BaseModel):
    """Hyperparameters (factors .. iterations) and run options (random_state .. show_progress).

    ``model_dump()`` goes straight into MLflow params.
    """

    model_config = ConfigDict(extra="forbid")

    factors: int = Field(default=64, ge=1, le=1024)
    regularization: float = Field(default=0.05, ge=0.0)
    alpha: float = Field(default=10.0, gt=0.0, description="confidence scale: C = 1 + alpha * weight")
    iterations: int = Field(default=15, ge=1, le=500)
    use_cg: bool = True
    random_state: int | None = 42
    use_gpu: bool = False
    num_threads: int = Field(default=0, ge=0, description="0 = all cores")
    show_progress: bool = False
    keep_history: bool = Field(
        default=True,
        description="keep each user's confidence row with the model (als/history.npz), so serving can "
        "fold a known user's events newer than the model into their factors",
    )


def check_blas_threads() -> bool:
    """Warn when BLAS runs its own thread pool (OpenBLAS/MKL): ALS can be ~10x slower then.

    Returns True when the configuration is fine. Mirrors ``implicit.utils.check_blas_config`` but
    warns on every fit and logs, because one ignored warning at import is easy to miss.
    """
    import threadpoolctl

    ok = True
    for api in threadpoolctl.threadpool_info():
        if api.get("user_api") == "blas" and api.get("num_threads", 1) != 1:
            ok = False
            env = "MKL_NUM_THREADS" if api.get("internal_api") == "mkl" else "OPENBLAS_NUM_THREADS"
            msg = (
                f"{api.get('internal_api')} BLAS uses {api['num_threads']} threads; set {env}=1 "
                "(ALS fits can be ~10x slower with a threaded BLAS)"
            )
            log.warning(msg)
            warnings.warn(msg, RuntimeWarning, stacklevel=3)
    return ok


def cpu_model(config: ALSConfig) -> Any:
    # the concrete CPU class: implicit.als.AlternatingLeastSquares is a factory that picks the GPU
    # class when CUDA exists, and GPU factors cannot be saved or served on a CPU box.
    from implicit.cpu.als import AlternatingLeastSquares

    return AlternatingLeastSquares(
        factors=config.factors,
        regularization=config.regularization,
        alpha=config.alpha,
        iterations=config.iterations,
        use_cg=config.use_cg,
        num_threads=config.num_threads,
        random_state=config.random_state,
    )


def fit_implicit(config: ALSConfig, matrix: sp.csr_matrix) -> Any:
    """An implicit ALS model fitted on ``matrix`` (users x items); a GPU fit comes back as the CPU
    class. implicit's own fit errors become ModelFitError."""
    from implicit.recommender_base import ModelFitError as ImplicitFitError

    gpu = config.use_gpu and has_cuda()
    if config.use_gpu and not gpu:
        log.warning("use_gpu requested but implicit has no CUDA support here; fitting on CPU")
    try:
        if gpu:
            from implicit.gpu.als import AlternatingLeastSquares as GpuALS

            gpu_model = GpuALS(
                factors=config.factors,
                regularization=config.regularization,
                alpha=config.alpha,
                iterations=config.iterations,
                random_state=config.random_state,
            )
            gpu_model.fit(matrix, show_progress=config.show_progress)
            return gpu_model.to_cpu()
        model = cpu_model(config)
        model.fit(matrix, show_progress=config.show_progress)
        return model
    except ImplicitFitError as exc:
        raise ModelFitError(f"ALS fit failed: {exc}") from exc


def has_cuda() -> bool:
    try:
        import implicit.gpu

        return bool(implicit.gpu.HAS_CUDA)
    except ImportError:
        return False
