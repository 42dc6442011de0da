"""Webhook receiver: every rejection gets its status, reason and count, and never reaches a session."""

from __future__ import annotations

import hashlib
import hmac
import logging
import time

import aiohttp
import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families

from gateway import protocol
from gateway.app import Gateway
from gateway.metrics import GatewayMetrics
from gateway.protocol import Product
from gateway.webhook import ReplayGuard, WebhookReceiver
from tests.gateway.test_app_fakes import (
    CLIENT_SECRET,
    WEBHOOK_SECRET,
    FakeSession,
    fake_factory,
    interrupted,
    make_config,
    settle,
    sign,
    started,
    stopped,
)


def _counter(gw: Gateway, result: str) -> float:
    value = gw.metrics.registry.get_sample_value("rtms_webhook_requests_total", {"result": result})
    return value or 0.0


@pytest.fixture
async def gw():
    FakeSession.instances.clear()
    gateway = Gateway(make_config(), session_factory=fake_factory())
    await gateway.start()
    yield gateway
    await gateway.close()


async def post(gw: Gateway, body: bytes, headers: dict[str, str]) -> tuple[int, dict]:
    async with aiohttp.ClientSession() as http, http.post(gw.webhook_url, data=body, headers=headers) as resp:
        return resp.status, orjson.loads(await resp.read())


REJECTIONS = [
    # (name, body, headers builder, status, reason)
    ("bad_signature", started(), lambda b: sign(b, secret="wrong-secret"), 401, "bad_signature"),
    ("missing_signature", started(), lambda b: {k: v for k, v in sign(b).items() if k != "x-zm-signature"}, 401, "missing_signature"),
    ("missing_timestamp", started(), lambda b: {k: v for k, v in sign(b).items() if k != "x-zm-request-timestamp"}, 401, "missing_timestamp"),
    ("non_numeric_timestamp", started(), lambda b: {**sign(b), "x-zm-request-timestamp": "yesterday"}, 400, "bad_timestamp"),
    ("superscript_timestamp", started(), lambda b: {**sign(b), "x-zm-request-timestamp": "17\u00b2"}, 400, "bad_timestamp"),
    ("negative_timestamp", started(), lambda b: {**sign(b), "x-zm-request-timestamp": "-5"}, 400, "bad_timestamp"),
    ("stale", started(), lambda b: sign(b, ts=int(time.time()) - 301), 401, "stale_timestamp"),
    ("future", started(), lambda b: sign(b, ts=int(time.time()) + 400), 401, "stale_timestamp"),
    ("malformed_json", b'{"event": "meeting.rtms_started", ', lambda b: sign(b), 400, "malformed_json"),
    ("unknown_event", b'{"event": "meeting.started", "event_ts": 1, "payload": {}}', lambda b: sign(b), 400, "unknown_event"),
    ("no_server_urls", b'{"event": "meeting.rtms_started", "event_ts": 1, "payload": {"meeting_uuid": "m", "rtms_stream_id": "s"}}', lambda b: sign(b), 400, "invalid_payload"),
    ("too_large", b'{"event": "meeting.rtms_started", "pad": "' + b"x" * 70_000 + b'"}', lambda b: sign(b), 413, "body_too_large"),
]


@pytest.mark.parametrize(("name", "body", "headers", "status", "reason"), REJECTIONS, ids=[r[0] for r in REJECTIONS])
async def test_rejections_answer_reason_count_and_start_nothing(gw: Gateway, name, body, headers, status, reason) -> None:
    code, answer = await post(gw, body, headers(body))
    assert code == status
    assert answer["status"] == "rejected"
    assert answer["reason"] == reason
    assert _counter(gw, reason) == 1
    assert gw.streams == {}
    assert FakeSession.instances == []


