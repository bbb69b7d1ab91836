"""The knobs of the simulated world and the fixed behaviour of its latent user types.

``SimConfig`` holds what a run may change (sizes, seed, exploration); ``USER_TYPES`` holds the
behaviour that defines each latent type. Both end up in ``truth/truth.json`` so that a data
directory says how it was made.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from pydantic import BaseModel, ConfigDict, Field, model_validator

DAY_US = 86_400 * 1_000_000
HOUR_US = 3_600 * 1_000_000


@dataclass(frozen=True)
class UserType:
    """Behaviour shared by every user of one latent type (individual users vary around it)."""

    name: str
    share: float  # share of the population
    activity: float  # mean probability of a viewing session on a given day
    conversion: float  # offset on the add-to-cart and buy logits (-inf: never buys)
    price_sensitivity: float  # mean coefficient on log(price / category median price)
    churn_days: float  # mean days until the user leaves for good (inf: never)
    memberships: float  # mean number of communities joined
    push_open: float  # probability of opening a push
    repurchase: float  # probability of buying a consumable again after its cycle


NEVER = float("inf")
USER_TYPES: tuple[UserType, ...] = (
    UserType("loyal_high_value", 0.05, 0.40, 1.2, 0.3, NEVER, 2.5, 0.45, 0.70),
    UserType("potential", 0.15, 0.14, 0.2, 0.8, 400.0, 1.5, 0.25, 0.40),
    UserType("at_risk", 0.10, 0.20, 0.0, 1.0, 10.0, 1.2, 0.15, 0.25),
    UserType("sleeping", 0.35, 0.012, -0.4, 1.2, 60.0, 0.6, 0.04, 0.10),
    UserType("viewer_only", 0.20, 0.12, -NEVER, 0.0, 200.0, 1.2, 0.20, 0.0),
    UserType("new", 0.15, 0.22, -0.2, 1.0, 45.0, 0.8, 0.30, 0.30),
)
TYPE_NAMES: tuple[str, ...] = tuple(t.name for t in USER_TYPES)
NEW_TYPE = TYPE_NAMES.index("new")

CATEGORIES: tuple[str, ...] = (
    "beauty",
    "skincare",
    "fashion",
    "shoes",
    "snacks",
    "beverages",
    "home",
    "kitchen",
    "electronics",
    "baby",
    "pets",
    "fitness",
    "jewelry",
    "books",
    "toys",
    "outdoor",
)
# Categories whose products are consumed and bought again after a repurchase cycle.
CONSUMABLE_CATEGORIES = frozenset({"beauty", "skincare", "snacks", "beverages", "baby", "pets"})
COMMUNITY_KINDS: tuple[str, ...] = ("lovers", "deals")


class SimConfig(BaseModel):
    """Everything a ``slotcast data generate`` run can change; the rest is fixed model structure."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    users: int = Field(default=20_000, ge=10, description="number of users")
    products: int = Field(default=2_000, ge=20, description="number of products")
    days: int = Field(default=14, ge=1, le=366, description="days of activity to simulate")
    seed: int = Field(default=0, ge=0, description="random seed; the same seed gives identical tables")
    start: datetime = Field(default=datetime(2025, 1, 6, tzinfo=UTC), description="first simulated day (UTC)")
    categories: int = Field(default=12, ge=2, le=len(CATEGORIES))
    factors: int = Field(default=8, ge=2, le=64, description="dimension of the latent taste space")
    slots: int = Field(default=6, ge=1, le=20, description="carousel slots k shown per request")
    epsilon: float = Field(
        default=0.1, ge=0.0, le=1.0, description="carousel logging policy exploration rate"
    )
    push_epsilon: float = Field(
        default=0.2, ge=0.0, le=1.0, description="push logging policy exploration rate"
    )
    push_candidates: int = Field(default=20, ge=2, description="products a push campaign chooses among")
    push_every_days: int = Field(default=3, ge=1, description="days between two campaigns of one community")
    streams_per_category_day: int | None = Field(
        default=None, ge=1, description="live streams per category per day (default: grows with the catalog)"
    )
    segment_products: tuple[int, int] = Field(
        default=(8, 16), description="min/max products on air per segment"
    )
    hosts_per_category: int = Field(default=4, ge=1)
    streams: bool = Field(
        default=True,
        description="False: a stream-less shop (carousels on shop pages, no stream tables or ids)",
    )
    drift_share: float = Field(
        default=0.0,
        ge=0.0,
        le=1.0,
        description="share of users whose tastes are drawn afresh once during the period (taste drift)",
    )
    drift_after: float = Field(
        default=0.5,
        ge=0.0,
        lt=1.0,
        description="drift happens on a whole day after this fraction of the period (the day is drawn per user)",
    )
    chunk_users: int = Field(
        default=250_000, ge=1_000, description="users per chunk when drawing memberships"
    )

    @model_validator(mode="after")
    def _check(self) -> SimConfig:
        lo, hi = self.segment_products
        if not self.slots <= lo <= hi:
            raise ValueError(
                f"segment_products {self.segment_products}: need slots ({self.slots}) <= min <= max"
            )
        per_cat = self.products // self.categories
        if per_cat < 2 * self.slots:
            raise ValueError(
                f"products={self.products} over categories={self.categories} gives {per_cat} products per "
                f"category; need at least 2*slots={2 * self.slots} (raise --products or lower --categories)"
            )
        if self.drift_share > 0 and self.days < 2:
            raise ValueError("drift_share > 0 needs days >= 2 (tastes change on a later day than the first)")
        if self.start.tzinfo is None:
            raise ValueError("start must be timezone-aware (UTC)")
        return self

    @property
    def start_us(self) -> int:
        return int(self.start.timestamp() * 1_000_000)

    @property
    def streams_per_day(self) -> int:
        """Streams per category per day: 3, or more for big catalogs so that air time keeps up with them."""
        if self.streams_per_category_day is not None:
            return self.streams_per_category_day
        return max(3, -(-self.products // (self.categories * 60)))

    @property
    def category_names(self) -> tuple[str, ...]:
        return CATEGORIES[: self.categories]
