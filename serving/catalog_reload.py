"""The catalogue read again while serving. The catalogue is the data directory's tables (users,
products, streams and what is on air, communities, the history the rules read); a worker reads it
at its start. ``POST /admin/reload``, and the reload it announces to every other worker, also reads
it again when its tables changed since this worker read them, the way a restarted worker reads it
(serving/catalog.py), and swaps it in. Before, a running worker kept the catalogue it started with
until it was restarted: a stream a later ``features build`` scheduled was a 404, its new products
were unknown, and prices and launch times stayed as they were.

A catalogue that cannot be read keeps the old one serving (the reload says why)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from serving.catalog import Catalog, Stamp, data_stamp
from serving.settings import ServingSettings

log = logging.getLogger(__name__)


def load_catalog(settings: ServingSettings, features: Any) -> tuple[Catalog | None, Stamp, str | None]:
    """The catalogue from ``settings.data_dir``, the stamp of the tables read (taken before they are
    read: a table rewritten meanwhile reads as changed at the next reload), and why it could not be
    read (then the catalogue is None)."""
    from serving.adapters import feature_segments

    stamp = data_stamp(settings.data_dir)
    try:
        return Catalog.from_data_dir(settings.data_dir, feature_segments(features)), stamp, None
    except (OSError, KeyError, ValueError) as exc:
        error = f"cannot read the catalogue from {settings.data_dir}: {exc}"
        log.error(error)
        return None, stamp, error


class CatalogReload:
    # Provided by serving.runtime.SlotcastApp.
    settings: ServingSettings
    features: Any
    catalog: Catalog | None
    catalog_error: str | None
    recommender: Any
    # The stamp of the tables the catalogue was read from; None: not read from the data directory
    # (the demo world's, or one given to the app), so never read again.
    catalog_stamp: Stamp | None

    deleted: Any  # serving.deletions.DeletedUsers
    _attach_catalog: Callable[[Catalog], set[int]]  # what the worker adds to a catalogue it reads
    _recommender_for: Callable[[Catalog], Any]  # the carousel and push pipeline over one

    def reload_catalog(self) -> tuple[bool, str | None]:
        """Read the catalogue again when its tables changed (or none could be read before) and swap
        it in: (whether a new one is serving, why it could not be read)."""
        if self.catalog_stamp is None:
            return False, None
        if self.catalog is not None and data_stamp(self.settings.data_dir) == self.catalog_stamp:
            return False, None
        catalog, stamp, error = load_catalog(self.settings, self.features)
        if catalog is None:
            if self.catalog is None:
                self.catalog_error = error
            else:
                log.error("catalogue reload refused, the old one keeps serving")
            return False, error
        forgotten = self._attach_catalog(catalog)
        self.recommender = self._recommender_for(catalog)
        self.catalog, self.catalog_error, self.catalog_stamp = catalog, None, stamp
        # A deletion recorded while it was read made only the old catalogue forget.
        for user_id in set(self.deleted.current()) - forgotten:
            catalog.forget_purchases(user_id)
        log.info("serving the catalogue read again from %s", self.settings.data_dir)
        return True, None
