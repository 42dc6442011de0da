"""Start, stop, pause and resume RTMS from our side: Zoom's REST API client (issue 9).

One endpoint matters: ``PATCH {api_base}/live_meetings/{meetingId}/rtms_app/status`` with the JSON
body ``{"action": "start"|"stop"|"pause"|"resume", "settings": {"client_id": <RTMS app client id>,
"participant_user_id": <optional>}}``; success is ``204 No Content`` (PROTOCOL.md 2.10; Zoom Phone's
``/phone/calls/{callId}/rtms_app/status`` variant, 9.4, takes the same body and is reachable through
:meth:`RtmsControlClient.set_status` with ``resource="phone/calls"``).

Authentication is Zoom's server-to-server OAuth (account credentials grant):
``POST {oauth_url}?grant_type=account_credentials&account_id=ID`` with HTTP Basic
``client_id:client_secret`` answers ``{"access_token", "token_type": "bearer", "expires_in": 3599,
"scope"}``. The token is cached and renewed ``refresh_margin_s`` before it expires, measured on an
injectable monotonic clock so tests never sleep; concurrent callers share one token request.

Zoom's error answers are JSON ``{"code": int, "message": str}``. They map to the typed errors in
:mod:`gateway.errors` through :data:`ZOOM_CODE_ERRORS`, :data:`ZOOM_MESSAGE_RULES` and
:data:`HTTP_STATUS_ERRORS`, three small tables in that order of precedence, so a mapping can be
corrected in one line when Zoom's reference becomes clearer. Retries are bounded: at most one
renewal after a rejected token and one retry after the advised delay of a 429.

UNCLEAR in Zoom's reference (as read for this module): the per-endpoint error codes for "host not
in the meeting" and "app not permitted" are not listed; Zoom reuses 3000 ("Cannot access meeting
info") for several causes, hence the message rules. Whether ``participant_user_id`` is required
differs between sources (the January 2026 changelog lets the original host's token start RTMS
without the host present; alternative hosts must be present); it is sent only when given.
Credentials never reach logs: :class:`ControlCredentials` hides them in ``repr`` and nothing here
logs a URL carrying the account id or a header.
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import os
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any
from urllib.parse import quote

import aiohttp
import orjson
from yarl import URL

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

DEFAULT_API_BASE = "https://api.zoom.us/v2"
DEFAULT_OAUTH_URL = "https://zoom.us/oauth/token"

#: Environment names for the server-to-server OAuth app (not the RTMS app's own credentials).
ENV_ACCOUNT_ID = "ZM_ACCOUNT_ID"
ENV_API_CLIENT_ID = "ZM_API_CLIENT_ID"
ENV_API_CLIENT_SECRET = "ZM_API_CLIENT_SECRET"
#: The RTMS app's client id (``settings.client_id``): the official SDK's name, shared with gateway.config.
ENV_RTMS_CLIENT_ID = "ZM_RTMS_CLIENT"

#: Used when a 429 carries no usable ``Retry-After``.
DEFAULT_RETRY_AFTER_S = 1.0


class Action(StrEnum):
    """The four values of the request body's ``action``."""

    START = "start"
    STOP = "stop"
    PAUSE = "pause"
    RESUME = "resume"


ACTIONS: tuple[str, ...] = tuple(a.value for a in Action)

# ---------------------------------------------------------------------------- error mapping tables
# Precedence: code table, then message rules (for codes absent from the table), then HTTP status.

#: Zoom error code -> error class. Rows marked UNCONFIRMED are our reading, not Zoom's documentation.
ZOOM_CODE_ERRORS: dict[int, type[ControlError]] = {
    124: TokenRejected,  # "Invalid access token." / "Access token is expired." (401, Zoom-wide)
    3001: MeetingNotLive,  # "Meeting does not exist: {meetingId}." (404): unknown or no longer live
    2308: AppNotPermitted,  # PROTOCOL.md 8: start refused, app not allowed (HTTP status UNCONFIRMED)
    2310: AppNotPermitted,  # PROTOCOL.md 8: start refused, Developer Pack missing (HTTP status UNCONFIRMED)
    4700: AppNotPermitted,  # "Invalid access token, does not contain scopes: [...]" (400): the S2S app lacks the scope
    4711: AppNotPermitted,  # "Invalid access token, does not contain permissions: [...]" (UNCONFIRMED for this endpoint)
    300: ControlError,  # Zoom's generic "invalid request/field" validation code: no special meaning
    # 3000 ("Cannot access meeting info") is deliberately absent: Zoom uses it for several causes,
    # so the message decides (UNCONFIRMED which texts Zoom sends with it for this endpoint).
}

