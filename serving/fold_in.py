"""Folding in the events users sent since the model was trained, so their next answer follows them.

A user who signed up after the last training run (or gave personalization consent again: training
keeps no profile of a user without it) is unknown to the bundle's ALS, and got popularity
(``fallback: "cold_start"``) until the next training run, however much they had clicked since.
A user the model holds kept the factors of their training history, whatever they did since.

Now the events ``POST /events`` takes (those naming a product, with a weight in the bundle's
``event_weights``: clicks, carts, purchases, push opens and clicks, likes, comments, shares, watch
time) are kept, and the user's factors are solved again with the item factors fixed
(``ALSCandidateGenerator.user_vector``, implicit's ``recalculate_user``: the least-squares step
training runs for every user): for a new user from those events alone, and their answer is then
personal (``personalized: true``, ranked) as a known user's is; for a known user from their training
row (the bundle's ``als/history.npz``) plus the events newer than it (``history.until_us``: events
the model was fitted on are not counted twice, and after a retrain the older ones drop out). Push
ranks them by the same factors (serving/push.py: ``_score_folded``; ``held`` says which of an
audience have events kept). A bundle without history (``ALSConfig.keep_history`` off, or older
than it) leaves its known users' factors as trained, and their events are not kept.

Every worker and replica sees the same events: the worker that takes one appends it to
``$STATE/serving/fold_in/<type>/<YYYYMMDD>.jsonl`` (``serving/shared_events.py``, the files
purchases and pushes are shared through) and the others read it within a second. Only users of
the catalogue with personalization consent are kept, at most ``fold_in_max_users`` of them (the
least recently active go first) with their latest ``fold_in_max_events`` events each, for
``fold_in_days``. A deleted user's events are dropped at once and their lines erased by ``slotcast
privacy purge`` (every JSON-lines file under ``$STATE/serving``). The factors are cached per user
until they send another event or a model is reloaded.
"""

from __future__ import annotations

import logging
import math
import threading
import weakref
from collections import OrderedDict
from collections.abc import Callable, Iterable
from typing import Any, Protocol

import numpy as np

from serving.shared_events import SharedEvents

log = logging.getLogger(__name__)

# Event types a bundle's event_weights may weigh (training's EventWeights), plus watch time on any
# event naming a product.
FOLD_TYPES = ("product_click", "add_to_cart", "purchase", "push_open", "push_click", "like", "comment", "share",
              "stream_view")  # fmt: skip
FOLD_FIELDS = ("event_id", "type", "user_id", "product_id", "watch_seconds", "ts_us")
WATCH_KEY = "watch_log_scale"


