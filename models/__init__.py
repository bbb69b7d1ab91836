"""slotcast's shared model layer: what training fits and serving loads.

Pure numpy/scipy/pandas/implicit/lightgbm/pydantic; imports no other slotcast package and none of
feast, bentoml, mlflow (tests/test_architecture.py checks). Heavy libraries (implicit, lightgbm)
are imported inside the functions that need them.
"""

from models.als import ALSCandidateGenerator, ALSConfig, check_blas_threads
from models.bundle import BUNDLE_FORMAT_VERSION, Bundle, Manifest, library_versions
from models.errors import (
    FeatureMismatchError,
    IncompatibleBundleError,
    ModelFitError,
    SlotcastModelError,
    UnknownEntityError,
)
from models.generator import CandidateGenerator
from models.policy import REASONS, SLATE_COLUMNS, Slate, SlotPolicy, SlotPolicyConfig
from models.popularity import PopularityModel
from models.ranker import LightGBMRanker, RankerConfig
from models.vocab import IdVocab

__all__ = [
    "BUNDLE_FORMAT_VERSION",
    "REASONS",
    "SLATE_COLUMNS",
    "ALSCandidateGenerator",
    "ALSConfig",
    "Bundle",
    "CandidateGenerator",
    "FeatureMismatchError",
    "IdVocab",
    "IncompatibleBundleError",
    "LightGBMRanker",
    "Manifest",
    "ModelFitError",
    "PopularityModel",
    "RankerConfig",
    "Slate",
    "SlotPolicy",
    "SlotPolicyConfig",
    "SlotcastModelError",
    "UnknownEntityError",
    "check_blas_threads",
    "library_versions",
]
