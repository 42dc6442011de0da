"""Operator endpoint ``POST /control/{meeting_id}/{action}``: never open, right answers, full chain to Zoom."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from gateway.config import Secret
from gateway.control_http import add_control_routes
from gateway.errors import (
    AppNotPermitted,
    ConfigError,
    ControlError,
    CredentialsRejected,
    HostNotPresent,
    MeetingNotLive,
    RateLimited,
    TokenRejected,
)
from tests.control.helpers import FakeMeetings, client_for, zoom

OPERATOR_TOKEN = "op-token-5f1c2b7d"
AUTH = {"Authorization": f"Bearer {OPERATOR_TOKEN}"}


class RecordingClient:
    """Stands in for RtmsControlClient; raises ``error`` when set."""

    def __init__(self, error: Exception | None = None) -> None:
        self.error = error
        self.calls: list[tuple[str, str, str | None]] = []

    async def set_status(self, meeting_id: str | int, action: Any, *, participant_user_id: str | None = None) -> None:
        self.calls.append((str(meeting_id), str(action), participant_user_id))
        if self.error is not None:
            raise self.error


@asynccontextmanager
async def operator_api(client: Any, token: Any = OPERATOR_TOKEN) -> AsyncIterator[TestClient]:
    app = web.Application()
    add_control_routes(app, client, token)
    async with TestClient(TestServer(app, host="127.0.0.1")) as http:
        yield http


@pytest.mark.parametrize("token", [None, "", "   "])
def test_refuses_to_mount_without_operator_token(token: str | None) -> None:
    app = web.Application()
    with pytest.raises(ConfigError):
        add_control_routes(app, RecordingClient(), token)
    assert len(app.router.routes()) == 0  # nothing exposed


async def test_missing_and_wrong_token_are_refused(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    fake = RecordingClient()
    async with operator_api(fake) as http:
        resp = await http.post("/control/85746065432/start")
        assert resp.status == 401 and resp.headers["WWW-Authenticate"].startswith("Bearer")
        for wrong in (f"Bearer {OPERATOR_TOKEN}x", "Bearer ", OPERATOR_TOKEN, f"Basic {OPERATOR_TOKEN}", f"bearer {OPERATOR_TOKEN[:-1]}"):
            resp = await http.post("/control/85746065432/start", headers={"Authorization": wrong})
            assert resp.status == 401, wrong
            assert (await resp.json())["error"] == "unauthorized"
    assert fake.calls == []
    assert OPERATOR_TOKEN not in caplog.text


async def test_right_token_runs_each_action() -> None:
    fake = RecordingClient()
    async with operator_api(fake, Secret(OPERATOR_TOKEN)) as http:
        for action in ("start", "pause", "resume", "stop"):
            resp = await http.post(f"/control/85746065432/{action}", headers=AUTH)
            assert resp.status == 200
            assert await resp.json() == {"meeting_id": "85746065432", "action": action, "status": "ok"}
        resp = await http.post("/control/85746065432/start", headers=AUTH, json={"participant_user_id": "u-9"})
        assert resp.status == 200
    assert fake.calls == [("85746065432", a, None) for a in ("start", "pause", "resume", "stop")] + [("85746065432", "start", "u-9")]


async def test_uuid_with_slashes_is_percent_encoded_in_the_path() -> None:
    fake = RecordingClient()
    async with operator_api(fake) as http:
        resp = await http.post("/control/%2Fab%2F%2Fcd%3D%3D/stop", headers=AUTH)
        assert resp.status == 200
    assert fake.calls == [("/ab//cd==", "stop", None)]


async def test_bad_action_and_bad_body() -> None:
    fake = RecordingClient()
    async with operator_api(fake) as http:
        assert (await http.post("/control/1/restart", headers=AUTH)).status == 400
        assert (await http.post("/control/1/start", headers=AUTH, data=b"not json")).status == 400
        assert (await http.post("/control/1/start", headers=AUTH, json={"participant_user_id": 5})).status == 400
        assert (await http.post("/control/1/start", headers=AUTH, data=b"x" * 5000)).status == 400
    assert fake.calls == []


@pytest.mark.parametrize(
    ("error", "status", "kind"),
    [
        (MeetingNotLive("not live", status=404, code=3001), 404, "meeting_not_live"),
        (HostNotPresent("no host", status=400, code=3000), 409, "host_not_present"),
        (AppNotPermitted("nope", status=400, code=2308), 403, "app_not_permitted"),
        (TokenRejected("bad token", status=401, code=124), 502, "token_rejected"),
        (CredentialsRejected("bad creds", status=401), 502, "credentials_rejected"),
        (RateLimited("slow down", retry_after=2.5, code=429), 429, "rate_limited"),
        (ControlError("boom", status=500), 502, "zoom_error"),
    ],
)
async def test_zoom_errors_map_to_operator_answers(error: ControlError, status: int, kind: str) -> None:
    async with operator_api(RecordingClient(error)) as http:
        resp = await http.post("/control/85746065432/start", headers=AUTH)
        doc = await resp.json()
    assert resp.status == status and doc["error"] == kind and doc["zoom_code"] == error.code
    if isinstance(error, RateLimited):
        assert resp.headers["Retry-After"] == "3"


async def test_full_chain_operator_to_simulated_zoom() -> None:
    meetings = FakeMeetings({"85746065432": (True, True), "111": (True, False)})
    async with zoom(meetings) as z, client_for(z.base_url) as client, operator_api(client) as http:
        assert (await http.post("/control/85746065432/start", headers=AUTH)).status == 200
        assert (await http.post("/control/85746065432/pause", headers=AUTH)).status == 200
        resp = await http.post("/control/111/start", headers=AUTH)
        assert resp.status == 409 and (await resp.json())["zoom_code"] == 3000
        resp = await http.post("/control/222/start", headers=AUTH)
        assert resp.status == 404 and (await resp.json())["zoom_code"] == 3001
    assert meetings.calls == [("start", "85746065432"), ("pause", "85746065432")]
