"""Request and response models of the HTTP API. Constraints live here so that bad input is refused
with a 4xx body naming the field before any work is done."""

from __future__ import annotations

from datetime import UTC, datetime
from types import UnionType
from typing import Annotated, Any, ClassVar, Literal, Union, get_args, get_origin

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    ValidationInfo,
    field_validator,
    model_validator,
)

from features.data_model import EVENT_TYPES, EVENTS_NEEDING_COMMUNITY, EVENTS_NEEDING_PRODUCT

Id = Field(ge=0, le=2**63 - 1)
# List items get the same bounds: an id beyond int64 overflowed numpy in the pipeline (a 500).
IdItem = Annotated[int, Field(ge=0, le=2**63 - 1)]


EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _in_utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError("must carry a timezone (UTC), e.g. 2026-01-01T12:00:00Z")
    try:
        value = value.astimezone(UTC)
    except OverflowError:  # 9999-12-31T23:00-14:00 is in year 10000 in UTC
        raise ValueError("out of range once converted to UTC") from None
    if value < EPOCH:
        raise ValueError("lies before 1970-01-01T00:00:00Z: not a time anything was logged or served")
    return value


# A point in time with its zone, held in UTC: refused (naming the field) when naive, beyond the
# calendar in UTC (no later conversion can fail on it) or before 1970. How far ahead of the clock
# it may lie is the service's setting (ServingSettings.max_clock_skew_s, checked in the runtime).
UtcTime = Annotated[datetime, AfterValidator(_in_utc)]


def _is_number(annotation: Any) -> bool:
    """int or float, also optional, annotated (bounds) or as a list's items."""
    if annotation in (int, float):
        return True
    origin, args = get_origin(annotation), get_args(annotation)
    if origin is Annotated:
        return _is_number(args[0])
    if origin in (Union, UnionType):
        return any(_is_number(a) for a in args if a is not type(None))
    return origin is list and bool(args) and _is_number(args[0])


_NOT_NUMBERS = frozenset({str, bool})  # JSON values lax mode would read as numbers


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")
    # The fields declared as numbers (or lists of numbers), worked out once per class.
    _numbers: ClassVar[frozenset[str]] = frozenset()

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        cls._numbers = frozenset(n for n, f in cls.model_fields.items() if _is_number(f.annotation))

    @field_validator("*", mode="before")
    @classmethod
    def _numbers_are_numbers(cls, value: Any, info: ValidationInfo) -> Any:
        """Lax mode reads "42" as 42 and true/false as 1/0 for numbers ({"user_id": "42"} got user
        42's carousel): a wrong type, refused naming the field (list items included). Fields
        declared otherwise (str, bool, a time as an ISO string) take them as before. It runs per
        field of every request: type lookups in a set (a list's item types in C), and the field's
        declared kind only for a string or true/false."""
        kind = type(value)
        if (
            kind in _NOT_NUMBERS or (kind is list and not _NOT_NUMBERS.isdisjoint(map(type, value)))
        ) and info.field_name in cls._numbers:
            boolean = kind is bool or (kind is list and bool in set(map(type, value)))
            raise ValueError(f"{'true/false' if boolean else 'a string'} is not a number")
        return value


class CarouselRequest(_Strict):
    user_id: int = Field(ge=0, le=2**63 - 1)
    stream_id: int | None = Field(None, ge=0, le=2**63 - 1)
    k: int = Field(8, ge=1, le=20)
    exclude: list[IdItem] = Field(default_factory=list, max_length=1000)
    # For stream-less shops: the products to choose from (ignored when stream_id is given), each one
    # the catalogue knows (404 naming the others).
    candidates: list[IdItem] | None = Field(None, min_length=1, max_length=5000)
    context: dict[str, str] = Field(default_factory=dict, max_length=32)
    # Answer as of this time instead of now (replays, simulated worlds whose streams lie in the past):
    # decides what is on air and which purchases are recent.
    at: UtcTime | None = None


