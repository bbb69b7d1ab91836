"""An ASGI guard in front of the whole service, for the rule that every refusal is JSON with a reason.

Three kinds of refusal never reach slotcast's own handlers:
- paths with control characters: no route can match them (Starlette's patterns stop at a newline);
  they get a JSON 400 naming the path, before routing;
- bodies declared as something other than JSON: BentoML's typed APIs would parse them anyway (any
  body as JSON, a form as the request's fields); they get a JSON 415 naming the content type. A
  body without a declared type is read as JSON, as before;
- requests BentoML's outer router refuses itself (a path no route serves, a method a typed API does
  not take): Starlette answers those in plain text ("Not Found", "Method Not Allowed"); their body
  is rewritten to ``{"error": <that text>}``, status and other headers kept.
"""

from __future__ import annotations

import json
from http import HTTPStatus
from typing import Any

_BODY = json.dumps({"error": "invalid path: control characters are not allowed", "field": "path"}).encode()
_NOT_JSON = json.dumps(
    {"error": "unsupported content type: request bodies are application/json", "field": "content-type"}
).encode()
_WITH_BODY = frozenset({"POST", "PUT", "PATCH"})
_JSON = b"application/json"
_MAX_REASON = 500  # characters of a plain-text refusal kept as its reason


def _declared_not_json(headers: list[tuple[bytes, bytes]]) -> bool:
    """A content type is declared and is not JSON (application/json, or a +json type)."""
    for k, v in headers:
        if k.lower() == b"content-type":
            media = v.split(b";", 1)[0].strip().lower()
            return not (media == _JSON or (media.startswith(b"application/") and media.endswith(b"+json")))
    return False


def _json_refusal(status: int, text: bytes) -> bytes:
    reason = text.decode("utf-8", "replace").strip()[:_MAX_REASON]
    if not reason:
        try:
            reason = HTTPStatus(status).phrase
        except ValueError:
            reason = f"HTTP {status}"
    return json.dumps({"error": reason}).encode()


async def send_json(
    send: Any, status: int, body: bytes, extra: list[tuple[bytes, bytes]] | None = None
) -> None:
    """A whole JSON answer sent from a middleware, before any app saw the request (also
    serving/token_guard.py's)."""
    headers = [(b"content-type", _JSON), (b"content-length", str(len(body)).encode()), *(extra or [])]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class JsonRefusalGuard:
    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope.get("type") != "http":
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")
        if any(ord(c) < 32 or ord(c) == 127 for c in path):
            await send_json(send, 400, _BODY)
            return
        if scope.get("method") in _WITH_BODY and _declared_not_json(scope.get("headers", [])):
            await send_json(send, 415, _NOT_JSON)
            return
        if scope.get("method") == "HEAD":  # no body to rewrite
            await self.app(scope, receive, send)
            return

        held: dict[str, Any] = {}  # a non-JSON refusal's start message, and its body so far

        async def send_json_refusals(message: dict[str, Any]) -> None:
            kind = message["type"]
            if kind == "http.response.start":
                if message["status"] >= 400:
                    ctype = next(
                        (v for k, v in message.get("headers", ()) if k.lower() == b"content-type"), b""
                    )
                    if not ctype.startswith(_JSON):
                        held["start"], held["body"] = message, b""
                        return
            elif kind == "http.response.body" and "start" in held:
                held["body"] += message.get("body", b"")
                if message.get("more_body", False):
                    return
                start = held.pop("start")
                body = _json_refusal(start["status"], held.pop("body"))
                headers = [
                    (k, v)
                    for k, v in start.get("headers", ())
                    if k.lower() not in (b"content-type", b"content-length")
                ]
                headers += [(b"content-type", _JSON), (b"content-length", str(len(body)).encode())]
                await send({**start, "headers": headers})
                await send({"type": "http.response.body", "body": body})
                return
            await send(message)

        await self.app(scope, receive, send_json_refusals)
