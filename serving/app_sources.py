"""What ``SlotcastApp.from_settings`` builds the app from, as the settings choose: the model source
(demo, a bundle directory, or the MLflow registry), the feature source (demo or Feast), the
catalogue and the deletion ledger. A catalogue that cannot be read is not raised: the app starts
not ready, saying why."""

from __future__ import annotations

import logging
from typing import Any, NamedTuple

from serving.catalog import Catalog
from serving.catalog_reload import Stamp, load_catalog
from serving.settings import ServingSettings
from serving.sources import FeatureSource, ModelSource

log = logging.getLogger(__name__)


class AppSources(NamedTuple):
    model_source: ModelSource
    features: FeatureSource
    catalog: Catalog | None
    ledger: Any
    catalog_error: str | None
    catalog_stamp: Stamp | None  # the data directory's tables read (serving/catalog_reload.py)


def app_sources(settings: ServingSettings) -> AppSources:
    from serving.adapters import (
        DirModelSource,
        MlflowModelSource,
        deletion_ledger,
        make_policy,
        mlflow_client_defaults,
    )

    policy = make_policy(settings)
    ledger = deletion_ledger(settings.state_dir)
    catalog, catalog_error = None, None
    if settings.model_source == "demo" or settings.feature_source == "demo":
        from serving.demo import DemoFeatureSource, DemoModelSource, demo_tables

        tables = demo_tables(
            settings.demo_users,
            settings.demo_products,
            settings.demo_streams,
            settings.demo_per_stream,
            seed=settings.seed,
        )
    model_source: ModelSource
    if settings.model_source == "demo":
        model_source = DemoModelSource(
            settings.demo_users,
            settings.demo_products,
            settings.epsilon,
            settings.category_cap,
            settings.seed,
            policy,
        )
        catalog = Catalog(tables)
    elif settings.model_source == "dir":
        assert settings.bundle_dir is not None
        model_source = DirModelSource(settings.bundle_dir, policy)
    else:
        applied = mlflow_client_defaults(settings)
        if applied:
            log.info(
                "MLflow client: %s (unset by the environment)",
                ", ".join(f"{k}={v}" for k, v in applied.items()),
            )
        model_source = MlflowModelSource(settings.tracking_uri(), settings.model_name, policy)
    features: FeatureSource
    if settings.feature_source == "demo":
        features = DemoFeatureSource(tables)
    else:
        from serving.adapters import FeastFeatureSource

        features = FeastFeatureSource(settings.state_dir, ledger, settings.outage_log_interval_s)
    stamp = None
    if catalog is None:
        catalog, stamp, catalog_error = load_catalog(settings, features)
    return AppSources(model_source, features, catalog, ledger, catalog_error, stamp)