async def test_signature_is_over_raw_bytes_not_reserialised_json(gw: Gateway) -> None:
    body = started().replace(b",", b" ,  ")  # same JSON, different bytes: still valid if signed as sent
    code, answer = await post(gw, body, sign(body))
    assert (code, answer["action"]) == (200, "started")
    tampered = body.replace(b"s1", b"s2")
    code, answer = await post(gw, tampered, sign(body))
    assert (code, answer["reason"]) == (401, "bad_signature")


async def test_replay_same_signature_and_timestamp_rejected(gw: Gateway) -> None:
    body = started()
    headers = sign(body)
    assert (await post(gw, body, headers))[0] == 200
    code, answer = await post(gw, body, headers)
    assert (code, answer["reason"]) == (409, "replay")
    assert _counter(gw, "replay") == 1
    assert len(FakeSession.instances) == 1


async def test_replay_same_request_id_rejected(gw: Gateway) -> None:
    body = started()
    assert (await post(gw, body, sign(body, request_id="req-1")))[0] == 200
    other = stopped()
    code, answer = await post(gw, other, sign(other, ts=int(time.time()) - 1, request_id="req-1"))
    assert (code, answer["reason"]) == (409, "replay")
    assert FakeSession.instances[0].calls == ["start"]


async def test_url_validation_answer_matches_independent_hmac(gw: Gateway) -> None:
    body = orjson.dumps({"payload": {"plainToken": "qgg8vlvZRS6UYooatFL8Aw"}, "event_ts": 1654503849680, "event": "endpoint.url_validation"})
    code, answer = await post(gw, body, sign(body))
    expected = hmac.new(WEBHOOK_SECRET.encode(), b"qgg8vlvZRS6UYooatFL8Aw", hashlib.sha256).hexdigest()
    assert code == 200
    assert answer == {"plainToken": "qgg8vlvZRS6UYooatFL8Aw", "encryptedToken": expected}
    assert _counter(gw, "url_validation") == 1
    assert gw.streams == {}


async def test_url_validation_with_bad_signature_rejected(gw: Gateway) -> None:
    body = orjson.dumps(protocol.build_url_validation("tok"))
    code, answer = await post(gw, body, sign(body, secret="nope"))
    assert (code, answer["reason"]) == (401, "bad_signature")


@pytest.mark.parametrize("product", list(Product))
async def test_every_product_starts_a_session(gw: Gateway, product: Product) -> None:
    body = started(stream_id=f"st-{product.value}", product=product, nested=product is Product.WEBINAR)
    code, answer = await post(gw, body, sign(body))
    assert (code, answer["action"]) == (200, "started")
    assert await settle(lambda: FakeSession.instances and FakeSession.instances[0].calls == ["start"])
    event = FakeSession.instances[0].event
    assert event.product is product and event.instance_id == "inst=="
    assert event.instance_key == product.id_key


async def test_duplicate_started_is_deduped_and_new_urls_fail_over(gw: Gateway) -> None:
    body = started(urls="wss://a:443/x")
    assert (await post(gw, body, sign(body, request_id="r1")))[1]["action"] == "started"
    # a redelivery (new request id, new timestamp, so a new signature) is a duplicate, not a replay
    assert (await post(gw, body, sign(body, ts=int(time.time()) - 1, request_id="r2")))[1]["action"] == "duplicate"
    moved = started(urls="wss://b:443/x")
    assert (await post(gw, moved, sign(moved, request_id="r3")))[1]["action"] == "failover"
    session = FakeSession.instances[0]
    assert len(FakeSession.instances) == 1
    assert await settle(lambda: ("failover", "wss://b:443/x") in session.calls)
    assert gw.streams["s1"].duplicates == 1 and gw.streams["s1"].failovers == 1
    assert gw.metrics.registry.get_sample_value("rtms_webhook_events_total", {"kind": "started", "action": "duplicate"}) == 1
    assert gw.metrics.registry.get_sample_value("rtms_failovers_total") == 1


