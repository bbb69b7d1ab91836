"""The model pair the app serves, and its reload: champion (and challenger when A/B is on) loaded
and swapped in as one pair, and the catalogue read again when its tables changed
(serving/catalog_reload.py). A mixin of ``serving.runtime.SlotcastApp``, kept apart from the
endpoints.

Requests read the pair once (one attribute read), so a reload never mixes two model sets in one
answer and never fails a request in flight; a failed reload keeps the old models serving."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from serving.deletions import DeletedUsers, forget_users
from serving.errors import ModelUnavailableError
from serving.metrics import ServingMetrics
from serving.reload_signal import ReloadSignal
from serving.schemas import ReloadResponse
from serving.settings import ServingSettings
from serving.sources import Models, ModelSource, registry_versions

log = logging.getLogger(__name__)


class ModelReload:
    # Provided by serving.runtime.SlotcastApp.
    settings: ServingSettings
    model_source: ModelSource
    deleted: DeletedUsers
    metrics: ServingMetrics
    reload_signal: ReloadSignal
    _models: tuple[Models, Models | None] | None
    load_error: str | None
    _reload_lock: threading.Lock
    reload_catalog: Callable[[], tuple[bool, str | None]]  # serving/catalog_reload.py

    def _current(self) -> tuple[Models, Models | None]:
        self.reload_signal.poll()
        pair = self._models
        if pair is None:
            raise ModelUnavailableError(f"no model loaded: {self.load_error or 'not loaded yet'}")
        return pair

    def reload(self) -> ReloadResponse:
        """Load champion (and challenger when A/B is on) and swap them in as one pair; ``reloaded``
        is false when those are the versions serving already (nothing is swapped). A champion that
        cannot be loaded is a 503: the old models keep serving, or none when none was loaded."""
        with self._reload_lock:
            # The catalogue first, on its own: it is read again when its tables changed, whether or
            # not the models did (serving/catalog_reload.py).
            catalogue = dict(
                zip(("catalogue_reloaded", "catalogue_error"), self.reload_catalog(), strict=True)
            )
            serving = self._models
            held = (serving[0].version, serving[1].version if serving[1] else None) if serving else None
            if held and held == registry_versions(
                self.model_source, self.settings.model_alias, self._challenger_alias()
            ):
                # Every worker reloads on an announcement: loading a bundle of hundreds of MB to
                # find the same versions would be each one's cost, for nothing.
                log.info("already serving model %s (challenger %s)", held[0], held[1] or "none")
                return ReloadResponse(
                    model_version=held[0], challenger_version=held[1], reloaded=False, **catalogue
                )
            try:
                champion = self.model_source.load(self.settings.model_alias)
            except Exception as exc:  # noqa: BLE001 - a bad bundle must not take down what serves
                self.load_error = f"{type(exc).__name__}: {exc}"
                log.error(
                    "model reload refused, keeping %s: %s",
                    serving[0].version if serving else "nothing",
                    self.load_error,
                )
                raise ModelUnavailableError(
                    f"reload refused, the old model keeps serving: {self.load_error}"
                    if serving is not None
                    else f"no model loaded, and none can be: {self.load_error}"
                ) from exc
            challenger = None
            if self.settings.challenger_share > 0:
                try:
                    challenger = self.model_source.load(self.settings.challenger_alias)
                except Exception as exc:  # noqa: BLE001 - no challenger means everyone gets champion
                    log.warning("no challenger loaded (%s); A/B split off", exc)
            self.load_error = None
            versions = (champion.version, challenger.version if challenger else None)
            swap = serving is None or versions != (serving[0].version, serving[1] and serving[1].version)
            if swap:
                known = set(self.deleted.current())  # a copy: a deletion adds to the live set
                forget_users((champion, challenger), known)  # before any request sees them
                self._models = (champion, challenger)  # the atomic swap
                # A deletion recorded between those two lines made only the old pair forget.
                forget_users((champion, challenger), self.deleted.current() - known)
                self.metrics.set_models(*versions)
            state = "serving" if swap else "already serving"
            log.info("%s model %s (challenger %s)", state, versions[0], versions[1] or "none")
            return ReloadResponse(
                model_version=versions[0], challenger_version=versions[1], reloaded=swap, **catalogue
            )

    def _challenger_alias(self) -> str | None:
        return self.settings.challenger_alias if self.settings.challenger_share > 0 else None

    def admin_reload(self) -> ReloadResponse:
        """``POST /admin/reload``: reload here, then have every other worker sharing the state
        directory reload too (serving/reload_signal.py)."""
        out = self.reload()
        self.reload_signal.announce()
        return out
