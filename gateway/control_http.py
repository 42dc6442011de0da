"""Operator endpoints on the gateway's HTTP server: ``POST /control/{meeting_id}/{action}``.

Scheduling software can start, stop, pause or resume a meeting's RTMS stream through the gateway
it already runs, without its own Zoom client. Every request must carry
``Authorization: Bearer <operator token>``; :func:`add_control_routes` refuses to mount the routes
at all without a configured token, so the endpoint is never open.

A meeting UUID containing ``/`` must be percent-encoded in the path (``%2F``); the client then
re-encodes it for Zoom per Zoom's rule. An optional JSON body ``{"participant_user_id": "..."}``
is passed on. Answers: ``200 {"meeting_id", "action", "status": "ok"}``, or
``{"error": <kind>, "message", "zoom_code"}`` with 404 (meeting not live), 409 (host not present),
403 (app not permitted), 429 + ``Retry-After`` (rate limited), 502 (token/credentials rejected or
other Zoom failures), 400 (unknown action or bad body), 401 (missing or wrong operator token).
"""

from __future__ import annotations

import hmac
import logging
import math
from typing import Any, Protocol

import orjson
from aiohttp import web

from .control import ACTIONS
from .errors import (
    AppNotPermitted,
    ConfigError,
    ControlError,
    CredentialsRejected,
    HostNotPresent,
    MeetingNotLive,
    RateLimited,
    TokenRejected,
)

log = logging.getLogger("gateway.control")

#: error class -> (HTTP status for the operator, short kind); first isinstance match wins.
OPERATOR_ANSWERS: tuple[tuple[type[ControlError], int, str], ...] = (
    (MeetingNotLive, 404, "meeting_not_live"),
    (HostNotPresent, 409, "host_not_present"),
    (AppNotPermitted, 403, "app_not_permitted"),
    (RateLimited, 429, "rate_limited"),
    (TokenRejected, 502, "token_rejected"),
    (CredentialsRejected, 502, "credentials_rejected"),
    (ControlError, 502, "zoom_error"),
)

_MAX_BODY = 4096


class StatusSetter(Protocol):
    """What the routes need: :class:`gateway.control.RtmsControlClient` or a test double."""

    async def set_status(self, meeting_id: str | int, action: Any, *, participant_user_id: str | None = None) -> None: ...


def _reveal(token: object) -> str:
    reveal = getattr(token, "reveal", None)
    return str(reveal() if callable(reveal) else token)


def add_control_routes(app: web.Application, client: StatusSetter, operator_token: str | None, *, prefix: str = "/control") -> None:
    """Mount ``POST {prefix}/{meeting_id}/{action}`` behind ``operator_token``; refuse without one."""
    secret = _reveal(operator_token) if operator_token else ""
    if not secret.strip():
        raise ConfigError("control routes need an operator token; refusing to expose start/stop/pause/resume without one")
    expected = f"Bearer {secret}".encode()

    def unauthorized(reason: str) -> web.Response:
        return web.json_response(
            {"error": "unauthorized", "message": reason},
            status=401,
            headers={"WWW-Authenticate": 'Bearer realm="gateway-control"'},
        )

    async def handle(request: web.Request) -> web.Response:
        given = request.headers.get("Authorization", "")
        if not given:
            return unauthorized("operator token required")
        if not hmac.compare_digest(given.encode(), expected):
            log.warning("control request with a wrong operator token from %s", request.remote)
            return unauthorized("wrong operator token")
        meeting_id = request.match_info["meeting_id"]
        action = request.match_info["action"]
        if action not in ACTIONS:
            return web.json_response({"error": "bad_action", "message": f"action must be one of {', '.join(ACTIONS)}"}, status=400)
        participant: str | None = None
        if request.can_read_body:
            raw = await request.content.read(_MAX_BODY + 1)
            if len(raw) > _MAX_BODY:
                return web.json_response({"error": "bad_body", "message": "body too large"}, status=400)
            if raw.strip():
                try:
                    doc = orjson.loads(raw)
                except orjson.JSONDecodeError:
                    doc = None
                if not isinstance(doc, dict) or not isinstance(doc.get("participant_user_id", ""), str):
                    return web.json_response({"error": "bad_body", "message": 'body must be {"participant_user_id": "..."} or empty'}, status=400)
                participant = doc.get("participant_user_id") or None
        try:
            await client.set_status(meeting_id, action, participant_user_id=participant)
        except ControlError as exc:
            status, kind = next((st, k) for cls, st, k in OPERATOR_ANSWERS if isinstance(exc, cls))
            headers = {"Retry-After": str(math.ceil(exc.retry_after))} if isinstance(exc, RateLimited) else None
            log.warning("control %s for meeting %s failed: %s", action, meeting_id, exc)
            return web.json_response({"error": kind, "message": str(exc), "zoom_code": exc.code}, status=status, headers=headers)
        except ConfigError as exc:  # e.g. an empty meeting id
            return web.json_response({"error": "bad_request", "message": str(exc)}, status=400)
        log.info("control %s for meeting %s done", action, meeting_id)
        return web.json_response({"meeting_id": meeting_id, "action": action, "status": "ok"})

    app.router.add_post(prefix.rstrip("/") + "/{meeting_id}/{action}", handle)