async def test_stopped_and_interrupted_are_routed(gw: Gateway) -> None:
    body = started()
    await post(gw, body, sign(body))
    session = FakeSession.instances[0]
    assert await settle(lambda: session.calls == ["start"])
    assert (await post(gw, interrupted(), sign(interrupted())))[1]["action"] == "interrupted"
    assert await settle(lambda: "interrupted" in session.calls)
    assert (await post(gw, stopped(reason=6), sign(stopped(reason=6))))[1]["action"] == "stopped"
    assert ("stopped", 6) in session.calls
    assert await settle(lambda: "s1" not in gw.streams)
    assert gw.metrics.registry.get_sample_value("rtms_sessions_ended_total", {"outcome": "closed"}) == 1
    # counters of the ended stream survive it
    assert gw.metrics.registry.get_sample_value("rtms_media_frames_total", {"kind": "audio"}) == 50


async def test_late_duplicate_started_after_stop_is_ignored(gw: Gateway) -> None:
    body = started(event_ts=1000)
    await post(gw, body, sign(body, request_id="a"))
    await post(gw, stopped(), sign(stopped(), request_id="b"))
    assert await settle(lambda: "s1" not in gw.streams)
    code, answer = await post(gw, body, sign(body, ts=int(time.time()) - 2, request_id="c"))
    assert (code, answer["action"]) == (200, "duplicate_ended")
    assert len(FakeSession.instances) == 1


async def test_stop_for_unknown_stream_is_acknowledged(gw: Gateway) -> None:
    code, answer = await post(gw, stopped("nope"), sign(stopped("nope")))
    assert (code, answer["action"]) == (200, "unknown_stream")


async def test_concurrency_notice_is_recorded(gw: Gateway) -> None:
    body = orjson.dumps({"event": "rtms.concurrency_near_limit", "event_ts": 1, "payload": {"concurrency_limit": 2000, "concurrency_number": 1601, "percentage": 80}})
    code, answer = await post(gw, body, sign(body))
    assert (code, answer["action"]) == (200, "noted")
    assert gw.metrics.registry.get_sample_value("rtms_account_concurrency", {"field": "concurrency_number"}) == 1601


def test_replay_guard_is_bounded_and_expires() -> None:
    guard = ReplayGuard(window_s=10, capacity=3)
    for i in range(5):
        guard.remember((f"k{i}",), now=100.0)
    assert len(guard) == 3
    assert not guard.seen(("k0",), now=100.0) and guard.seen(("k4",), now=100.0)
    assert not guard.seen(("k4",), now=121.0)
    assert len(guard) == 0


def test_process_without_http_and_secret_never_logged(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    seen = []
    receiver = WebhookReceiver(WEBHOOK_SECRET, lambda ev: seen.append(ev) or "started", metrics=GatewayMetrics())
    body = started()
    assert receiver.process(sign(body), body)[0] == 200
    for secret in ("wrong-secret", WEBHOOK_SECRET + "x"):
        status, answer = receiver.process(sign(body, secret=secret), body)
        assert (status, answer["reason"]) == (401, "bad_signature")
    assert len(seen) == 1
    text = caplog.text + repr(receiver)
    assert WEBHOOK_SECRET not in text and CLIENT_SECRET not in text


async def test_metrics_parse_as_prometheus_text_and_hold_no_secrets(gw: Gateway) -> None:
    body = started()
    await post(gw, body, sign(body))
    await post(gw, body, sign(body, secret="bad"))
    async with aiohttp.ClientSession() as http:
        async with http.get(gw.base_url + "/metrics") as resp:
            assert resp.status == 200
            text = await resp.text()
        async with http.get(gw.base_url + "/streams") as resp:
            streams = await resp.json()
        async with http.get(gw.base_url + "/healthz") as resp:
            assert (await resp.json())["status"] == "ok"
    families = {f.name: f for f in text_string_to_metric_families(text)}
    for name in ("rtms_webhook_requests", "rtms_sessions_active", "rtms_media_frames", "rtms_media_bytes", "rtms_media_drops",
                 "rtms_media_gaps", "rtms_parse_errors", "rtms_reconnects", "rtms_keepalive_lag_seconds",
                 "rtms_shm_participant_rings_ratio", "rtms_media_delay_seconds"):
        assert name in families, name
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value for f in families.values() for s in f.samples}
    assert samples[("rtms_webhook_requests_total", (("result", "bad_signature"),))] == 1
    assert samples[("rtms_sessions_active", (("state", "STARTED"),))] == 1
    assert samples[("rtms_media_frames_total", (("kind", "audio"),))] == 50
    assert WEBHOOK_SECRET not in text and CLIENT_SECRET not in text
    assert streams["active"] == 1 and streams["streams"][0]["stream_id"] == "s1"
    assert WEBHOOK_SECRET not in orjson.dumps(streams).decode()


