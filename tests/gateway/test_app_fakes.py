"""Test doubles for the gateway app: a session that records what the app asked of it."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import time
from typing import Any

import orjson

from gateway import protocol
from gateway.config import Credentials, GatewayConfig, Secret, ServerConfig, SessionsConfig
from gateway.protocol import SessionState

WEBHOOK_SECRET = "whsec-test-0123456789"
CLIENT_SECRET = "client-secret-abcdef"


def make_config(**server: Any) -> GatewayConfig:
    sessions = server.pop("sessions", SessionsConfig())
    return GatewayConfig(
        server=ServerConfig(host="127.0.0.1", port=0, **server),
        credentials=Credentials("client-id-1", Secret(CLIENT_SECRET), Secret(WEBHOOK_SECRET)),
        sessions=sessions,
    )


def sign(body: bytes, ts: int | None = None, secret: str = WEBHOOK_SECRET, request_id: str | None = None) -> dict[str, str]:
    """Headers Zoom would send, signed independently of gateway.protocol."""
    ts = int(time.time()) if ts is None else ts
    mac = hmac.new(secret.encode(), b"v0:" + str(ts).encode() + b":" + body, hashlib.sha256).hexdigest()
    headers = {"x-zm-signature": "v0=" + mac, "x-zm-request-timestamp": str(ts), "content-type": "application/json"}
    if request_id is not None:
        headers["x-zm-request-id"] = request_id
    return headers


def started(stream_id: str = "s1", urls: str = "wss://rtms.example:443/sig", product: protocol.Product = protocol.Product.MEETING, event_ts: int = 1000, nested: bool = False) -> bytes:
    return orjson.dumps(
        protocol.build_webhook(product, protocol.WebhookKind.STARTED, instance_id="inst==", stream_id=stream_id, event_ts=event_ts, server_urls=urls, nested=nested)
    )


def stopped(stream_id: str = "s1", reason: int = 6, event_ts: int = 2000) -> bytes:
    return orjson.dumps(protocol.build_webhook(protocol.Product.MEETING, protocol.WebhookKind.STOPPED, instance_id="inst==", stream_id=stream_id, event_ts=event_ts, stop_reason=reason))


def interrupted(stream_id: str = "s1") -> bytes:
    return orjson.dumps(protocol.build_webhook(protocol.Product.MEETING, protocol.WebhookKind.INTERRUPTED, instance_id="inst==", stream_id=stream_id, event_ts=1500))


class FakeSession:
    """Records calls; ``fail_start`` makes start() raise like a rejected handshake would."""

    instances: list[FakeSession] = []

    def __init__(self, event: protocol.WebhookEvent, sink: Any, on_event: Any, *, fail_start: bool = False) -> None:
        self.event = event
        self.sink = sink
        self.on_event = on_event
        self.calls: list[Any] = []
        self.state = SessionState.INACTIVE
        self.fail_start = fail_start
        self._closed = asyncio.Event()
        FakeSession.instances.append(self)

    async def start(self) -> None:
        self.calls.append("start")
        if self.fail_start:
            raise ConnectionError("handshake rejected: 8 DUPLICATE_SIGNAL_REQUEST")
        self.state = SessionState.STARTED
        self.on_event({"type": "state", "state": "STARTED"})

    async def wait_closed(self) -> None:
        await self._closed.wait()

    async def close(self, request: bool = False) -> None:
        self.calls.append(("close", request))
        self.state = SessionState.STOPPED
        self._closed.set()

    async def failover(self, server_urls: str) -> None:
        self.calls.append(("failover", server_urls))

    async def interrupted(self) -> None:
        self.calls.append("interrupted")

    def stopped(self, reason: int | None) -> None:
        self.calls.append(("stopped", reason))
        self.state = SessionState.STOPPED
        self._closed.set()

    def stats(self) -> dict[str, Any]:
        return {"frames": {"audio": 50}, "bytes": {"audio": 32000}, "keepalive_lag_ms": 1, "keepalives_answered": {"signaling": 2, "media": 4}}


def fake_factory(fail_for: set[str] | None = None) -> Any:
    def make(event: protocol.WebhookEvent, sink: Any, on_event: Any) -> FakeSession:
        return FakeSession(event, sink, on_event, fail_start=event.stream_id in (fail_for or set()))

    return make


async def settle(predicate: Any, limit_s: float = 5.0) -> bool:
    """Poll ``predicate`` until true (bounded); returns its final value."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit_s
    while not predicate():
        if loop.time() > deadline:
            return False
        await asyncio.sleep(0.005)
    return True
