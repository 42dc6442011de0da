"""Fuzz the webhook endpoint: random bodies, headers, signatures and sizes.

Property: every request gets a JSON answer with a 2xx/4xx/503 status (never a 500 from a crash),
every answer is counted under its reason, only correctly signed, well-formed events reach the
dispatcher, and the receiver keeps serving afterwards. :meth:`WebhookReceiver.process` is fuzzed
directly (fast, many examples); a smaller run goes through HTTP, including raw bytes that no HTTP
client library would send (non-UTF-8 header values).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway import protocol
from gateway.app import Gateway
from gateway.protocol import WebhookEvent
from gateway.webhook import SIGNATURE_HEADER, TIMESTAMP_HEADER, WebhookReceiver
from tests.gateway.test_app_fakes import WEBHOOK_SECRET, FakeSession, fake_factory, make_config, sign, started, stopped
from tests.native.helpers import FUZZ_SCALE

SETTINGS = settings(max_examples=400 * FUZZ_SCALE, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
NOW = 1_760_000_000.0
ANSWER_STATUSES = {200, 400, 401, 409, 413}

HEADER_TEXT = st.text(max_size=80) | st.sampled_from(["", "v0=", "v0=" + "0" * 64, "\udcff", " 1760000000 ", "1e9", "-1"])
BODIES = st.one_of(
    st.binary(max_size=300),
    st.sampled_from([started(), stopped(), started(nested=True), b"{}", b"[]", b"null", b'{"event": null}']),
    st.builds(lambda body, cut: body[:cut], st.sampled_from([started(), stopped()]), st.integers(0, 200)),
    st.integers(60_000, 70_000).map(lambda n: b"{" + b" " * n + b"}"),
)


class Dispatcher:
    """Records what reaches it (only authenticated, decoded events may)."""

    def __init__(self) -> None:
        self.events: list[WebhookEvent] = []

    def __call__(self, event: WebhookEvent) -> str:
        assert isinstance(event, WebhookEvent)
        self.events.append(event)
        return "recorded"


def receiver() -> tuple[WebhookReceiver, Dispatcher]:
    dispatch = Dispatcher()
    return WebhookReceiver(WEBHOOK_SECRET, dispatch, clock=lambda: NOW), dispatch


@st.composite
def request(draw: st.DrawFn) -> tuple[dict[str, str], bytes, bool]:
    """(headers, body, signed correctly?) with each header present, absent, random or right."""
    body = draw(BODIES)
    ts = str(int(NOW) + draw(st.integers(-400, 400)))
    headers: dict[str, str] = {}
    good_sig = draw(st.booleans())
    if draw(st.integers(0, 5)):
        headers[TIMESTAMP_HEADER] = ts if draw(st.integers(0, 3)) else draw(HEADER_TEXT)
    if draw(st.integers(0, 5)):
        if good_sig and headers.get(TIMESTAMP_HEADER, "\udcff").isascii():
            headers[SIGNATURE_HEADER] = protocol.webhook_signature(WEBHOOK_SECRET, headers[TIMESTAMP_HEADER], body)
        else:
            headers[SIGNATURE_HEADER] = draw(HEADER_TEXT)
    if draw(st.booleans()):
        headers["x-zm-request-id"] = draw(HEADER_TEXT)
    return headers, body, good_sig


@SETTINGS
@given(st.lists(request(), min_size=1, max_size=8))
def test_process_answers_every_request_with_a_counted_reason(requests: list[tuple[dict[str, str], bytes, bool]]) -> None:
    webhook, dispatch = receiver()
    for headers, body, _ in requests:
        status, answer = webhook.process(headers, body)
        assert status in ANSWER_STATUSES, (status, answer, headers)
        assert answer["status"] in ("ok", "rejected") or "plainToken" in answer
        orjson.dumps(answer)
    counted = sum(sample.value for sample in _samples(webhook, "rtms_webhook_requests_total"))
    assert counted == len(requests)
    for event in dispatch.events:  # only valid events got through, and only once each
        assert event.stream_id and event.instance_id
    # still serving: a fresh, correctly signed event is accepted
    body = started(stream_id="after-fuzz")
    status, _ = webhook.process(sign(body, ts=int(NOW)), body)
    assert status == 200
    assert dispatch.events[-1].stream_id == "after-fuzz"


def _samples(webhook: WebhookReceiver, name: str) -> list[Any]:
    return [s for family in webhook.metrics.registry.collect() for s in family.samples if s.name == name]


def test_regression_non_ascii_signature_is_a_401_not_a_500() -> None:
    """Found by fuzzing: a signature with a lone surrogate (undecodable header byte) raised
    UnicodeEncodeError inside the HMAC compare and answered 500 internal_error."""
    webhook, dispatch = receiver()
    body = started()
    for signature in ("v0=\udcff", "v0=\u00e9" + "0" * 63, "\udcff"):
        status, answer = webhook.process({SIGNATURE_HEADER: signature, TIMESTAMP_HEADER: str(int(NOW))}, body)
        assert (status, answer["reason"]) == (401, "bad_signature")
    assert dispatch.events == []


async def _raw_post(port: int, head: bytes, body: bytes) -> tuple[int, bytes]:
    """One raw HTTP/1.1 request (bytes as given, no client-side validation); returns status and body."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(b"POST /webhook HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n" + head
                     + b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
        await writer.drain()
        raw = await asyncio.wait_for(reader.read(), 10)
    finally:
        writer.close()
    status = int(raw.split(b" ", 2)[1])
    return status, raw.partition(b"\r\n\r\n")[2]