#: (pattern over the lower-cased Zoom message, error class), first match wins.
ZOOM_MESSAGE_RULES: tuple[tuple[re.Pattern[str], type[ControlError]], ...] = (
    (re.compile(r"\bhost\b[^.]*\b(not (present|in|joined|here)|absent|has not joined|left)\b"), HostNotPresent),
    (re.compile(r"\b(not (live|in progress|started)|has (ended|not started)|does not exist|not found|expired)\b"), MeetingNotLive),
    (re.compile(r"\b(not (allowed|permitted|enabled|authori[sz]ed)|no permission|scope|developer pack|disabled)\b"), AppNotPermitted),
    (re.compile(r"\baccess token\b"), TokenRejected),
)

#: HTTP status -> error class, when neither the code nor the message decided.
HTTP_STATUS_ERRORS: dict[int, type[ControlError]] = {
    401: TokenRejected,
    403: AppNotPermitted,
    404: MeetingNotLive,
    429: RateLimited,
}

_WHAT = {
    MeetingNotLive: "is not live (unknown meeting or not in progress)",
    HostNotPresent: "cannot be changed: the host is not in the meeting",
    AppNotPermitted: "cannot be changed: the RTMS app is not permitted",
    TokenRejected: "was refused: Zoom rejected the access token",
    RateLimited: "was rate limited",
}


def classify(status: int, code: int | None, message: str) -> type[ControlError]:
    """The error class for one Zoom error answer (see the three tables above; a 429 is always RateLimited)."""
    if status == 429:
        return RateLimited
    if code is not None and code in ZOOM_CODE_ERRORS:
        return ZOOM_CODE_ERRORS[code]
    text = message.lower()
    for pattern, cls in ZOOM_MESSAGE_RULES:
        if pattern.search(text):
            return cls
    return HTTP_STATUS_ERRORS.get(status, ControlError)


def parse_retry_after(value: str | None, *, now: float | None = None) -> float:
    """Seconds from a ``Retry-After`` header (delta-seconds or HTTP-date); the default when unusable."""
    if not value:
        return DEFAULT_RETRY_AFTER_S
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return DEFAULT_RETRY_AFTER_S
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def encode_meeting_id(meeting_id: str | int) -> str:
    """The path segment for a meeting id or meeting UUID, per Zoom's UUID rule.

    Numeric ids go as they are. A UUID that begins with ``/`` or contains ``//`` must be
    double-URL-encoded; any other UUID is encoded once (``+``, ``=`` and a lone ``/`` escaped).
    """
    text = str(meeting_id).strip()
    if not text:
        raise ConfigError("meeting id is empty")
    if text.isdigit():
        return text
    once = quote(text, safe="")
    if text.startswith("/") or "//" in text:
        return quote(once, safe="")
    return once


# ---------------------------------------------------------------------------- credentials


@dataclass(frozen=True, slots=True)
class ControlCredentials:
    """Server-to-server OAuth app credentials; ``repr`` shows only the client id and what is set."""

    account_id: str
    client_id: str
    client_secret: str

    def __repr__(self) -> str:
        return (
            f"ControlCredentials(account_id={'***' if self.account_id else '<unset>'}, client_id={self.client_id!r}, "
            f"client_secret={'***' if self.client_secret else '<unset>'})"
        )

    __str__ = __repr__

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: str | None) -> ControlCredentials:
        """From ``ZM_ACCOUNT_ID`` / ``ZM_API_CLIENT_ID`` / ``ZM_API_CLIENT_SECRET``; non-empty overrides win."""
        env = os.environ if env is None else env
        values = {
            "account_id": overrides.get("account_id") or env.get(ENV_ACCOUNT_ID, ""),
            "client_id": overrides.get("client_id") or env.get(ENV_API_CLIENT_ID, ""),
            "client_secret": overrides.get("client_secret") or env.get(ENV_API_CLIENT_SECRET, ""),
        }
        missing = [name for name, env_name in (("account_id", ENV_ACCOUNT_ID), ("client_id", ENV_API_CLIENT_ID), ("client_secret", ENV_API_CLIENT_SECRET)) if not values[name]]
        if missing:
            names = ", ".join(f"{m} (env {e})" for m, e in (("account_id", ENV_ACCOUNT_ID), ("client_id", ENV_API_CLIENT_ID), ("client_secret", ENV_API_CLIENT_SECRET)) if m in missing)
            raise ConfigError(f"missing server-to-server OAuth credentials: {names}")
        return cls(**values)


