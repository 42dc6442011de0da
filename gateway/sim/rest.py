"""Zoom's REST side for RTMS, simulated: the OAuth token endpoint and the RTMS app status endpoint.

:class:`ZoomRestSim` is an aiohttp application serving

* ``POST /oauth/token?grant_type=account_credentials&account_id=ID`` with HTTP Basic
  ``client_id:client_secret``: issues bearer tokens with an expiry on an injectable clock;
* ``PATCH /v2/live_meetings/{meetingId}/rtms_app/status`` (and Zoom Phone's
  ``/v2/phone/calls/{callId}/rtms_app/status``): checks the token, the body, the meeting, the host
  and the app, then asks an :class:`RtmsAppController` to start, pause, resume or stop; answers
  ``204`` or Zoom's error shape ``{"code": int, "message": str}``.

The controller is a small protocol so the REST layer is testable with a fake;
:class:`SimulatorRtmsApp` adapts the real :class:`~gateway.sim.server.Simulator`: start posts a
signed ``meeting.rtms_started`` and serves the stream, pause/resume send SESSION_STATE_UPDATE
PAUSED/RESUMED with media stopping and restarting, stop sends STREAM_STATE TERMINATED and
``meeting.rtms_stopped``.

The error codes for host-absent and not-permitted answers are the simulator's choice (Zoom's
reference does not list them for this endpoint; see :mod:`gateway.control`): they are in
:data:`ANSWERS`, one place to change.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable
from urllib.parse import unquote

import orjson
from aiohttp import web

from ..protocol import StopReason
from .server import SimStream, Simulator

log = logging.getLogger("gateway.sim.rest")

ACTIONS = ("start", "stop", "pause", "resume")
SCOPE = "meeting:update:participant_rtms_app_status meeting:read:meeting"


@dataclass(frozen=True, slots=True)
class Answer:
    """One Zoom error answer: HTTP status, Zoom code, message template (``{id}`` = meeting id)."""

    status: int
    code: int
    message: str


#: Every error the simulated status endpoint gives. UNCONFIRMED rows are our choice, not Zoom's text.
ANSWERS: dict[str, Answer] = {
    "invalid_token": Answer(401, 124, "Invalid access token."),
    "expired_token": Answer(401, 124, "Access token is expired."),
    "rate_limited": Answer(429, 429, "You have reached the maximum per-second rate limit for this API. Try again later."),
    "bad_body": Answer(400, 300, "Request Body should be a valid JSON object."),
    "bad_action": Answer(400, 300, "Invalid field: action must be one of start, stop, pause, resume."),
    "meeting_not_live": Answer(404, 3001, "Meeting does not exist: {id}."),
    "host_not_present": Answer(400, 3000, "The host is not in the meeting."),  # UNCONFIRMED code/text
    "app_not_permitted": Answer(400, 2308, "The app is not allowed to start Realtime Media Streams in this meeting."),  # UNCONFIRMED status
    "conflict": Answer(400, 300, "Invalid action for the current RTMS app status: {detail}."),  # UNCONFIRMED
}


class SimRestError(Exception):
    """Raised by a controller to answer with a Zoom error instead of 204."""

    def __init__(self, answer: Answer, **fmt: str) -> None:
        self.answer = answer
        self.fmt = fmt
        super().__init__(answer.message.format(id=fmt.get("id", ""), detail=fmt.get("detail", "")))


@runtime_checkable
class RtmsAppController(Protocol):
    """What the REST layer needs from the meetings side (the simulator core or a test fake)."""

    def meeting_state(self, meeting_id: str) -> tuple[bool, bool]:
        """``(live, host_present)`` for a numeric meeting id or meeting UUID; unknown is ``(False, False)``."""
        ...

    async def start(self, meeting_id: str) -> None: ...

    async def pause(self, meeting_id: str) -> None: ...

    async def resume(self, meeting_id: str) -> None: ...

    async def stop(self, meeting_id: str) -> None: ...


@dataclass(slots=True)
class StatusRequest:
    """One accepted call of the status endpoint, for assertions."""

    meeting_id: str
    action: str
    settings: dict[str, object]


class ZoomRestSim:
    """The simulated ``zoom.us`` OAuth endpoint and ``api.zoom.us`` RTMS app status endpoint.

    ``clock`` (seconds, monotonic) decides token expiry so tests can expire tokens without
    sleeping. ``force_rate_limit(n, retry_after)`` makes the next ``n`` status calls answer 429.
    """

    def __init__(
        self,
        controller: RtmsAppController,
        *,
        account_id: str = "sim-account-id",
        client_id: str = "sim-api-client-id",
        client_secret: str = "sim-api-client-secret",
        rtms_client_id: str = "sim-client-id",
        token_ttl_s: int = 3599,
        clock: Callable[[], float] = time.monotonic,
        require_host_present: bool = True,
        strict_uuid_encoding: bool = True,
        app_permitted: bool = True,
    ) -> None:
        self.controller = controller
        self.account_id = account_id
        self.client_id = client_id
        self._client_secret = client_secret
        self.rtms_client_id = rtms_client_id
        self.token_ttl_s = token_ttl_s
        self.clock = clock
        self.require_host_present = require_host_present
        self.strict_uuid_encoding = strict_uuid_encoding
        self.app_permitted = app_permitted
        self.tokens: dict[str, float] = {}  # live tokens -> expiry on self.clock
        self.issued_tokens: list[str] = []  # every token ever granted, for leak checks in tests
        self.requests: list[StatusRequest] = []
        self.rejected: list[tuple[int, int]] = []  # (HTTP status, Zoom code) of each error answer
        self._rate_limit_left = 0
        self._retry_after = 1
        self._runner: web.AppRunner | None = None
        self.base_url = ""
        self.app = web.Application()
        self.app.router.add_post("/oauth/token", self._oauth)
        self.app.router.add_route("PATCH", "/v2/live_meetings/{meeting_id}/rtms_app/status", self._status)
        self.app.router.add_route("PATCH", "/v2/phone/calls/{meeting_id}/rtms_app/status", self._status)

    @classmethod
    def for_simulator(cls, sim: Simulator, **kwargs: Any) -> ZoomRestSim:
        """Zoom's REST side over ``sim``; the RTMS app is the simulator's own app (its ``client_id``).

        Register meetings on ``rest.controller`` (a :class:`SimulatorRtmsApp`), then ``await rest.serve()``.
        """
        kwargs.setdefault("rtms_client_id", sim.config.client_id)
        return cls(SimulatorRtmsApp(sim), **kwargs)

    def __repr__(self) -> str:
        return f"ZoomRestSim(base_url={self.base_url!r}, client_id={self.client_id!r}, client_secret=***)"

    # ------------------------------------------------------------------ knobs

    @property
    def token_grants(self) -> int:
        return len(self.issued_tokens)

    def force_rate_limit(self, count: int = 1, retry_after: int = 1) -> None:
        """The next ``count`` status calls answer 429 with ``Retry-After: retry_after``."""
        self._rate_limit_left = count
        self._retry_after = retry_after

    def revoke_tokens(self) -> None:
        """Forget every issued token (a later call with one gets 401 code 124)."""
        self.tokens.clear()

    # ------------------------------------------------------------------ serving

    async def serve(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Listen on loopback; returns the base URL (``{base}/oauth/token``, ``{base}/v2``)."""
        self._runner = web.AppRunner(self.app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        bound = self._runner.addresses[0]
        self.base_url = f"http://{host}:{bound[1]}"
        return self.base_url

    @property
    def oauth_url(self) -> str:
        return f"{self.base_url}/oauth/token"

    @property
    def api_base(self) -> str:
        return f"{self.base_url}/v2"

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> ZoomRestSim:
        await self.serve()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # ------------------------------------------------------------------ OAuth

    def _oauth_error(self, status: int, error: str, reason: str) -> web.Response:
        # Zoom's OAuth endpoint answers {"reason", "error"} rather than {"code", "message"}.
        self.rejected.append((status, 0))
        return web.json_response({"reason": reason, "error": error}, status=status)

    async def _oauth(self, request: web.Request) -> web.Response:
        if request.query.get("grant_type") != "account_credentials":
            return self._oauth_error(400, "unsupported_grant_type", "Unsupported grant type")
        auth = request.headers.get("Authorization", "")
        client_id, secret = "", ""
        if auth.startswith("Basic "):
            try:
                client_id, _, secret = base64.b64decode(auth[6:], validate=True).decode().partition(":")
            except (binascii.Error, UnicodeDecodeError):
                client_id = secret = ""
        if not (hmac.compare_digest(client_id.encode(), self.client_id.encode()) and hmac.compare_digest(secret.encode(), self._client_secret.encode())):
            return self._oauth_error(401, "invalid_client", "Invalid client_id or client_secret")
        if request.query.get("account_id") != self.account_id:
            return self._oauth_error(400, "invalid_request", "Invalid account_id")  # UNCONFIRMED text
        token = secrets.token_urlsafe(32)
        self.tokens[token] = self.clock() + self.token_ttl_s
        self.issued_tokens.append(token)
        return web.json_response({"access_token": token, "token_type": "bearer", "expires_in": self.token_ttl_s, "scope": SCOPE})

    # ------------------------------------------------------------------ RTMS app status

    def _error(self, key: str, **fmt: str) -> web.Response:
        return self._answer(ANSWERS[key], **fmt)

    def _answer(self, answer: Answer, headers: dict[str, str] | None = None, **fmt: str) -> web.Response:
        self.rejected.append((answer.status, answer.code))
        message = answer.message.format(id=fmt.get("id", ""), detail=fmt.get("detail", ""))
        return web.json_response({"code": answer.code, "message": message}, status=answer.status, headers=headers)

    def _meeting_id(self, request: web.Request) -> str | None:
        """The path's meeting id, decoded per Zoom's UUID rule; ``None`` when wrongly encoded."""
        raw_path = request.raw_path.split("?", 1)[0]
        marker = "/calls/" if "/phone/calls/" in raw_path else "/live_meetings/"
        raw = raw_path.split(marker, 1)[1].rsplit("/rtms_app/status", 1)[0]
        once = unquote(raw)
        if once.isdigit():
            return once
        if "%" in once:  # double-encoded UUID
            return unquote(once)
        if self.strict_uuid_encoding and (once.startswith("/") or "//" in once):
            return None  # Zoom requires double encoding here; a single one gets lost on the way
        return once

    async def _status(self, request: web.Request) -> web.Response:
        auth = request.headers.get("Authorization", "")
        token = auth[7:] if auth[:7].lower() == "bearer " else ""
        expiry = self.tokens.get(token)
        if expiry is None:
            return self._error("invalid_token")
        if self.clock() >= expiry:
            return self._error("expired_token")
        if self._rate_limit_left > 0:
            self._rate_limit_left -= 1
            return self._answer(ANSWERS["rate_limited"], headers={"Retry-After": str(self._retry_after)})
        try:
            body = orjson.loads(await request.read())
        except orjson.JSONDecodeError:
            body = None
        if not isinstance(body, dict):
            return self._error("bad_body")
        action = body.get("action")
        settings = body.get("settings") or {}
        if action not in ACTIONS or not isinstance(settings, dict):
            return self._error("bad_action")
        meeting_id = self._meeting_id(request)
        shown = request.match_info.get("meeting_id", "")
        if meeting_id is None:
            return self._error("meeting_not_live", id=shown)
        if not self.app_permitted or settings.get("client_id") != self.rtms_client_id:
            return self._error("app_not_permitted")
        live, host_present = self.controller.meeting_state(meeting_id)
        if not live:
            return self._error("meeting_not_live", id=meeting_id)
        if self.require_host_present and not host_present:
            return self._error("host_not_present")
        try:
            await getattr(self.controller, action)(meeting_id)
        except SimRestError as exc:
            return self._answer(exc.answer, **exc.fmt)
        self.requests.append(StatusRequest(meeting_id, action, dict(settings)))
        log.info("rtms_app %s accepted for meeting %s", action, meeting_id)
        return web.Response(status=204)


# ---------------------------------------------------------------------------- the real simulator


@dataclass(slots=True)
class SimMeeting:
    """A meeting as Zoom's REST side sees it: ids, liveness, host presence, the app's stream."""

    meeting_id: int
    uuid: str
    live: bool = True
    host_present: bool = True
    stream: SimStream | None = None
    streams: list[SimStream] = field(default_factory=list)


class SimulatorRtmsApp:
    """:class:`RtmsAppController` over a running :class:`Simulator` (which knows streams, not meetings).

    Meetings are registered with :meth:`add_meeting`; a start creates a stream whose
    ``meeting_uuid`` is the meeting's UUID (so the signed webhook and the handshakes carry it).
    A REST stop ends the stream with ``stop_reason`` (default 2, STOP_BC_USER_TRIGGERED: the app
    user acting through the API; UNCONFIRMED which reason Zoom reports for an API stop).
    """

    def __init__(self, sim: Simulator, *, stop_reason: int = StopReason.STOP_BC_USER_TRIGGERED) -> None:
        self.sim = sim
        self.stop_reason = int(stop_reason)
        self.meetings: dict[int, SimMeeting] = {}

    def add_meeting(self, meeting_id: int | None = None, uuid: str | None = None, *, live: bool = True, host_present: bool = True) -> SimMeeting:
        mid = meeting_id if meeting_id is not None else secrets.randbelow(9 * 10**10) + 10**10
        muid = uuid or base64.b64encode(secrets.token_bytes(16)).decode()
        meeting = SimMeeting(mid, muid, live, host_present)
        self.meetings[mid] = meeting
        return meeting

    def find(self, meeting_id: str) -> SimMeeting | None:
        if meeting_id.isdigit():
            return self.meetings.get(int(meeting_id))
        return next((m for m in self.meetings.values() if m.uuid == meeting_id), None)

    def meeting_state(self, meeting_id: str) -> tuple[bool, bool]:
        m = self.find(meeting_id)
        return (m.live, m.host_present) if m is not None else (False, False)

    def _meeting(self, meeting_id: str) -> SimMeeting:
        m = self.find(meeting_id)
        if m is None:
            raise SimRestError(ANSWERS["meeting_not_live"], id=meeting_id)
        return m

    def _running(self, meeting_id: str, action: str) -> SimStream:
        m = self._meeting(meeting_id)
        if m.stream is None or m.stream.terminated:
            raise SimRestError(ANSWERS["conflict"], detail=f"cannot {action}, RTMS app is not running")
        return m.stream

    async def start(self, meeting_id: str) -> None:
        m = self._meeting(meeting_id)
        if m.stream is not None and not m.stream.terminated:
            raise SimRestError(ANSWERS["conflict"], detail="RTMS app is already running")
        m.stream = self.sim.create_stream(instance_id=m.uuid)  # posts the signed meeting.rtms_started
        m.streams.append(m.stream)

    async def pause(self, meeting_id: str) -> None:
        stream = self._running(meeting_id, "pause")
        if stream.paused:
            raise SimRestError(ANSWERS["conflict"], detail="RTMS app is already paused")
        stream.pause()

    async def resume(self, meeting_id: str) -> None:
        stream = self._running(meeting_id, "resume")
        if not stream.paused:
            raise SimRestError(ANSWERS["conflict"], detail="RTMS app is not paused")
        stream.resume()

    async def stop(self, meeting_id: str) -> None:
        stream = self._running(meeting_id, "stop")
        stream.terminate(self.stop_reason)  # msg 9 STOPPED, msg 8 TERMINATED, meeting.rtms_stopped