class FoldIns:
    """The events users sent since training, and the factors folded in from them."""

    def __init__(
        self,
        shared: SharedEvents | None,
        max_users: int = 100_000,
        max_events: int = 500,
        history_weight: float = 0.25,
        withdrawn_at: Callable[[], dict[int, float]] | None = None,
    ) -> None:
        self.shared, self.max_users, self.max_events = shared, max_users, max_events
        self.history_weight = history_weight  # a known user's training row, relative to new events
        self._lock = threading.Lock()
        # user -> event id -> (product id, type, watch seconds, ts_us); least recently active first
        self._events: OrderedDict[int, dict[int, tuple[int, str, float, int]]] = OrderedDict()
        # user -> (the ALS it was computed with, events applied when computed, the factors)
        self._vectors: dict[int, tuple[weakref.ref[Any], int, np.ndarray | None]] = {}
        self._applied: dict[int, int] = {}  # user -> events applied so far (a cached vector's age)
        self._kept: np.ndarray | None = None  # the users with events kept, sorted (None: to rebuild)
        # user -> when personalization consent was last withdrawn (epoch s): their events from
        # before it are never used again, in any worker, even once consent is given back.
        self.withdrawn_at = withdrawn_at or _no_withdrawals
        self._withdrawn_seen: dict[int, float] | None = None

    @classmethod
    def shared_under(
        cls,
        settings: Any,
        writer: str,
        deleted: Callable[[], set[int]],
        withdrawn_at: Callable[[], dict[int, float]] | None = None,
    ) -> FoldIns:
        """The store of a worker of the deployment whose state directory ``settings`` names: its
        events shared through ``$STATE/serving/fold_in`` (``writer``: this process's tag;
        ``deleted()``: users whose lines are left unread; ``withdrawn_at()``: per user, when
        personalization consent was last withdrawn, their events before it left unused)."""
        shared = SharedEvents(
            settings.serving_dir / "fold_in", writer, dict.fromkeys(FOLD_TYPES, settings.fold_in_days),
            np.empty(0, np.int64), deleted, types=FOLD_TYPES, fields=FOLD_FIELDS,
        )  # fmt: skip
        return cls(
            shared, settings.fold_in_max_users, settings.fold_in_max_events, settings.fold_in_history_weight,
            withdrawn_at,
        )  # fmt: skip

    def take(self, events: Iterable[dict[str, Any]], wanted: Callable[[int], bool]) -> int:
        """This worker's accepted events: those of users ``wanted`` says yes to (not held by the
        models, consenting) are kept and shared with the other workers. Returns how many."""
        decided: dict[int, bool] = {}  # asked once per user of the batch

        def keep(user: int) -> bool:
            if user not in decided:
                decided[user] = wanted(user)
            return decided[user]

        mine = [e for e in events if _foldable(e) and keep(int(e["user_id"]))]
        if not mine:
            return 0
        if self.shared is not None:
            try:
                self.shared.record(mine)
            except OSError as exc:  # they are in the event log; this worker folds them in at least
                log.warning("events to fold in kept in this worker only: %s", exc)
        self._apply(mine)
        return len(mine)

    def sync(self) -> None:
        """Take in the events other workers kept (at most once a second), and let go of those sent
        before a consent withdrawal another worker received."""
        if self.shared is not None:
            self.shared.sync(self._apply)
        withdrawn = self.withdrawn_at()
        if withdrawn is self._withdrawn_seen:
            return
        with self._lock:
            for user, at in withdrawn.items():
                held = self._events.get(user)
                if held is None:
                    continue
                for key in [k for k, r in held.items() if r[3] <= at * 1e6]:
                    del held[key]
                self._vectors.pop(user, None)  # computed with them
                if not held:
                    self._kept = None
                    del self._events[user]
                    self._applied.pop(user, None)
            self._withdrawn_seen = withdrawn

    def _apply(self, events: list[dict[str, Any]]) -> None:
        withdrawn = self.withdrawn_at()
        with self._lock:
            for e in events:
                if not _foldable(e):
                    continue
                user = int(e["user_id"])
                if user in withdrawn and _number(e.get("ts_us")) <= withdrawn[user] * 1e6:
                    continue  # sent before the user withdrew consent
                if user not in self._events:
                    self._kept = None
                held = self._events.setdefault(user, {})
                self._events.move_to_end(user)
                n = self._applied[user] = self._applied.get(user, 0) + 1
                key = int(e.get("event_id") or -n)
                if key not in held and len(held) >= self.max_events:
                    del held[next(iter(held))]  # the oldest: a user's latest events say the most
                held[key] = (
                    int(e["product_id"]),
                    str(e["type"]),
                    _number(e.get("watch_seconds")),
                    int(_number(e.get("ts_us"))),
                )
            while len(self._events) > self.max_users:
                self._kept = None
                gone, _ = self._events.popitem(last=False)
                self._vectors.pop(gone, None)
                self._applied.pop(gone, None)

    def drop(self, user_ids: Iterable[int]) -> None:
        """Forget these users' events and factors (a deletion, a consent withdrawn)."""
        with self._lock:
            self._kept = None
            for u in user_ids:
                self._events.pop(int(u), None)
                self._vectors.pop(int(u), None)
                self._applied.pop(int(u), None)

    def drop_vectors(self, user_ids: Iterable[int] | None = None) -> None:
        """Forget the cached factors of these users (of everyone: None), so they are computed
        again, e.g. after ``history_weight`` changed."""
        with self._lock:
            if user_ids is None:
                self._vectors.clear()
            for u in user_ids or ():
                self._vectors.pop(int(u), None)

    def events_of(self, user_id: int) -> list[dict[str, Any]]:
        """The events kept for this user (what ``GET /users/{id}/data`` shows of them)."""
        self.sync()
        with self._lock:
            held = list(self._events.get(int(user_id), {}).values())
        return [{"product_id": p, "type": t, "watch_seconds": w or None} for p, t, w, _ in held]

    def held(self, user_ids: np.ndarray) -> np.ndarray:
        """Per user, whether events are kept to fold them in: one ``isin`` for a push audience of any
        size, before ``vectors`` is asked for those few."""
        self.sync()
        with self._lock:
            if self._kept is None:  # rebuilt only when the set of users changed
                self._kept = np.sort(np.fromiter(self._events.keys(), np.int64, len(self._events)))
            kept = self._kept
        users = np.asarray(user_ids, np.int64)
        if not kept.size:
            return np.zeros(users.shape, bool)
        at = np.searchsorted(kept, users)
        return kept[np.minimum(at, kept.size - 1)] == users

    def vector(self, als: Any, weights: dict[str, float] | None, user_id: int) -> np.ndarray | None:
        """The user's factors with their kept events folded in (``als.user_vector``: for a user
        ``als`` holds, their training row plus the events newer than it), with the bundle's
        ``weights``; None when there is nothing to fold in: no events kept, none newer than the
        model, none with a weight or naming a product it knows, a known user and a model without
        history, or a bundle that does not say its weights."""
        return self.vectors(als, weights, np.asarray([user_id], np.int64))[0]

    def vectors(
        self, als: Any, weights: dict[str, float] | None, user_ids: np.ndarray, before_us: int | None = None
    ) -> list[np.ndarray | None]:
        """``vector`` for many users: those not cached are solved in one ``als.user_vectors`` call.
        ``before_us``: only the events strictly before it (an answer ``at`` a past moment, a replay,
        must not follow what the user did after it); factors so cut are not cached."""
        out: list[np.ndarray | None] = [None] * len(user_ids)
        if not weights or not hasattr(als, "user_vectors"):
            return out
        self.sync()
        todo: list[tuple[int, int, int | None, list[tuple[int, str, float, int]]]] = []
        with self._lock:
            for i, u in enumerate(np.asarray(user_ids, np.int64).tolist()):
                held = self._events.get(u)
                if not held:
                    continue
                if before_us is not None and any(r[3] >= before_us for r in held.values()):
                    rows = [r for r in held.values() if r[3] < before_us]
                    if rows:  # none before it: nothing to fold in, as for a user without events
                        todo.append((i, u, None, rows))
                    continue
                cached, applied = self._vectors.get(u), self._applied.get(u, 0)
                if cached is not None and cached[0]() is als and cached[1] == applied:
                    out[i] = cached[2]
                else:
                    todo.append((i, u, applied, list(held.values())))
        if not todo:
            return out
        history = getattr(als, "history", None)
        until = None if history is None else history.until_us
        entries = []
        for _, u, _, rows in todo:
            if until is not None and als.users.index_of(u) >= 0:
                rows = [r for r in rows if r[3] >= until]  # the model saw the older ones
            conf = confidences([r[1] for r in rows], np.array([r[2] for r in rows], float), weights)
            keep = conf > 0
            products = np.fromiter((r[0] for r in rows), np.int64, len(rows))
            # no event with a weight: nothing to fold in (not the training row alone)
            entries.append((products[keep], conf[keep], u) if keep.any() else (products[:0], conf[:0], None))
        vecs = als.user_vectors(entries, history_weight=self.history_weight)
        with self._lock:
            for (i, u, count, _), vec in zip(todo, vecs, strict=True):
                out[i] = vec
                if u in self._events and count is not None:  # None: cut at before_us, not cached
                    self._vectors[u] = (weakref.ref(als), count, vec)
        return out


