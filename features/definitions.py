"""All Feast objects of slotcast for one state directory, built by the factories of each kind."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from features.settings import FeatureSettings


@dataclass
class Definitions:
    entities: dict[str, Any]
    sources: dict[str, Any]
    views: dict[str, Any]
    on_demand: dict[str, Any]
    services: dict[str, Any]

    def objects(self) -> list[Any]:
        """Everything to pass to ``FeatureStore.apply``."""
        return [
            *self.entities.values(),
            *self.sources.values(),
            *self.views.values(),
            *self.on_demand.values(),
            *self.services.values(),
        ]


def build_definitions(settings: FeatureSettings) -> Definitions:
    from features.entities import make_entities
    from features.feature_services import make_feature_services
    from features.on_demand import make_on_demand_views
    from features.sources import make_sources
    from features.views import make_views

    entities = make_entities()
    sources = make_sources(settings.offline_dir)
    views = make_views(entities, sources)
    on_demand = make_on_demand_views(views)
    services = make_feature_services({**views, **on_demand})
    return Definitions(entities, sources, views, on_demand, services)
