"""Bearer-token checks before anything reads a request's body.

The token-protected routes (the feeds, the admin and user-data routes) also check the token in their
handlers, but FastAPI validates the body before a handler runs: without this guard a caller with no
token learnt from a 422 what the body should hold (and a body that is not JSON at all was a 422
too), before being told they may not call the route. Here a request to a protected route is refused
with the handler's own 401 as soon as its headers arrive, whatever its body.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from typing import Any

from serving.asgi_guard import send_json
from serving.errors import ServingError

# check(kind of token, the Authorization header or None) raises a ServingError to refuse
Check = Callable[[str, str | None], None]
_SEGMENT = "[^/\x00-\x1f\x7f]+"


def _pattern(template: str) -> re.Pattern[str]:
    """A route's path template as a regex: each ``{name}`` is one path segment. A segment with a
    control character matches no route (serving/asgi_guard.py answers such paths 400)."""
    parts = re.split(r"(\{[^}/]+\})", template)
    return re.compile("".join(_SEGMENT if p.startswith("{") else re.escape(p) for p in parts))


class TokenGuard:
    """ASGI middleware: ``routes`` are ``(method, path template, kind)``; a request matching one is
    passed to ``check(kind, authorization header)``, which raises a ``ServingError`` to refuse it.
    A check that cannot run (``LookupError``: no service instance yet) lets the request through to
    the handler, which checks again."""

    def __init__(self, app: Any, routes: Sequence[tuple[str, str, str]], check: Check) -> None:
        self.app = app
        self.check = check
        self.routes = [(method.upper(), _pattern(path), kind) for method, path, kind in routes]
        # The routes' first path segments: every other request (/carousel ...) passes on one look-up.
        self._heads = {path[1:].partition("/")[0] for _, path, _ in routes}

    def kind(self, method: str, path: str) -> str | None:
        """The kind of token ``method path`` needs, or None for an open route."""
        if path[1:].partition("/")[0] not in self._heads:
            return None
        if method == "HEAD":
            method = "GET"
        for m, pattern, kind in self.routes:
            if m == method and pattern.fullmatch(path):
                return kind
        return None

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        kind = (
            self.kind(scope.get("method", ""), scope.get("path", "")) if scope.get("type") == "http" else None
        )
        if kind is not None:
            header = next((v for k, v in scope.get("headers", ()) if k.lower() == b"authorization"), None)
            try:
                self.check(kind, None if header is None else header.decode("latin-1"))
            except LookupError:
                pass
            except ServingError as exc:
                extra = [(b"www-authenticate", b"Bearer")] if exc.http_status == 401 else None
                await send_json(send, exc.http_status, json.dumps(exc.body()).encode(), extra)
                return
        await self.app(scope, receive, send)