@dataclass(slots=True)
class _Token:
    value: str
    expires_at: float  # on the client's clock, measured from when the token was asked for
    renew_at: float  # expires_at less the refresh margin

    def __repr__(self) -> str:
        return f"_Token(***, expires_at={self.expires_at:.1f}, renew_at={self.renew_at:.1f})"


# ---------------------------------------------------------------------------- client


class RtmsControlClient:
    """Async client for the RTMS app status endpoint with a cached server-to-server OAuth token.

    ``clock`` (monotonic seconds) and ``sleep`` are injectable so token renewal and the 429 retry
    are testable without waiting. Pass ``session`` to share an :class:`aiohttp.ClientSession`
    (then this client does not close it). Use as ``async with RtmsControlClient(...) as client``.
    """

    def __init__(
        self,
        credentials: ControlCredentials,
        *,
        rtms_client_id: str,
        api_base: str = DEFAULT_API_BASE,
        oauth_url: str = DEFAULT_OAUTH_URL,
        session: aiohttp.ClientSession | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
        refresh_margin_s: float = 60.0,
        max_retry_after_s: float = 60.0,
        timeout_s: float = 15.0,
    ) -> None:
        if not rtms_client_id:
            raise ConfigError(f"the RTMS app's client id is required (settings.client_id; env {ENV_RTMS_CLIENT_ID})")
        self._credentials = credentials
        self.rtms_client_id = rtms_client_id
        self.api_base = api_base.rstrip("/")
        self.oauth_url = oauth_url
        self._session = session
        self._own_session = session is None
        self._clock = clock
        self._sleep = sleep
        self.refresh_margin_s = refresh_margin_s
        self.max_retry_after_s = max_retry_after_s
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._token: _Token | None = None
        self._token_lock = asyncio.Lock()
        #: how many times a token was requested from the OAuth endpoint (observability and tests).
        self.token_requests = 0

    def __repr__(self) -> str:
        return f"RtmsControlClient(api_base={self.api_base!r}, oauth_url={self.oauth_url!r}, credentials={self._credentials!r})"

    async def __aenter__(self) -> RtmsControlClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._own_session and self._session is not None:
            await self._session.close()
        self._session = None

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
            self._own_session = True
        return self._session

    # ------------------------------------------------------------------ public actions

    async def start(self, meeting_id: str | int, *, participant_user_id: str | None = None) -> None:
        """Start the RTMS app's stream in a live meeting (Zoom then sends ``meeting.rtms_started``)."""
        await self.set_status(meeting_id, Action.START, participant_user_id=participant_user_id)

    async def stop(self, meeting_id: str | int, *, participant_user_id: str | None = None) -> None:
        await self.set_status(meeting_id, Action.STOP, participant_user_id=participant_user_id)

    async def pause(self, meeting_id: str | int, *, participant_user_id: str | None = None) -> None:
        await self.set_status(meeting_id, Action.PAUSE, participant_user_id=participant_user_id)

    async def resume(self, meeting_id: str | int, *, participant_user_id: str | None = None) -> None:
        await self.set_status(meeting_id, Action.RESUME, participant_user_id=participant_user_id)

    async def set_status(
        self,
        meeting_id: str | int,
        action: Action | str,
        *,
        participant_user_id: str | None = None,
        resource: str = "live_meetings",
    ) -> None:
        """PATCH the RTMS app status; returns on 2xx, raises a :class:`ControlError` subclass otherwise."""
        try:
            action = Action(action)
        except ValueError:
            raise ConfigError(f"unknown action {action!r}; expected one of {', '.join(ACTIONS)}") from None
        url = URL(f"{self.api_base}/{resource}/{encode_meeting_id(meeting_id)}/rtms_app/status", encoded=True)
        settings: dict[str, str] = {"client_id": self.rtms_client_id}
        if participant_user_id:
            settings["participant_user_id"] = participant_user_id
        body = orjson.dumps({"action": action.value, "settings": settings})
        renewed = rate_retried = False
        for _attempt in range(3):  # first try, one token renewal, one rate-limit retry
            token = await self._access_token()
            status, headers, payload = await self._request(
                "PATCH", url, data=body, headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
            )
            if 200 <= status < 300:
                log.info("rtms_app %s for meeting %s accepted (HTTP %d)", action.value, meeting_id, status)
                return
            code, message = _zoom_error(payload)
            cls = classify(status, code, message)
            if cls is TokenRejected and not renewed:
                renewed = True
                self._invalidate(token)
                log.info("access token rejected for %s on meeting %s; renewing once", action.value, meeting_id)
                continue
            if status == 429 and not rate_retried:
                delay = parse_retry_after(headers.get("Retry-After"))
                if delay <= self.max_retry_after_s:
                    rate_retried = True
                    log.warning("rate limited on %s for meeting %s; retrying once in %.1f s", action.value, meeting_id, delay)
                    await self._sleep(delay)
                    continue
            raise _make_error(cls, status, code, message, headers, f"rtms_app {action.value} for meeting {meeting_id}")
        raise AssertionError("unreachable: the loop always returns or raises")  # pragma: no cover

    # ------------------------------------------------------------------ OAuth

    async def access_token(self) -> str:
        """A valid access token, renewed ahead of expiry (exposed for diagnostics; never log it)."""
        return await self._access_token()

    def _fresh(self) -> _Token | None:
        tok = self._token
        if tok is not None and self._clock() < tok.renew_at:
            return tok
        return None

    def _invalidate(self, value: str) -> None:
        if self._token is not None and self._token.value == value:
            self._token = None

    async def _access_token(self) -> str:
        tok = self._fresh()
        if tok is not None:
            return tok.value
        async with self._token_lock:  # one request for every waiter
            tok = self._fresh()
            if tok is not None:
                return tok.value
            self._token = await self._fetch_token()
            return self._token.value

    async def _fetch_token(self) -> _Token:
        creds = self._credentials
        asked_at = self._clock()
        self.token_requests += 1
        url = URL(self.oauth_url).update_query(grant_type="account_credentials", account_id=creds.account_id)
        status, headers, payload = await self._request("POST", url, headers={"Authorization": aiohttp.encode_basic_auth(creds.client_id, creds.client_secret)})
        doc = _json_object(payload)
        if status != 200:
            reason = str(doc.get("reason") or doc.get("message") or doc.get("error") or f"HTTP {status}")
            if status == 429:
                raise RateLimited(f"OAuth token request was rate limited: {reason}", retry_after=parse_retry_after(headers.get("Retry-After")), zoom_message=reason)
            if status in (400, 401, 403):
                raise CredentialsRejected(f"OAuth token request refused (HTTP {status}): {reason}", status=status, zoom_message=reason)
            raise ControlError(f"OAuth token request failed (HTTP {status}): {reason}", status=status, zoom_message=reason)
        value = doc.get("access_token")
        expires_in = doc.get("expires_in", 3599)
        if not isinstance(value, str) or not value or isinstance(expires_in, bool) or not isinstance(expires_in, int | float):
            raise ControlError("OAuth token answer lacks access_token/expires_in", status=status)
        log.info("obtained an access token valid for %d s", int(expires_in))
        # renew at margin before expiry, but never sooner than half the lifetime (short-lived tokens)
        margin = min(self.refresh_margin_s, float(expires_in) / 2)
        expires_at = asked_at + float(expires_in)
        return _Token(value, expires_at, expires_at - margin)

    # ------------------------------------------------------------------ transport

    async def _request(self, method: str, url: URL, **kwargs: Any) -> tuple[int, Mapping[str, str], bytes]:
        try:
            async with self._http().request(method, url, timeout=self._timeout, **kwargs) as resp:
                return resp.status, resp.headers, await resp.read()
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            # without the query: the OAuth URL carries the account id there
            where = url.with_query(None)
            raise ControlError(f"{method} {where} failed: {type(exc).__name__}: {exc}".replace(str(url), str(where))) from None


def _json_object(payload: bytes) -> dict[str, Any]:
    if not payload:
        return {}
    try:
        doc = orjson.loads(payload)
    except orjson.JSONDecodeError:
        return {}
    return doc if isinstance(doc, dict) else {}


def _zoom_error(payload: bytes) -> tuple[int | None, str]:
    doc = _json_object(payload)
    code = doc.get("code")
    if isinstance(code, str) and code.isdigit():
        code = int(code)
    if not isinstance(code, int) or isinstance(code, bool):
        code = None
    message = doc.get("message")
    return code, message if isinstance(message, str) else ""


def _make_error(cls: type[ControlError], status: int, code: int | None, message: str, headers: Mapping[str, str], what: str) -> ControlError:
    detail = f"HTTP {status}" + (f", Zoom code {code}" if code is not None else "") + (f": {message}" if message else "")
    text = f"{what} {_WHAT.get(cls, 'failed')} ({detail})"
    if issubclass(cls, RateLimited):
        return cls(text, retry_after=parse_retry_after(headers.get("Retry-After")), status=status, code=code, zoom_message=message)
    return cls(text, status=status, code=code, zoom_message=message)
