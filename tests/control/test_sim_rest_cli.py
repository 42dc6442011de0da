"""``gateway sim --rest``: the standalone simulator plays Zoom's REST side for ``gateway control``.

The simulator runs as its own process, exactly as an operator starts it; the test reads the URLs,
credentials and meeting ids it prints and drives it with ``gateway control`` (the real CLI entry,
in a worker thread). The REST credentials it prints must be its fixed test values, never the
operator's environment.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import signal
import sys
from typing import Any

import orjson

from gateway import cli, protocol
from gateway.sim import cli as sim_cli
from tests.sim.helpers import WebhookSink, wait_for

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
HOOK_SECRET = "rest-cli-hook-secret"
OPERATOR_REAL_SECRET = "operators-real-api-secret-do-not-print"


async def _read_until(stream: asyncio.StreamReader, marker: str, lines: list[str], timeout_s: float = 60.0) -> None:
    async def loop() -> None:
        while True:
            raw = await stream.readline()
            assert raw, f"simulator exited before printing {marker!r}: {lines}"
            lines.append(raw.decode().rstrip("\n"))
            if marker in lines[-1]:
                return

    await asyncio.wait_for(loop(), timeout_s)


async def test_sim_rest_serves_zoom_rest_side_for_gateway_control(monkeypatch: Any) -> None:
    async def control(action: str, meeting: str, environ: dict[str, str]) -> int:
        """``gateway control ACTION --meeting ID --api-base .. --oauth-url ..`` with ``environ`` exported."""
        for name, value in environ.items():
            monkeypatch.setenv(name, value)
        argv = ["control", action, "--meeting", meeting, "--api-base", api_base, "--oauth-url", oauth_url]
        return await asyncio.to_thread(cli.main, argv)

    env = {k: v for k, v in os.environ.items() if not k.startswith("ZM_")}
    env["ZM_API_CLIENT_SECRET"] = OPERATOR_REAL_SECRET  # must never be echoed nor used by the simulator
    async with WebhookSink(secret=HOOK_SECRET) as sink:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "gateway", "sim", "--rest", "--meetings", "2", "--webhook-url", sink.url,
            "--webhook-secret", HOOK_SECRET, "--client-id", "cli-rtms-app", "--seconds", "120",
            cwd=ROOT, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        assert proc.stdout is not None
        lines: list[str] = []
        try:
            await _read_until(proc.stdout, "gateway sim: try", lines)
            text = "\n".join(lines)
            m = re.search(r"Zoom REST  oauth (http://127\.0\.0\.1:\d+/oauth/token)  api (http://127\.0\.0\.1:\d+/v2)", text)
            assert m is not None, text
            oauth_url, api_base = m.groups()
            creds_line = next(line for line in lines if "REST test credentials" in line)
            creds = dict(re.findall(r"(ZM_[A-Z_]+)=(\S+)", creds_line))
            assert creds == {
                "ZM_ACCOUNT_ID": sim_cli.REST_ACCOUNT_ID,
                "ZM_API_CLIENT_ID": sim_cli.REST_CLIENT_ID,
                "ZM_API_CLIENT_SECRET": sim_cli.REST_CLIENT_SECRET,
                "ZM_RTMS_CLIENT": "cli-rtms-app",
            }
            meetings = re.findall(r"live meeting (\d+) uuid (\S+)", text)
            assert [mid for mid, _ in meetings] == [str(sim_cli.REST_FIRST_MEETING_ID), str(sim_cli.REST_FIRST_MEETING_ID + 1)]
            assert f"gateway control start --meeting {meetings[0][0]} --api-base {api_base} --oauth-url {oauth_url}" in text
            assert sink.requests == []  # --rest registers meetings; nothing starts on its own

            # the printed command line, with the printed credentials, starts meeting 1's stream
            assert await control("start", meetings[0][0], creds) == 0
            assert await wait_for(lambda: "meeting.rtms_started" in sink.events(), 10.0)
            headers, raw = sink.requests[0]
            assert protocol.verify_webhook_signature(HOOK_SECRET, headers["x-zm-request-timestamp"], raw, headers["x-zm-signature"])
            started = orjson.loads(raw)["payload"]
            assert started["meeting_uuid"] == meetings[0][1] and started["rtms_stream_id"]

            # a wrong secret is refused by the simulated OAuth endpoint (exit 6), a stop ends the stream
            wrong = {**creds, "ZM_API_CLIENT_SECRET": "not-the-secret"}
            assert await control("stop", meetings[0][0], wrong) == 6
            assert await control("stop", meetings[0][0], creds) == 0
            assert await wait_for(lambda: "meeting.rtms_stopped" in sink.events(), 10.0)
            stopped = next(b for b in sink.bodies() if b["event"] == "meeting.rtms_stopped")["payload"]
            assert stopped["rtms_stream_id"] == started["rtms_stream_id"]
            assert stopped["stop_reason"] == protocol.StopReason.STOP_BC_USER_TRIGGERED

            # with --rest the simulator keeps serving after every stream ended: start again
            assert await control("start", meetings[0][0], creds) == 0
            assert await wait_for(lambda: sink.events().count("meeting.rtms_started") == 2, 10.0)
            assert proc.returncode is None
        finally:
            if proc.returncode is None:
                proc.send_signal(signal.SIGTERM)
            out, err = await asyncio.wait_for(proc.communicate(), 60)
        assert proc.returncode == 0, err.decode()
        everything = text + out.decode() + err.decode()
        assert "rest accepted 3" in everything  # status lines count the accepted REST calls
        assert OPERATOR_REAL_SECRET not in everything
        # SIGTERM ends the restarted stream with reason 6 (meeting ended) and delivers its webhook
        assert sink.events().count("meeting.rtms_stopped") == 2


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    sim_cli.add_arguments(parser)
    return parser.parse_args(argv)


async def test_sim_rest_refuses_load_mode(capsys: Any) -> None:
    assert await sim_cli.run(_parse(["--rest-port", "0", "--load", "realtime"])) == 2
    assert "--rest" in capsys.readouterr().err


async def test_sim_rest_in_process_without_webhook_url(capsys: Any) -> None:
    """In process: prints the REST side and runs until --seconds; nothing is started by itself."""
    assert await sim_cli.run(_parse(["--rest", "--meetings", "1", "--seconds", "0.3"])) == 0
    out = capsys.readouterr().out
    assert "oauth http://127.0.0.1:" in out and "/v2" in out and f"live meeting {sim_cli.REST_FIRST_MEETING_ID}" in out
    assert "join payload" not in out and "announced to nobody" in out
