"""The Feast entry point of this feature repo: what ``feast apply`` in features/ registers.

Feast imports every non-ignored module here as a top-level module and collects the Feast objects it
finds at module level. The definitions themselves are split by kind (entities.py, sources.py,
views.py, on_demand.py, feature_services.py: factories, listed in .feastignore) and instantiated
once, here, for the state dir of the environment (SLOTCAST_STATE_DIR, default ./.slotcast), so that
each object exists exactly once. slotcast itself never imports this module.
"""

from features.definitions import build_definitions
from features.settings import FeatureSettings

_defs = build_definitions(FeatureSettings())

user = _defs.entities["user"]
product = _defs.entities["product"]
stream = _defs.entities["stream"]
category = _defs.entities["category"]

user_source = _defs.sources["user"]
product_source = _defs.sources["product"]
stream_source = _defs.sources["stream"]
user_category_source = _defs.sources["user_category"]
user_product_source = _defs.sources["user_product"]
live_session_source = _defs.sources["live_session"]
live_session_push = _defs.sources["live_push"]

user_profile = _defs.views["user_profile"]
product_stats = _defs.views["product_stats"]
stream_live = _defs.views["stream_live"]
user_category_affinity = _defs.views["user_category_affinity"]
user_product_history = _defs.views["user_product_history"]
live_session = _defs.views["live_session"]

ranker_request_features = _defs.on_demand["ranker_request_features"]

ranker_v1 = _defs.services["ranker_v1"]
serving_context_v1 = _defs.services["serving_context_v1"]