async def test_started_while_the_stream_is_ending_restarts_it_after_the_close(gw: Gateway) -> None:
    class SlowStop(FakeSession):
        def stopped(self, reason: int | None) -> None:
            self.calls.append(("stopped", reason))  # closes only when told below

    made: list[FakeSession] = []

    def make(event, sink, on_event):
        session = SlowStop(event, sink, on_event) if not made else FakeSession(event, sink, on_event)
        made.append(session)
        return session

    gw._session_factory = make
    first = started(event_ts=1000, urls="wss://a:443/x")
    await post(gw, first, sign(first, request_id="1"))
    await post(gw, stopped(event_ts=2000), sign(stopped(event_ts=2000), request_id="2"))
    again = started(event_ts=3000, urls="wss://b:443/x")
    code, answer = await post(gw, again, sign(again, request_id="3"))
    assert (code, answer["action"]) == (200, "restart_queued")
    stale = started(event_ts=500, urls="wss://c:443/x")
    assert (await post(gw, stale, sign(stale, request_id="4")))[1]["action"] == "duplicate"
    made[0]._closed.set()  # the old session finishes closing
    assert await settle(lambda: len(made) == 2 and made[1].calls == ["start"])
    assert gw.streams["s1"].session is made[1]
    assert gw.streams["s1"].server_urls == "wss://b:443/x"


async def test_newer_started_for_an_ended_stream_starts_it_again(gw: Gateway) -> None:
    first = started(event_ts=1000)
    await post(gw, first, sign(first, request_id="a"))
    await post(gw, stopped(), sign(stopped(), request_id="b"))
    assert await settle(lambda: "s1" not in gw.streams)
    again = started(event_ts=5000, urls="wss://new:443/x")
    code, answer = await post(gw, again, sign(again, request_id="c"))
    assert (code, answer["action"]) == (200, "started")
    assert len(FakeSession.instances) == 2


async def test_a_sink_that_cannot_be_created_refuses_only_that_stream(gw: Gateway) -> None:
    from gateway.errors import PublishError

    def failing(event):
        raise PublishError("shared memory full")

    gw._sink_factory = failing
    body = started()
    code, answer = await post(gw, body, sign(body))
    assert (code, answer["reason"]) == (500, "sink_error")
    assert gw.streams == {} and FakeSession.instances == []
    assert gw.metrics.registry.get_sample_value("rtms_sessions_refused_total", {"reason": "sink_error"}) == 1


def test_dispatcher_bug_is_a_counted_500_and_the_retry_is_not_a_replay(caplog: pytest.LogCaptureFixture) -> None:
    calls = []

    def flaky(event):
        calls.append(event)
        if len(calls) == 1:
            raise RuntimeError("bug")
        return "started"

    metrics = GatewayMetrics()
    receiver = WebhookReceiver(WEBHOOK_SECRET, flaky, metrics=metrics)
    body = started()
    headers = sign(body, request_id="same-id")
    status, answer = receiver.process(headers, body)
    assert (status, answer["reason"]) == (500, "internal_error")
    assert "Traceback" not in str(answer)
    assert receiver.process(headers, body)[0] == 200  # Zoom's retry of a failed request goes through
    assert metrics.registry.get_sample_value("rtms_webhook_requests_total", {"result": "internal_error"}) == 1
