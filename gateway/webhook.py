"""Zoom webhook receiver: authenticate, de-replay, decode, hand off; answer within milliseconds.

Order of checks for every POST (PROTOCOL.md 1.4-1.6), first failure wins:

===================  ======  ==========================================================
check                status  reason
===================  ======  ==========================================================
body size            413     ``body_too_large`` (``server.max_body_bytes``)
signature header     401     ``missing_signature``
timestamp header     401     ``missing_timestamp``
timestamp numeric    400     ``bad_timestamp``
timestamp window     401     ``stale_timestamp`` (``server.timestamp_tolerance_s``, 300 s)
HMAC over raw body   401     ``bad_signature`` (constant-time compare)
replay               409     ``replay`` (same request id, or same signature + timestamp)
JSON                 400     ``malformed_json``
event name           400     ``unknown_event`` (Zoom never retries a 4xx, so this is safe,
                             and a mis-subscribed app shows up in metrics at once)
payload fields       400     ``invalid_payload`` (e.g. rtms_started without server_urls)
===================  ======  ==========================================================

Rejected requests get ``{"status": "rejected", "reason": ...}``, are counted in
``rtms_webhook_requests{result=<reason>}`` and never reach a session. Accepted ones are handed
to a synchronous dispatcher (the gateway app) that only decides and schedules: session work runs
in tasks after the 200 is on its way. A dispatcher may refuse with :class:`WebhookError` (for
instance 503 ``at_capacity``; Zoom retries 5xx, so a retry can still start the stream later).
Only accepted requests are remembered for replay detection, so such a retry is not a "replay".
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any

import orjson
from aiohttp import web

from . import protocol
from .errors import ParseError, ProtocolError, UnknownMessageType, WebhookError
from .metrics import GatewayMetrics
from .protocol import WebhookEvent, WebhookKind

log = logging.getLogger("gateway.webhook")

SIGNATURE_HEADER = "x-zm-signature"
TIMESTAMP_HEADER = "x-zm-request-timestamp"
REQUEST_ID_HEADER = "x-zm-request-id"

#: dispatcher: decides what an accepted event means and schedules the work; returns the action taken.
Dispatcher = Callable[[WebhookEvent], str]


class ReplayGuard:
    """Remembers accepted request keys for the timestamp window; bounded (oldest evicted first)."""

    __slots__ = ("_seen", "capacity", "window_s")

    def __init__(self, window_s: float, capacity: int = 100_000) -> None:
        self.window_s = window_s
        self.capacity = capacity
        self._seen: OrderedDict[str, float] = OrderedDict()

    def __len__(self) -> int:
        return len(self._seen)

    def seen(self, keys: tuple[str, ...], now: float) -> bool:
        self._expire(now)
        return any(key in self._seen for key in keys)

    def remember(self, keys: tuple[str, ...], now: float) -> None:
        expiry = now + 2 * self.window_s  # a timestamp may lie up to one window in the future
        for key in keys:
            self._seen[key] = expiry
            self._seen.move_to_end(key)
        while len(self._seen) > self.capacity:
            self._seen.popitem(last=False)

    def _expire(self, now: float) -> None:
        seen = self._seen
        while seen:
            key, expiry = next(iter(seen.items()))
            if expiry > now:
                break
            del seen[key]


class _RateLimitedLog:
    """At most one warning per reason per ``period_s``; the rest are summed into the next one."""

    __slots__ = ("_last", "_suppressed", "period_s")

    def __init__(self, period_s: float = 10.0) -> None:
        self.period_s = period_s
        self._last: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}

    def warning(self, reason: str, message: str, *args: Any) -> None:
        now = time.monotonic()
        last = self._last.get(reason)
        if last is not None and now - last < self.period_s:
            self._suppressed[reason] = self._suppressed.get(reason, 0) + 1
            return
        self._last[reason] = now
        extra = self._suppressed.pop(reason, 0)
        if extra:
            message += " (%d similar suppressed)"
            args = (*args, extra)
        log.warning(message, *args)


class Rejected(Exception):
    """One failed check; carries the HTTP status and the reason label."""

    def __init__(self, status: int, reason: str, detail: str) -> None:
        self.status = status
        self.reason = reason
        self.detail = detail
        super().__init__(detail)


class WebhookReceiver:
    """The webhook endpoint. :meth:`process` is the whole decision, free of HTTP for unit tests."""

    def __init__(
        self,
        secret: str,
        dispatch: Dispatcher,
        *,
        metrics: GatewayMetrics | None = None,
        tolerance_s: float = protocol.WEBHOOK_TIMESTAMP_TOLERANCE_S,
        max_body_bytes: int = 64 * 1024,
        replay_cache_size: int = 100_000,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not secret:
            raise ValueError("a webhook secret is required")
        self._secret = secret
        self._dispatch = dispatch
        self.metrics = metrics or GatewayMetrics()
        self.tolerance_s = tolerance_s
        self.max_body_bytes = max_body_bytes
        self.replays = ReplayGuard(tolerance_s, replay_cache_size)
        self._clock = clock
        self._warn = _RateLimitedLog()

    def __repr__(self) -> str:  # the secret never shows
        return f"WebhookReceiver(tolerance_s={self.tolerance_s}, max_body_bytes={self.max_body_bytes})"

    # ------------------------------------------------------------------ decision

    def _authenticate(self, headers: Mapping[str, str], body: bytes, now: float) -> tuple[str, ...]:
        signature = headers.get(SIGNATURE_HEADER)
        if not signature:
            raise Rejected(401, "missing_signature", f"no {SIGNATURE_HEADER} header")
        timestamp = headers.get(TIMESTAMP_HEADER)
        if not timestamp:
            raise Rejected(401, "missing_timestamp", f"no {TIMESTAMP_HEADER} header")
        ts_text = timestamp.strip()
        if not (ts_text.isascii() and ts_text.isdigit()) or len(ts_text) > 15:
            raise Rejected(400, "bad_timestamp", f"{TIMESTAMP_HEADER} must be decimal seconds")
        if abs(now - int(ts_text)) > self.tolerance_s:
            raise Rejected(401, "stale_timestamp", f"{TIMESTAMP_HEADER} outside the {self.tolerance_s:g} s window")
        if not protocol.verify_webhook_signature(self._secret, timestamp, body, signature):
            raise Rejected(401, "bad_signature", "signature does not match the body")
        keys = [f"s:{signature}:{ts_text}"]
        request_id = headers.get(REQUEST_ID_HEADER)
        if request_id:
            keys.append(f"r:{request_id}")
        replay_keys = tuple(keys)
        if self.replays.seen(replay_keys, now):
            raise Rejected(409, "replay", "request already processed")
        return replay_keys

    def process(self, headers: Mapping[str, str], body: bytes) -> tuple[int, dict[str, Any]]:
        """Check and dispatch one request; returns (HTTP status, JSON answer). Never raises."""
        now = self._clock()
        try:
            if len(body) > self.max_body_bytes:
                raise Rejected(413, "body_too_large", f"body over {self.max_body_bytes} bytes")
            replay_keys = self._authenticate(headers, body, now)
            try:
                event = protocol.parse_webhook(body)
            except ParseError as exc:
                raise Rejected(400, "malformed_json", str(exc)) from None
            except UnknownMessageType as exc:
                raise Rejected(400, "unknown_event", str(exc)) from None
            except ProtocolError as exc:
                raise Rejected(400, "invalid_payload", str(exc)) from None
            if event.kind is WebhookKind.URL_VALIDATION:
                assert event.plain_token is not None
                answer: dict[str, Any] = protocol.url_validation_response(self._secret, event.plain_token)
                result = "url_validation"
            else:
                try:
                    action = self._dispatch(event)
                except WebhookError as exc:
                    raise Rejected(exc.status, exc.reason, str(exc)) from None
                answer = {"status": "ok", "action": action}
                result = "accepted"
                self.metrics.webhook_events.labels(kind=event.kind.value, action=action).inc()
            self.replays.remember(replay_keys, now)
        except Rejected as rej:
            return self._rejected(rej)
        except Exception:  # a dispatcher bug: no traceback to the caller; a 500 lets Zoom retry later
            self.metrics.count_webhook("internal_error")
            log.exception("webhook dispatch failed")
            return 500, {"status": "error", "reason": "internal_error"}
        self.metrics.count_webhook(result)
        return 200, answer

    def _rejected(self, rej: Rejected) -> tuple[int, dict[str, Any]]:
        self.metrics.count_webhook(rej.reason)
        self._warn.warning(rej.reason, "webhook rejected: %d %s: %s", rej.status, rej.reason, rej.detail)
        return rej.status, {"status": "rejected", "reason": rej.reason, "detail": rej.detail}

    # ------------------------------------------------------------------ HTTP

    async def _read_body(self, request: web.Request) -> bytes | None:
        """The raw body, or None when it exceeds the limit (read no further than the limit)."""
        if request.content_length is not None and request.content_length > self.max_body_bytes:
            return None
        chunks = bytearray()
        while True:
            chunk = await request.content.readany()
            if not chunk:
                return bytes(chunks)
            chunks += chunk
            if len(chunks) > self.max_body_bytes:
                return None

    async def handle(self, request: web.Request) -> web.Response:
        body = await self._read_body(request)
        if body is None:
            status, answer = self._rejected(Rejected(413, "body_too_large", f"body over {self.max_body_bytes} bytes"))
        else:
            status, answer = self.process(request.headers, body)
        return web.Response(body=orjson.dumps(answer), status=status, content_type="application/json")
