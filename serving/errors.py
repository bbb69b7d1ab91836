"""Errors of the serving layer. Each carries ``http_status`` (the service maps it) and
``exit_code`` (the CLI maps it); ``field`` names the offending input when there is one."""

from __future__ import annotations


def listed(ids: list[int], at_most: int = 20) -> str:
    """``ids`` for an error message: the first ``at_most``, then how many more."""
    more = f" and {len(ids) - at_most} more" if len(ids) > at_most else ""
    return ", ".join(map(str, ids[:at_most])) + more


class ServingError(Exception):
    http_status: int = 500
    exit_code: int = 1

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field

    def body(self) -> dict[str, object]:
        out: dict[str, object] = {"error": str(self)}
        if self.field:
            out["field"] = self.field
        return out


class BadRequestError(ServingError):
    http_status = 422
    exit_code = 2


class NotFoundError(ServingError):
    http_status = 404
    exit_code = 2


class ConflictError(ServingError):
    """A well-formed request the catalogue's state refuses (a push of products none of which is in stock)."""

    http_status = 409
    exit_code = 2


class UnauthorizedError(ServingError):
    http_status = 401
    exit_code = 2


class EventLogUnavailableError(ServingError):
    """The durable event log could not be written: the events are refused, never acknowledged."""

    http_status = 503


class ModelUnavailableError(ServingError):
    """No model could be loaded (registry unreachable, no champion, incompatible bundle)."""

    http_status = 503
