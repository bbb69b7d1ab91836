"""An ASGI guard in front of the whole service: paths with control characters get a JSON 400.

No route can match such a path (Starlette's patterns stop at a newline), so without this BentoML's
router would answer with a plain-text 404, breaking the rule that every 4xx is JSON with a reason.
"""

from __future__ import annotations

import json
from typing import Any

_BODY = json.dumps({"error": "invalid path: control characters are not allowed", "field": "path"}).encode()


class ControlCharacterPathGuard:
    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        path = scope.get("path", "") if scope.get("type") == "http" else ""
        if any(ord(c) < 32 or ord(c) == 127 for c in path):
            headers = [(b"content-type", b"application/json"), (b"content-length", str(len(_BODY)).encode())]
            await send({"type": "http.response.start", "status": 400, "headers": headers})
            await send({"type": "http.response.body", "body": _BODY})
            return
        await self.app(scope, receive, send)