class Slot(BaseModel):
    product_id: int
    slot: int
    score: float
    p_convert: float
    expected_value: float
    reason: str


class CarouselResponse(BaseModel):
    request_id: str
    slots: list[Slot]
    model_version: str
    variant: Literal["champion", "challenger"]
    personalized: bool
    # Why the answer is not personalized (cold_start, no_consent, deleted), when it is not.
    fallback: str | None = None
    degraded: bool = False


class PushRequest(_Strict):
    """Two directions: give ``segment`` or ``community_id`` alone for its best products; add
    ``product_id`` (or ``campaign_products``) to get that audience's users ranked for it."""

    segment: str | None = Field(None, min_length=1, max_length=64)
    community_id: int | None = Field(None, ge=0, le=2**63 - 1)
    product_id: int | None = Field(None, ge=0, le=2**63 - 1)
    campaign_products: list[IdItem] | None = Field(None, min_length=1, max_length=100)
    k: int = Field(10, ge=1, le=20)
    max_users: int = Field(1000, ge=1, le=1_000_000)
    # Judge the push as of this time instead of now (replays, A/B evaluation of past campaigns,
    # simulated worlds): the products on offer, the frequency cap's window and the quiet hours are
    # taken at ``at``, and no push sent or event folded in at or after it is read.
    at: UtcTime | None = None

    @model_validator(mode="after")
    def _one_audience(self) -> PushRequest:
        if (self.segment is None) == (self.community_id is None):
            raise ValueError("give exactly one of segment or community_id")
        if self.product_id is not None and self.campaign_products is not None:
            raise ValueError("give product_id or campaign_products, not both")
        return self


class PushProduct(BaseModel):
    product_id: int
    p_convert: float
    expected_value: float


class PushAudience(BaseModel):
    """The ranked audience, column-wise (row i of every list is one user): an audience can be a
    million users, and columns cost a fraction of a million small objects to build and send."""

    user_id: list[int] = Field(default_factory=list)
    product_id: list[int] = Field(default_factory=list)
    p_convert: list[float] = Field(default_factory=list)
    expected_value: list[float] = Field(default_factory=list)
    # False: the user has no personalization consent (the users table's, or withdrawn since);
    # ranked as the audience's average consenting member, their own profile not read. A user with
    # it whom the model has no score for (not held, nothing folded in) gets the bundle's cold rate.
    personalized: list[bool] = Field(default_factory=list)


class PushResponse(BaseModel):
    request_id: str
    direction: Literal["products", "users"]
    products: list[PushProduct] = Field(default_factory=list)
    users: PushAudience = Field(default_factory=PushAudience)
    # The users the push may target (either direction): the audience's members less the suppressed.
    audience_size: int
    # How many users each rule removed: no_consent, deleted, no_personalization (a segment's),
    # frequency_cap (serving/push_targets.py).
    suppressed: dict[str, int] = Field(default_factory=dict)
    # Set when the request (its ``at``, for a replay: then possibly in the past) falls in quiet hours.
    send_after: datetime | None = None
    model_version: str
    variant: Literal["champion", "challenger"] = "champion"


class Event(_Strict):
    event_id: int | None = Field(None, ge=0, le=2**63 - 1)
    ts: UtcTime | None = None
    user_id: int = Field(ge=0, le=2**63 - 1)
    type: Literal[EVENT_TYPES]  # type: ignore[valid-type]
    product_id: int | None = Field(None, ge=0, le=2**63 - 1)
    stream_id: int | None = Field(None, ge=0, le=2**63 - 1)
    community_id: int | None = Field(None, ge=0, le=2**63 - 1)
    watch_seconds: float | None = Field(None, ge=0, le=86_400 * 7)
    amount: float | None = Field(None, ge=0, le=1e9)

    @model_validator(mode="after")
    def _needs(self) -> Event:
        if self.type in EVENTS_NEEDING_PRODUCT and self.product_id is None:
            raise ValueError(f"product_id is required for {self.type} events")
        if self.type in EVENTS_NEEDING_COMMUNITY and self.community_id is None:
            raise ValueError(f"community_id is required for {self.type} events")
        return self


