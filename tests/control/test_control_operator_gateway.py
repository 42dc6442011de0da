"""Operator routes on the real Gateway, configured from a ``[control]`` TOML section, against the simulator.

``POST /control/{meeting}/{action}`` on the gateway's own server -> RtmsControlClient -> simulated
Zoom REST -> signed ``meeting.rtms_started`` back to the same gateway -> a stream. Without the
operator token nothing happens (401); a ``[control]`` section enabled without a token is a clean
configuration error, whether it comes from a file, from ``gateway run`` or from code.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from gateway import cli
from gateway.app import Gateway
from gateway.config import ControlConfig, Secret, load_config
from gateway.errors import ConfigError
from gateway.sim import Simulator
from gateway.sim.rest import SimulatorRtmsApp, ZoomRestSim
from tests.control.helpers import ACCOUNT_ID, API_CLIENT_ID, API_CLIENT_SECRET, env
from tests.sim.helpers import CLIENT_ID, CLIENT_SECRET, WEBHOOK_SECRET, config, wait_for

OPERATOR_TOKEN = "op-token-e2e-8c41d0a9"
MEETING_ID = 85746065432


def _toml(path: Path, control: str) -> Path:
    path.write_text(
        f"""
[server]
host = "127.0.0.1"
port = 0

[credentials]
client_id = "{CLIENT_ID}"
client_secret = "{CLIENT_SECRET}"
webhook_secret = "{WEBHOOK_SECRET}"

[sessions]
media_kinds = ["audio"]

[control]
{control}
"""
    )
    return path


async def test_operator_routes_start_pause_stop_a_stream_through_the_real_gateway(tmp_path: Path, monkeypatch: Any, caplog: Any) -> None:
    caplog.set_level(logging.DEBUG)
    for name, value in env().items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("GATEWAY_CONTROL_OPERATOR_TOKEN", raising=False)
    async with Simulator(config(scopes=("audio",), time_scale=0.05)) as sim:
        z = ZoomRestSim.for_simulator(sim, account_id=ACCOUNT_ID, client_id=API_CLIENT_ID, client_secret=API_CLIENT_SECRET)
        assert isinstance(z.controller, SimulatorRtmsApp)
        meeting = z.controller.add_meeting(MEETING_ID)
        absent = z.controller.add_meeting(1002, host_present=False)
        async with z:
            control = f'enabled = true\noperator_token = "{OPERATOR_TOKEN}"\napi_base = "{z.api_base}"\noauth_url = "{z.oauth_url}"'
            gw_config = load_config(_toml(tmp_path / "gateway.toml", control), env={})
            assert gw_config.control.api_base == z.api_base and OPERATOR_TOKEN not in repr(gw_config)
            async with Gateway(gw_config) as gw, aiohttp.ClientSession() as http:
                # Zoom's webhooks go to the gateway being steered (known only now: the REST URLs came first)
                sim.config.webhook_url = sim.webhooks.url = gw.webhook_url

                async def post(action: str, meeting_id: int | str = MEETING_ID, token: str | None = OPERATOR_TOKEN) -> tuple[int, dict[str, Any]]:
                    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
                    async with http.post(f"{gw.base_url}/control/{meeting_id}/{action}", headers=headers) as resp:
                        return resp.status, await resp.json()

                # never open: no token, a wrong token -> 401, and Zoom is not even asked
                assert (await post("start", token=None))[0] == 401
                assert (await post("start", token="not-the-operator-token"))[0] == 401
                assert z.requests == [] and z.token_grants == 0 and meeting.stream is None

                status, body = await post("start")
                assert (status, body) == (200, {"meeting_id": str(MEETING_ID), "action": "start", "status": "ok"})
                stream = meeting.stream
                assert stream is not None
                assert await wait_for(lambda: stream.stream_id in gw.streams, 5.0)  # signed webhook -> stream
                session = gw.streams[stream.stream_id].session
                assert await wait_for(lambda: stream.sent.media_counts.get("audio", 0) >= 10, 10.0)

                assert (await post("pause"))[0] == 200
                assert await wait_for(lambda: session.state.name == "PAUSED", 5.0)
                # Zoom's refusals reach the operator as typed answers
                status, body = await post("pause")  # already paused: Zoom says no, the stream is untouched
                assert status == 502 and body["error"] == "zoom_error" and session.state.name == "PAUSED"
                status, body = await post("start", 4242)
                assert (status, body["error"], body["zoom_code"]) == (404, "meeting_not_live", 3001)
                status, body = await post("start", absent.meeting_id)
                assert (status, body["error"]) == (409, "host_not_present") and absent.stream is None

                assert (await post("stop"))[0] == 200
                assert await wait_for(lambda: not gw.streams, 10.0)
                assert [r.action for r in z.requests] == ["start", "pause", "stop"]
                assert z.token_grants == 1  # one cached token served every call
    assert OPERATOR_TOKEN not in caplog.text and API_CLIENT_SECRET not in caplog.text
    assert not any(tok in caplog.text for tok in z.issued_tokens)


def test_control_enabled_without_token_is_a_config_error(tmp_path: Path, monkeypatch: Any) -> None:
    monkeypatch.delenv("GATEWAY_CONTROL_OPERATOR_TOKEN", raising=False)
    for control in ("enabled = true", 'enabled = true\noperator_token = ""', 'enabled = true\noperator_token = "   "'):
        with pytest.raises(ConfigError, match=r"control\.operator_token"):
            load_config(_toml(tmp_path / "gateway.toml", control), env={})
    # the token may come from the environment instead of the file
    cfg = load_config(_toml(tmp_path / "gateway.toml", "enabled = true"), env={"GATEWAY_CONTROL_OPERATOR_TOKEN": OPERATOR_TOKEN})
    assert cfg.control.operator_token.reveal() == OPERATOR_TOKEN


def test_gateway_run_refuses_control_without_token(tmp_path: Path, monkeypatch: Any, capsys: Any) -> None:
    monkeypatch.delenv("GATEWAY_CONTROL_OPERATOR_TOKEN", raising=False)
    path = _toml(tmp_path / "gateway.toml", "enabled = true")
    assert cli.main(["run", "-c", str(path)]) == cli.EXIT_USAGE  # refused before anything listens
    err = capsys.readouterr().err
    assert "configuration error" in err and "control.operator_token" in err and "Traceback" not in err


async def test_gateway_built_in_code_refuses_control_without_token(monkeypatch: Any) -> None:
    """A config built in code skips load_config's validation: the gateway itself still refuses."""
    for name, value in env().items():
        monkeypatch.setenv(name, value)
    cfg = load_config(None, env={"ZM_RTMS_CLIENT": CLIENT_ID, "ZM_RTMS_SECRET": CLIENT_SECRET, "ZM_RTMS_WEBHOOK_SECRET": WEBHOOK_SECRET})
    for token in ("", "  "):
        bad = dataclasses.replace(cfg, control=ControlConfig(enabled=True, operator_token=Secret(token)))
        gw = Gateway(bad)
        with pytest.raises(ConfigError, match="operator token"):
            await gw.start()
        assert gw.port is None  # nothing listens
        await gw.close()
