"""``gateway sim`` command logic: flags, env defaults, webhooks, clean stop."""

from __future__ import annotations

import argparse

import orjson
import pytest

from gateway.sim import cli
from tests.sim.helpers import WebhookSink


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    cli.add_arguments(parser)
    return parser.parse_args(argv)


def test_env_defaults_for_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ZM_RTMS_CLIENT", "env-id")
    monkeypatch.setenv("ZM_RTMS_SECRET", "env-secret")
    monkeypatch.setenv("ZM_RTMS_WEBHOOK_SECRET", "env-hook")
    cfg = cli.config_from_args(parse(["--product", "webinar", "--status-profile", "A", "--port", "0"]))
    assert (cfg.client_id, cfg.client_secret, cfg.webhook_secret) == ("env-id", "env-secret", "env-hook")
    assert cfg.product.value == "webinar" and cfg.status_profile.value == "A" and cfg.host == "127.0.0.1"


async def test_run_announces_meetings_then_stops_them(capsys: pytest.CaptureFixture[str]) -> None:
    async with WebhookSink(secret="cli-hook") as sink:
        args = parse(["--webhook-url", sink.url, "--webhook-secret", "cli-hook", "--meetings", "2", "--seconds", "1.2", "--participants", "2"])
        assert await cli.run(args) == 0
    out = capsys.readouterr().out
    assert "signaling ws://127.0.0.1:" in out and "[sim " in out
    events = sink.events()
    assert sorted(events) == ["meeting.rtms_started"] * 2 + ["meeting.rtms_stopped"] * 2
    stopped = [orjson.loads(b)["payload"] for _, b in sink.requests if b"rtms_stopped" in b]
    assert {p["stop_reason"] for p in stopped} == {6}


async def test_run_without_webhook_prints_join_payload(capsys: pytest.CaptureFixture[str]) -> None:
    assert await cli.run(parse(["--meetings", "1", "--seconds", "0.5", "--load", "realtime"])) == 0
    out = capsys.readouterr().out
    assert "join payload {" in out and "rtms_stream_id" in out