class EventsRequest(_Strict):
    events: list[Event] = Field(min_length=1, max_length=10_000)


class EventsResponse(BaseModel):
    accepted: int
    # False when the events are safely logged but the online store did not take their live totals:
    # they wait and are added later (serving/live_pending.py).
    online: bool


class ConsentRequest(_Strict):
    """A user's consent as changed in the brand's app; a flag left out keeps what was in force."""

    personalization: StrictBool | None = None
    marketing: StrictBool | None = None

    @model_validator(mode="after")
    def _something(self) -> ConsentRequest:
        if self.personalization is None and self.marketing is None:
            raise ValueError("give personalization, marketing or both (true or false)")
        return self


class ConsentResponse(BaseModel):
    user_id: int
    personalization: bool  # in force from now on, in every worker within a second
    marketing: bool


class DeleteUsersRequest(_Strict):
    user_ids: list[IdItem] = Field(min_length=1, max_length=10_000)


class DeleteUsersResponse(BaseModel):
    deleted: list[int]  # recorded in the ledger, their online rows removed (or left to the next build)
    unknown: list[int]  # serving holds nothing about them: nothing recorded (DELETE /users/{id}: 404)


class StockItem(_Strict):
    product_id: int = Field(ge=0, le=2**63 - 1)
    stock: int = Field(ge=0, le=2**63 - 1)  # the level now, absolute: sent twice, it changes nothing


class StockRequest(_Strict):
    """Stock levels from the brand's inventory system; a product given twice: its last level."""

    items: list[StockItem] = Field(min_length=1, max_length=10_000)


class StockResponse(BaseModel):
    updated: int  # products whose level was set (each once), in every worker within a second


class SegmentInfo(BaseModel):
    segment: str
    users: int
    description: str


class UserSegment(BaseModel):
    user_id: int
    segment: str
    known: bool


class UserData(BaseModel):
    user_id: int
    known: bool
    deleted: bool
    profile: dict[str, Any]
    segment: str
    communities: list[int]
    # Every membership record held, in time order: {community_id, type: join | leave, ts (null:
    # a table join without a time)}; a community push replay reads them (serving/memberships.py).
    community_history: list[dict[str, Any]] = []
    recent_purchases: list[dict[str, Any]]
    recent_pushes: int
    online_features: dict[str, Any]
    # Events kept to fold in a user the model does not hold (serving/fold_in.py).
    fold_in_events: list[dict[str, Any]] = []
    # Versions of the loaded models holding factors learnt from the user (zeroed once deleted).
    model_versions: list[str] = []
    # Lines of the service's own logs about the user, per log (events, impressions, ...): they stay
    # on disk until `slotcast privacy purge` after a DELETE.
    service_logs: dict[str, int] = {}


class NoopResponse(BaseModel):
    """/noop's answer. A model, not a ``dict``: BentoML builds a JSON schema per response for a
    ``dict`` return type (~0.8 ms of CPU), which made the benchmark's "no-op" cost more than the
    carousel-shaped one."""

    x: int


class ReloadResponse(BaseModel):
    model_version: str
    challenger_version: str | None
    reloaded: bool  # the models: false when these versions were serving already
    # The catalogue (the data directory's tables) read again: false when unchanged since this
    # worker read them, or not read from a data directory (the demo world), or unreadable (then
    # ``catalogue_error`` says why and the old one keeps serving).
    catalogue_reloaded: bool = False
    catalogue_error: str | None = None


class ErrorBody(BaseModel):
    error: str
    field: str | None = None
    detail: list[dict[str, Any]] | None = None
