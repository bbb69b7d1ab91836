"""The settings the promotion gate takes from the challenger's training run, not from the process
that runs ``slotcast promote``: the gate judges the challenger on what ``train`` measured, whatever
the promoting shell's SLOTCAST_* say.

- what it learned to predict (``label``; promote has no --label) and its label window;
- its split fractions (others could move the gate's test split into its valid split);
- how its figures were measured: the metric's ``k``, the candidate pool (``candidates_n``) and
  which queries (``max_queries``, ``negative_query_ratio``, ``seed``).

Where the champion was measured with another ``k`` or candidate pool, the challenger's are used and
both are recorded in the promote run (:func:`measured_by`).
"""

from __future__ import annotations

import contextlib
import logging
from typing import Any

from training.settings import SplitConfig, TrainSettings

log = logging.getLogger(__name__)

AS_TRAINED = (
    "label",
    "label_window_hours",
    "k",
    "candidates_n",
    "max_queries",
    "negative_query_ratio",
    "seed",
)
SPLITS = ("history", "train", "valid", "test")
# Recorded for both versions in the promote run.
MEASURED = ("k", "candidates_n")


def run_params(client: Any, version: Any) -> dict[str, str] | None:
    """The params of the run that trained ``version``; None when it has none or it was deleted
    (the version is all there is: the gate then uses this process's settings)."""
    from mlflow.exceptions import MlflowException

    if version is None or not version.run_id:
        return None
    try:
        return dict(client.get_run(version.run_id).data.params)
    except MlflowException:
        return None


def as_trained(settings: TrainSettings, params: dict[str, str] | None) -> TrainSettings:
    """``settings`` with each of AS_TRAINED and the split fractions as the challenger's run logged
    them; a param the run does not have (logged before it was) keeps this process's value."""
    from pydantic import TypeAdapter, ValidationError

    if not params:
        return settings
    update: dict[str, Any] = {}
    for key in AS_TRAINED:
        raw = params.get(key)
        if raw is None:
            continue
        with contextlib.suppress(ValidationError):
            kind = TrainSettings.model_fields[key].annotation or str
            update[key] = None if raw == "None" else TypeAdapter(kind).validate_python(raw)
    with contextlib.suppress(KeyError, ValueError):
        update["split"] = SplitConfig(**{k: float(params[f"split.{k}"]) for k in SPLITS})
    changed = {k: v for k, v in update.items() if getattr(settings, k) != v}
    if changed:
        log.info("gating as the challenger was trained: %s", changed)
    return settings.model_copy(update=changed) if changed else settings


def measured_by(
    challenger: dict[str, str] | None, champion: dict[str, str] | None, champion_version: str | None
) -> dict[str, str]:
    """``challenger.k``, ``champion.k``, ... as each run logged them ("unknown": not logged; no
    champion params without a champion), for the promote run; a disagreement is logged too."""
    out = {f"challenger.{k}": (challenger or {}).get(k, "unknown") for k in MEASURED}
    if champion_version is None:
        return out
    out.update({f"champion.{k}": (champion or {}).get(k, "unknown") for k in MEASURED})
    differ = [k for k in MEASURED if "unknown" not in (out[f"challenger.{k}"], out[f"champion.{k}"])
              and out[f"challenger.{k}"] != out[f"champion.{k}"]]  # fmt: skip
    if differ:
        log.warning(
            "champion v%s was measured with %s; the gate uses the challenger's %s",
            champion_version,
            ", ".join(f"{k}={out[f'champion.{k}']}" for k in differ),
            ", ".join(f"{k}={out[f'challenger.{k}']}" for k in differ),
        )
    return out
