"""Signed webhooks: signatures checked with ``hmac`` directly, products, profiles, CRC, forgeries."""

from __future__ import annotations

import hashlib
import hmac
import time

import orjson
import pytest

from gateway.protocol import Product
from gateway.sim import Simulator, build_signed_request
from gateway.sim.webhooks import CONTENT_TYPE, USER_AGENT, WebhookEmitter
from tests.sim.helpers import WEBHOOK_SECRET, WebhookSink, config


def independent_signature(secret: str, ts: str, body: bytes) -> str:
    return "v0=" + hmac.new(secret.encode(), b"v0:" + ts.encode() + b":" + body, hashlib.sha256).hexdigest()


def test_build_signed_request_known_answer() -> None:
    body = {"event": "meeting.rtms_started", "event_ts": 1626230691572, "payload": {"meeting_uuid": "4444AAAiAAAAAiAiAiiAii==", "rtms_stream_id": "609340fb2a7946909659956c8aa9250c"}}
    headers, raw = build_signed_request(body, "s3cret", timestamp_s=1739923528, request_id="req-1")
    assert raw == orjson.dumps(body)
    assert headers["x-zm-request-timestamp"] == "1739923528"
    assert headers["x-zm-signature"] == independent_signature("s3cret", "1739923528", raw)
    assert headers["x-zm-request-id"] == "req-1"
    assert headers["user-agent"] == USER_AGENT == "Zoom Marketplace/1.0a"
    assert headers["content-type"] == CONTENT_TYPE == "application/json; charset=utf-8"


def test_forged_and_stale_variants() -> None:
    body = b'{"event":"meeting.rtms_stopped"}'
    h, raw = build_signed_request(body, "s3cret", forge=True, timestamp_s=1000)
    assert raw == body and h["x-zm-signature"] != independent_signature("s3cret", "1000", body)
    h, _ = build_signed_request(body, "s3cret", stale_s=600, timestamp_s=5000)
    assert h["x-zm-request-timestamp"] == "4400"
    assert h["x-zm-signature"] == independent_signature("s3cret", "4400", body)  # correctly signed, just old


async def test_rtms_started_delivered_signed_and_flat() -> None:
    async with WebhookSink() as sink, Simulator(config(webhook_url=sink.url)) as sim:
        stream = sim.create_stream()
        await sim.webhooks.drain()
        (headers, raw), = sink.requests
        assert headers["x-zm-signature"] == independent_signature(WEBHOOK_SECRET, headers["x-zm-request-timestamp"], raw)
        assert abs(int(headers["x-zm-request-timestamp"]) - time.time()) < 60
        assert headers["user-agent"] == USER_AGENT and headers["content-type"] == CONTENT_TYPE and headers["x-zm-request-id"]
        body = orjson.loads(raw)
        assert body["event"] == "meeting.rtms_started" and body["event_ts"] == stream.started_ms
        payload = body["payload"]
        assert payload["meeting_uuid"] == stream.instance_id and payload["rtms_stream_id"] == stream.stream_id
        assert payload["server_urls"] == stream.signaling_url and payload["operator_id"]
        assert sim.webhooks.deliveries[0].status == 200


@pytest.mark.parametrize(
    ("product", "prefix", "id_key"),
    [
        (Product.WEBINAR, "webinar.rtms_", "webinar_uuid"),
        (Product.SESSION, "session.rtms_", "session_id"),
        (Product.CONTACT_CENTER, "contact_center.voice_rtms_", "engagement_id"),
    ],
)
async def test_product_variants(product: Product, prefix: str, id_key: str) -> None:
    async with WebhookSink() as sink, Simulator(config(webhook_url=sink.url, product=product)) as sim:
        stream = sim.create_stream()
        stream.drop_signaling()  # nobody connected: still announces the interruption
        stream.terminate(7)
        await sim.webhooks.drain()
        assert sink.events() == [prefix + "started", prefix + "interrupted", prefix + "stopped"]
        for body in sink.bodies():
            assert body["payload"][id_key] == stream.instance_id
        if product is Product.SESSION:
            assert sink.bodies()[0]["payload"]["session_key"]
        assert sink.bodies()[-1]["payload"]["stop_reason"] == 7


async def test_nested_payload_profile() -> None:
    async with WebhookSink() as sink, Simulator(config(webhook_url=sink.url, webhook_nested=True)) as sim:
        stream = sim.create_stream()
        await sim.webhooks.drain()
        payload = sink.bodies()[0]["payload"]
        assert set(payload) == {"object"} and payload["object"]["rtms_stream_id"] == stream.stream_id
        assert sim.join_payload(stream)["meeting_uuid"] == stream.instance_id


@pytest.mark.parametrize("wrong", [False, True])
async def test_url_validation_checks_encrypted_token(wrong: bool) -> None:
    async with WebhookSink(wrong_crc=wrong) as sink:
        emitter = WebhookEmitter(sink.url, WEBHOOK_SECRET)
        ok = await emitter.url_validation("qgg8vlvZRS6UYooatFL8Aw")
        await emitter.close()
        assert ok is (not wrong)
        headers, raw = sink.requests[0]
        assert orjson.loads(raw)["event"] == "endpoint.url_validation"
        assert headers["x-zm-signature"] == independent_signature(WEBHOOK_SECRET, headers["x-zm-request-timestamp"], raw)


async def test_url_validation_without_endpoint_fails() -> None:
    emitter = WebhookEmitter("http://127.0.0.1:9/nothing", WEBHOOK_SECRET, timeout_s=1.0)
    assert await emitter.url_validation() is False
    assert emitter.deliveries[0].status == -1 and emitter.deliveries[0].error
    await emitter.close()


async def test_forged_and_stale_delivery_reach_the_endpoint() -> None:
    async with WebhookSink() as sink:
        emitter = WebhookEmitter(sink.url, WEBHOOK_SECRET)
        body = {"event": "meeting.rtms_started", "event_ts": 1, "payload": {}}
        await emitter.post(body, forge=True)
        await emitter.post(body, stale_s=3600)
        await emitter.close()
        (h1, r1), (h2, r2) = sink.requests
        assert h1["x-zm-signature"] != independent_signature(WEBHOOK_SECRET, h1["x-zm-request-timestamp"], r1)
        assert h2["x-zm-signature"] == independent_signature(WEBHOOK_SECRET, h2["x-zm-request-timestamp"], r2)
        assert time.time() - int(h2["x-zm-request-timestamp"]) >= 3500