_NO_WITHDRAWALS: dict[int, float] = {}


class UserVectors(Protocol):
    """``FoldIns.vectors`` as the app hands it to the pipeline: (models, users[, before_us])."""

    def __call__(
        self, models: Any, user_ids: np.ndarray, before_us: int | None = None
    ) -> list[np.ndarray | None]: ...


def _no_withdrawals() -> dict[int, float]:
    return _NO_WITHDRAWALS


def foldable(catalog: Any, models: tuple[Any, Any] | None, deleted: bool, user_id: int) -> bool:
    """Whether to keep a user's events to fold in: a user of the catalogue with personalization
    consent, not deleted, whom some loaded model (champion, challenger) can fold them into: one
    that does not hold the user, or holds them and kept their history."""
    if models is None or deleted or not catalog.knows_user(user_id) or not catalog.consent(user_id)[0]:
        return False
    return any(m is not None and _can_fold(m.als, user_id) for m in models)


def _can_fold(als: Any, user_id: int) -> bool:
    users = getattr(als, "users", None)
    held = users is not None and users.index([user_id])[0] >= 0
    return not held or getattr(als, "history", None) is not None


def confidences(types: list[str], watch_seconds: np.ndarray, weights: dict[str, float]) -> np.ndarray:
    """Per event: the type's weight plus ``watch_log_scale * log1p(minutes)``, as training's
    ``event_confidence`` (without its time decay: these events are all newer than the model, and
    the history rows they are added to were decayed to the model's time)."""
    w = np.array([float(weights.get(t, 0.0)) if t != WATCH_KEY else 0.0 for t in types], float)
    scale = float(weights.get(WATCH_KEY, 0.0))
    if scale:
        w = w + scale * np.log1p(np.clip(np.nan_to_num(watch_seconds), 0.0, None) / 60.0)
    return w


def _foldable(e: dict[str, Any]) -> bool:
    return e.get("type") in FOLD_TYPES and e.get("product_id") is not None and e.get("user_id") is not None


def _number(value: Any) -> float:
    try:
        x = float(value)
    except (TypeError, ValueError):
        return 0.0
    return x if math.isfinite(x) else 0.0