async def test_http_fuzz_never_crashes_the_endpoint() -> None:
    """Random header bytes and bodies over a real socket: never a 500, the gateway keeps serving."""
    FakeSession.instances.clear()
    gateway = Gateway(make_config(), session_factory=fake_factory())
    await gateway.start()
    try:
        port = int(gateway.webhook_url.rsplit(":", 1)[1].split("/")[0])
        path = "/" + gateway.webhook_url.split("/", 3)[3]
        assert path == "/webhook", path
        statuses: list[int] = []
        handled: list[str] = []

        @settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
        @given(st.binary(max_size=60).filter(lambda b: b"\r" not in b and b"\n" not in b and b"\x00" not in b),
               st.binary(max_size=60).filter(lambda b: b"\r" not in b and b"\n" not in b and b"\x00" not in b),
               BODIES, st.booleans())
        def fuzz(sig: bytes, ts: bytes, body: bytes, with_ts: bool) -> None:
            head = b"x-zm-signature: v0=" + sig + b"\r\n"
            head += b"x-zm-request-timestamp: " + (str(int(time.time())).encode() if with_ts else ts) + b"\r\n"
            status, answer = asyncio.run_coroutine_threadsafe(_raw_post(port, head, body), loop).result(20)
            statuses.append(status)
            if answer.startswith(b"{"):  # reached the receiver (aiohttp itself refuses some raw headers)
                handled.append(orjson.loads(answer)["reason"] if status != 200 else "ok")
            assert status != 500

        loop = asyncio.get_running_loop()
        await asyncio.to_thread(fuzz)
        assert statuses and 500 not in statuses
        body = started(stream_id="after-http-fuzz")
        head = b"".join(f"{k}: {v}\r\n".encode() for k, v in sign(body).items())
        status, answer = await _raw_post(port, head, body)
        assert status == 200, answer
        assert "after-http-fuzz" in gateway.streams
        assert handled
        assert _counter_total(gateway) == len(handled) + 1
    finally:
        await gateway.close()


def _counter_total(gateway: Gateway) -> float:
    return sum(s.value for family in gateway.metrics.registry.collect() for s in family.samples
               if s.name == "rtms_webhook_requests_total")
