"""Signed webhook emitter: what Zoom POSTs to an app's endpoint (PROTOCOL.md 1.4-1.6).

:func:`build_signed_request` is pure (headers and raw body, nothing sent) so tests can check the
signature independently; :class:`WebhookEmitter` POSTs with aiohttp and keeps a log of deliveries.
Forged signatures and stale timestamps exist so the client's verification can be tested.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson

from .. import protocol

log = logging.getLogger("gateway.sim.webhooks")

USER_AGENT = "Zoom Marketplace/1.0a"
CONTENT_TYPE = "application/json; charset=utf-8"


def concurrency_near_limit(limit: int = 2000, number: int = 1601, *, event_ts: int | None = None) -> dict[str, Any]:
    """``rtms.concurrency_near_limit`` body (sent periodically above 80 % of the allowance)."""
    ts = int(time.time() * 1000) if event_ts is None else event_ts
    payload = {"concurrency_limit": limit, "concurrency_number": number, "percentage": number * 100 // max(1, limit)}
    return {"event": "rtms.concurrency_near_limit", "event_ts": ts, "payload": payload}


def concurrency_limited(id_key: str, instance_id: str, number: int = 2001, *, operator_id: str = "simOperator0000000000", event_ts: int | None = None) -> dict[str, Any]:
    """``rtms.concurrency_limited`` body: no new stream starts for ``instance_id``."""
    ts = int(time.time() * 1000) if event_ts is None else event_ts
    payload = {"operator_id": operator_id, "concurrency_number": number, "id_field": {id_key: instance_id}}
    return {"event": "rtms.concurrency_limited", "event_ts": ts, "payload": payload}


def build_signed_request(
    body: Mapping[str, Any] | bytes,
    secret: str,
    *,
    timestamp_s: int | None = None,
    request_id: str | None = None,
    forge: bool = False,
    stale_s: int = 0,
) -> tuple[dict[str, str], bytes]:
    """Headers and raw body of one webhook POST, signed like Zoom signs it.

    ``forge`` signs with a wrong secret; ``stale_s`` back-dates the timestamp (and signs that
    back-dated value correctly) to exercise a client's replay window.
    """
    raw = body if isinstance(body, bytes) else orjson.dumps(body)
    ts = int(time.time()) if timestamp_s is None else int(timestamp_s)
    ts -= int(stale_s)
    key = secret + "-forged" if forge else secret
    headers = {
        "user-agent": USER_AGENT,
        "content-type": CONTENT_TYPE,
        "x-zm-request-timestamp": str(ts),
        "x-zm-signature": protocol.webhook_signature(key, ts, raw),
        "x-zm-request-id": request_id or str(uuid.uuid4()),
        "x-zm-trackingid": "sim_" + uuid.uuid4().hex[:16],
    }
    return headers, raw


@dataclass(slots=True)
class Delivery:
    """One POST attempt and what the endpoint answered (status -1: transport error)."""

    event: str
    headers: dict[str, str]
    body: bytes
    status: int = 0
    response: bytes = b""
    error: str | None = None


@dataclass
class WebhookEmitter:
    """POSTs signed webhooks to ``url``; ``duplicates`` > 1 delivers every webhook that many times."""

    url: str | None
    secret: str
    duplicates: int = 1
    timeout_s: float = 3.0
    deliveries: list[Delivery] = field(default_factory=list)
    _session: aiohttp.ClientSession | None = None
    _tasks: set[asyncio.Task[Any]] = field(default_factory=set)

    async def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout_s))
        return self._session

    async def post(
        self,
        body: Mapping[str, Any],
        *,
        duplicates: int | None = None,
        forge: bool = False,
        stale_s: int = 0,
    ) -> list[Delivery]:
        """Deliver ``body`` (each duplicate with its own request id, same content); returns the attempts."""
        out: list[Delivery] = []
        for _ in range(max(1, duplicates if duplicates is not None else self.duplicates)):
            headers, raw = build_signed_request(body, self.secret, forge=forge, stale_s=stale_s)
            delivery = Delivery(str(body.get("event", "")), headers, raw)
            self.deliveries.append(delivery)
            out.append(delivery)
            if not self.url:
                continue
            try:
                session = await self._client()
                async with session.post(self.url, data=raw, headers=headers) as resp:
                    delivery.status = resp.status
                    delivery.response = await resp.read()
            except (TimeoutError, aiohttp.ClientError, OSError) as exc:
                delivery.status = -1
                delivery.error = repr(exc)
                log.warning("webhook %s to %s failed: %r", delivery.event, self.url, exc)
        return out

    def post_soon(self, body: Mapping[str, Any], *, delay_s: float = 0.0, **kwargs: Any) -> asyncio.Task[list[Delivery]]:
        """Fire and forget (the media flow never waits on the app's HTTP endpoint); see :meth:`drain`.

        ``delay_s`` models a late retry (Zoom retries after 5 min; tests scale it down).
        """

        async def later() -> list[Delivery]:
            await asyncio.sleep(delay_s)
            return await self.post(body, **kwargs)

        task = asyncio.get_running_loop().create_task(later() if delay_s > 0 else self.post(body, **kwargs))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def drain(self) -> None:
        """Wait until every scheduled webhook has been delivered (or failed)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def url_validation(self, plain_token: str | None = None) -> bool:
        """Send ``endpoint.url_validation`` and check the answer's ``encryptedToken`` (PROTOCOL.md 1.5)."""
        body = protocol.build_url_validation(plain_token, event_ts=int(time.time() * 1000))
        token = body["payload"]["plainToken"]
        (delivery,) = await self.post(body, duplicates=1)
        if delivery.status not in (200, 204) or not delivery.response:
            return False
        try:
            answer = orjson.loads(delivery.response)
        except orjson.JSONDecodeError:
            return False
        expected = protocol.url_validation_response(self.secret, token)
        return isinstance(answer, dict) and answer.get("plainToken") == token and answer.get("encryptedToken") == expected["encryptedToken"]

    def events(self) -> list[str]:
        return [d.event for d in self.deliveries]

    async def close(self) -> None:
        await self.drain()
        if self._session is not None:
            await self._session.close()
            self._session = None
