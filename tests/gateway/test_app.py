"""Gateway app with injected fake sessions: capacity, isolation, shutdown, secrets out of logs."""

from __future__ import annotations

import asyncio
import logging
import time

import aiohttp
import orjson
import pytest

from gateway.app import Gateway, parser_implementation
from gateway.config import SessionsConfig
from gateway.stats_sink import StatsSink
from tests.gateway.test_app_fakes import (
    CLIENT_SECRET,
    WEBHOOK_SECRET,
    FakeSession,
    fake_factory,
    make_config,
    settle,
    sign,
    started,
)


async def post(gw: Gateway, body: bytes, headers: dict[str, str]) -> tuple[int, dict]:
    async with aiohttp.ClientSession() as http, http.post(gw.webhook_url, data=body, headers=headers) as resp:
        return resp.status, orjson.loads(await resp.read())


async def test_capacity_limit_refuses_loudly(caplog) -> None:
    FakeSession.instances.clear()
    async with Gateway(make_config(sessions=SessionsConfig(max_streams=2)), session_factory=fake_factory()) as gw:
        for i in range(2):
            body = started(stream_id=f"s{i}")
            assert (await post(gw, body, sign(body)))[0] == 200
        body = started(stream_id="s2")
        code, answer = await post(gw, body, sign(body))
        assert (code, answer["reason"]) == (503, "at_capacity")
        assert sorted(gw.streams) == ["s0", "s1"]
        assert gw.metrics.registry.get_sample_value("rtms_sessions_refused_total", {"reason": "capacity"}) == 1
        assert any("REFUSED stream s2" in r.getMessage() and r.levelno == logging.ERROR for r in caplog.records)
        # a refused start is not remembered as a replay: Zoom's retry (new timestamp) starts it once room exists
        await gw.close_stream("s0")
        code, answer = await post(gw, body, sign(body, ts=int(time.time()) - 1))
        assert (code, answer["action"]) == (200, "started")


async def test_a_failing_session_leaves_the_others_running() -> None:
    FakeSession.instances.clear()
    async with Gateway(make_config(), session_factory=fake_factory(fail_for={"bad"})) as gw:
        for sid in ("good1", "bad", "good2"):
            body = started(stream_id=sid)
            assert (await post(gw, body, sign(body)))[0] == 200
        assert await settle(lambda: "bad" not in gw.streams)
        assert sorted(gw.streams) == ["good1", "good2"]
        assert all(gw.streams[s].session.state.name == "STARTED" for s in ("good1", "good2"))
        assert gw.metrics.registry.get_sample_value("rtms_sessions_ended_total", {"outcome": "error"}) == 1


async def test_graceful_close_closes_every_stream_and_refuses_new_ones() -> None:
    FakeSession.instances.clear()
    gw = Gateway(make_config(), session_factory=fake_factory())
    await gw.start()
    for i in range(3):
        body = started(stream_id=f"s{i}")
        await post(gw, body, sign(body))
    assert await settle(lambda: all(s.calls[:1] == ["start"] for s in FakeSession.instances) and len(FakeSession.instances) == 3)
    tasks = [e.task for e in gw.streams.values()]
    await gw.close()
    assert gw.streams == {}
    assert all(("close", True) in s.calls for s in FakeSession.instances)
    assert all(t is not None and t.done() for t in tasks)
    leftovers = [t for t in asyncio.all_tasks() if t is not asyncio.current_task() and t.get_name().startswith("stream-")]
    assert leftovers == []


async def test_session_that_never_closes_is_cancelled_at_shutdown() -> None:
    class Stuck(FakeSession):
        async def close(self, request: bool = False) -> None:
            self.calls.append(("close", request))  # never sets _closed

    def make(event, sink, on_event):
        return Stuck(event, sink, on_event)

    config = make_config(shutdown_timeout_s=0.2)
    async with Gateway(config, session_factory=make) as gw:
        body = started()
        await post(gw, body, sign(body))
        assert await settle(lambda: "s1" in gw.streams and gw.streams["s1"].session.calls == ["start"])
        task = gw.streams["s1"].task
    assert task is not None and task.cancelled()
    assert gw.metrics.registry.get_sample_value("rtms_sessions_ended_total", {"outcome": "cancelled"}) == 1


