"""Doubles for the control tests: a fake clock and sleep, a fake meetings controller, a scripted Zoom."""

from __future__ import annotations

import argparse
import asyncio
from collections import deque
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web

from gateway import control_cli
from gateway.control import ControlCredentials, RtmsControlClient
from gateway.sim.rest import ZoomRestSim

ACCOUNT_ID = "acct-7Hq2xZ"
API_CLIENT_ID = "s2s-client-id-Qw3"
API_CLIENT_SECRET = "s2s-secret-Zk9vT1pL0"
RTMS_CLIENT_ID = "rtms-app-client-id"


class FakeClock:
    """Monotonic seconds that move only when a test says so."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class FakeSleep:
    """Records requested delays instead of sleeping."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


@dataclass
class FakeMeetings:
    """An RtmsAppController with settable meeting states; records every call."""

    states: dict[str, tuple[bool, bool]] = field(default_factory=dict)
    calls: list[tuple[str, str]] = field(default_factory=list)

    def meeting_state(self, meeting_id: str) -> tuple[bool, bool]:
        return self.states.get(meeting_id, (False, False))

    async def start(self, meeting_id: str) -> None:
        self.calls.append(("start", meeting_id))

    async def pause(self, meeting_id: str) -> None:
        self.calls.append(("pause", meeting_id))

    async def resume(self, meeting_id: str) -> None:
        self.calls.append(("resume", meeting_id))

    async def stop(self, meeting_id: str) -> None:
        self.calls.append(("stop", meeting_id))


def credentials() -> ControlCredentials:
    return ControlCredentials(ACCOUNT_ID, API_CLIENT_ID, API_CLIENT_SECRET)


def zoom(controller: Any, **kwargs: Any) -> ZoomRestSim:
    base: dict[str, Any] = {
        "account_id": ACCOUNT_ID,
        "client_id": API_CLIENT_ID,
        "client_secret": API_CLIENT_SECRET,
        "rtms_client_id": RTMS_CLIENT_ID,
    }
    base.update(kwargs)
    return ZoomRestSim(controller, **base)


def client_for(base_url: str, **kwargs: Any) -> RtmsControlClient:
    opts: dict[str, Any] = {
        "rtms_client_id": RTMS_CLIENT_ID,
        "api_base": f"{base_url}/v2",
        "oauth_url": f"{base_url}/oauth/token",
    }
    opts.update(kwargs)
    creds = opts.pop("credentials", None) or credentials()
    return RtmsControlClient(creds, **opts)


class ScriptedZoom:
    """Zoom with canned answers: OAuth always grants; the status endpoint pops (status, body, headers)."""

    def __init__(self, answers: list[tuple[int, Any, dict[str, str] | None]] | None = None) -> None:
        self.answers: deque[tuple[int, Any, dict[str, str] | None]] = deque(answers or [])
        self.status_calls: list[dict[str, Any]] = []
        self.token_grants = 0
        self.app = web.Application()
        self.app.router.add_post("/oauth/token", self._oauth)
        self.app.router.add_route("PATCH", "/v2/{tail:.*}", self._status)

    async def _oauth(self, request: web.Request) -> web.Response:
        self.token_grants += 1
        return web.json_response({"access_token": f"tok-{self.token_grants}", "token_type": "bearer", "expires_in": 3599, "scope": "x"})

    async def _status(self, request: web.Request) -> web.Response:
        self.status_calls.append({"path": request.raw_path, "auth": request.headers.get("Authorization"), "body": orjson.loads(await request.read())})
        status, body, headers = self.answers.popleft() if self.answers else (204, None, None)
        if body is None:
            return web.Response(status=status, headers=headers)
        raw = body if isinstance(body, bytes) else orjson.dumps(body)
        return web.Response(status=status, body=raw, headers=headers, content_type="application/json")


@asynccontextmanager
async def serving(app: web.Application) -> Any:
    """Serve ``app`` on loopback port 0; yields the base URL."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


def env() -> dict[str, str]:
    return {"ZM_ACCOUNT_ID": ACCOUNT_ID, "ZM_API_CLIENT_ID": API_CLIENT_ID, "ZM_API_CLIENT_SECRET": API_CLIENT_SECRET, "ZM_RTMS_CLIENT": RTMS_CLIENT_ID}


async def gateway_control(base_url: str, action: str, meeting: str | int, environ: dict[str, str] | None = None) -> int:
    """Run the CLI logic in a thread (own event loop), as ``gateway control ACTION --meeting ID``."""
    parser = argparse.ArgumentParser()
    control_cli.add_arguments(parser)
    args = parser.parse_args([action, "--meeting", str(meeting), "--api-base", f"{base_url}/v2", "--oauth-url", f"{base_url}/oauth/token"])

    def in_thread() -> int:
        with asyncio.Runner() as runner:
            return runner.run(control_cli.run_async(args, env() if environ is None else environ))

    return await asyncio.to_thread(in_thread)