async def test_default_sink_counts_and_session_events_feed_metrics() -> None:
    FakeSession.instances.clear()
    async with Gateway(make_config(), session_factory=fake_factory()) as gw:
        body = started()
        await post(gw, body, sign(body))
        assert await settle(lambda: FakeSession.instances and FakeSession.instances[0].calls == ["start"])
        sink = FakeSession.instances[0].sink
        assert isinstance(sink, StatsSink)
        sink.on_audio(7, "Ada", 0, memoryview(b"\x01" * 640))
        sink.on_video(7, "Ada", 0, memoryview(b"\xff\xd8" * 10))
        assert sink.stats()["participants"] == 1
        assert gw.metrics.registry.get_sample_value("rtms_session_events_total", {"type": "state"}) == 1
        # a counting sink has no shared-memory rings: no media delay sample, and no placeholder either
        assert gw.metrics.registry.get_sample_value("rtms_media_delay_seconds_count") == 0
        assert gw.metrics.registry.get_sample_value("rtms_shm_participant_rings_ratio", {"stat": "max"}) == 0
        described = gw.status()["streams"][0]
        assert described["state"] == "STARTED"
        # the session's own counters win over the sink's where both exist
        assert described["stats"]["frames"]["audio"] == 50


async def test_secrets_never_in_logs_repr_or_status(caplog) -> None:
    caplog.set_level(logging.DEBUG)
    FakeSession.instances.clear()
    config = make_config()
    async with Gateway(config, session_factory=fake_factory(fail_for={"bad"})) as gw:
        for sid in ("s1", "bad"):
            body = started(stream_id=sid)
            await post(gw, body, sign(body))
        await post(gw, body, sign(body, secret="forged"))
        assert await settle(lambda: "bad" not in gw.streams)
        text = caplog.text + repr(config) + repr(gw) + orjson.dumps(gw.status(), default=str).decode() + gw.metrics.render().decode()
    assert WEBHOOK_SECRET not in text
    assert CLIENT_SECRET not in text


def test_parser_implementation_is_named() -> None:
    assert parser_implementation()


async def test_route_hooks_mount_extra_endpoints_next_to_the_webhook() -> None:
    from aiohttp import web

    async def hello(request: web.Request) -> web.Response:
        return web.json_response({"hello": "operator"})

    gw = Gateway(make_config(), session_factory=fake_factory())
    gw.route_hooks.append(lambda app: app.router.add_get("/control/ping", hello))
    async with gw, aiohttp.ClientSession() as http, http.get(gw.base_url + "/control/ping") as resp:
        assert (resp.status, await resp.json()) == (200, {"hello": "operator"})


async def test_webhook_is_answered_before_any_session_work_completes() -> None:
    release = asyncio.Event()

    class SlowStart(FakeSession):
        async def start(self) -> None:
            self.calls.append("start")
            await release.wait()  # a slow handshake: the webhook must not wait for it
            self.state = self.state.STARTED

    async with Gateway(make_config(), session_factory=lambda ev, sink, on_event: SlowStart(ev, sink, on_event)) as gw:
        body = started()
        code, answer = await post(gw, body, sign(body))
        assert (code, answer["action"]) == (200, "started")
        session = gw.streams["s1"].session
        assert session.state.name == "INACTIVE"  # acknowledged while the session is still connecting
        release.set()
        assert await settle(lambda: session.state.name == "STARTED")


async def test_operator_control_routes_are_mounted_behind_the_token(monkeypatch, caplog) -> None:
    import dataclasses

    from gateway import control
    from gateway.config import ControlConfig, Secret
    from gateway.errors import ConfigError

    caplog.set_level(logging.DEBUG)
    calls: list[tuple[str, str]] = []

    async def set_status(self, meeting_id, action, *, participant_user_id=None) -> None:
        calls.append((str(meeting_id), str(action)))

    monkeypatch.setattr(control.RtmsControlClient, "set_status", set_status)
    token = "operator-token-0123456789"
    config = dataclasses.replace(make_config(), control=ControlConfig(enabled=True, operator_token=Secret(token)))
    for name in ("ZM_ACCOUNT_ID", "ZM_API_CLIENT_ID", "ZM_API_CLIENT_SECRET"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(ConfigError, match="ZM_ACCOUNT_ID"):
        await Gateway(config, session_factory=fake_factory()).start()
    monkeypatch.setenv("ZM_ACCOUNT_ID", "acct")
    monkeypatch.setenv("ZM_API_CLIENT_ID", "api-client")
    monkeypatch.setenv("ZM_API_CLIENT_SECRET", "api-secret-zz")
    async with Gateway(config, session_factory=fake_factory()) as gw, aiohttp.ClientSession() as http:
        url = gw.base_url + "/control/123456789/pause"
        async with http.post(url) as resp:
            assert resp.status == 401
        async with http.post(url, headers={"Authorization": "Bearer wrong"}) as resp:
            assert resp.status == 401
        async with http.post(url, headers={"Authorization": f"Bearer {token}"}) as resp:
            assert resp.status == 200
        assert calls == [("123456789", "pause")]
    assert token not in caplog.text and "api-secret-zz" not in caplog.text and token not in repr(config)
