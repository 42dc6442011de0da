"""The ``gateway`` front door: subcommands, configuration errors, ``gateway run`` start-up and SIGTERM."""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import orjson
import pytest

from gateway import cli

ROOT = Path(__file__).resolve().parents[2]


def native_env() -> dict[str, str]:
    """Environment for subprocesses: the pure listener only where the native one is not built."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ZM_RTMS_", "GATEWAY_"))}
    try:
        from gateway._native import MediaListener  # type: ignore[attr-defined]  # noqa: F401
    except ImportError:
        env["GATEWAY_PURE"] = "1"
    return env


def test_help_lists_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        cli.main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for command in ("run", "demo", "sim", "tap", "control", "bench"):
        assert re.search(rf"^\s+{command}\s", out, re.M), command


def test_no_command_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main([]) == cli.EXIT_USAGE


def test_bench_without_a_name_runs_the_end_to_end_comparison(monkeypatch: pytest.MonkeyPatch) -> None:
    from gateway import bench

    seen: list[list[str]] = []
    monkeypatch.setattr(bench, "main", lambda argv: seen.append(list(argv)) or 0)
    assert cli.main(["bench"]) == 0
    assert cli.main(["bench", "--quick", "--contenders", "gateway"]) == 0  # leading options reach gateway.bench
    assert seen == [[], ["--quick", "--contenders", "gateway"]]


def test_run_without_credentials_names_the_missing_key(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("ZM_RTMS_CLIENT", "ZM_RTMS_SECRET", "ZM_RTMS_WEBHOOK_SECRET"):
        monkeypatch.delenv(name, raising=False)
    assert cli.main(["run", "--config", str(ROOT / "examples" / "gateway.toml")]) == cli.EXIT_USAGE
    assert "credentials.client_id" in capsys.readouterr().err


def test_run_with_bad_config_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[server]\nport = -1\n")
    assert cli.main(["run", "--config", str(bad)]) == cli.EXIT_USAGE
    assert "server.port" in capsys.readouterr().err


CLI_CREDS = {"ZM_RTMS_CLIENT": "cli-client", "ZM_RTMS_SECRET": "cli-client-secret-zz", "ZM_RTMS_WEBHOOK_SECRET": "cli-webhook-secret-zz"}


def start_gateway_run(extra_env: dict[str, str] | None = None) -> tuple[subprocess.Popen[str], int, str]:
    """``gateway run`` on a free port; returns the process, its port and the start-up log."""
    env = {**native_env(), **CLI_CREDS, **(extra_env or {})}
    proc = subprocess.Popen(
        [sys.executable, "-m", "gateway", "run", "--config", str(ROOT / "examples" / "gateway.toml"), "--port", "0"],
        cwd=ROOT,
        env=env,
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
    )
    lines: list[str] = []
    port = 0
    assert proc.stderr is not None
    for _ in range(200):  # bounded: start-up is a handful of lines
        line = proc.stderr.readline()
        if not line:
            break
        lines.append(line)
        m = re.search(r"listening on http://127\.0\.0\.1:(\d+)", line)
        if m:
            port = int(m.group(1))
        if "publish:" in line:
            break
    if not port:
        proc.kill()
        proc.wait()
        raise AssertionError("".join(lines))
    return proc, port, "".join(lines)


def test_gateway_run_serves_logs_startup_and_stops_on_sigterm() -> None:
    proc, port, text = start_gateway_run()
    try:
        assert "POST /webhook" in text and "/metrics" in text
        assert "media parser:" in text
        # CRC answer from the real process, HMAC computed here independently
        body = orjson.dumps({"event": "endpoint.url_validation", "event_ts": 1, "payload": {"plainToken": "abc123"}})
        ts = str(int(time.time()))
        sig = "v0=" + hmac.new(b"cli-webhook-secret-zz", f"v0:{ts}:".encode() + body, hashlib.sha256).hexdigest()
        req = urllib.request.Request(f"http://127.0.0.1:{port}/webhook", data=body, headers={"x-zm-signature": sig, "x-zm-request-timestamp": ts, "content-type": "application/json"})
        with urllib.request.urlopen(req, timeout=10) as resp:
            answer = orjson.loads(resp.read())
        assert answer["encryptedToken"] == hmac.new(b"cli-webhook-secret-zz", b"abc123", hashlib.sha256).hexdigest()
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as resp:
            metrics = resp.read().decode()
        assert 'rtms_webhook_requests_total{result="url_validation"} 1.0' in metrics
        proc.send_signal(signal.SIGTERM)
        rest = proc.communicate(timeout=30)[1]
        text += rest
        assert proc.returncode == 0, text
        assert "stopped cleanly" in text
        assert "cli-client-secret-zz" not in text and "cli-webhook-secret-zz" not in text
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_gateway_sim_drives_gateway_run_across_processes() -> None:
    """The production shape: two processes, signed webhooks over HTTP, media over WebSockets."""
    proc, port, _ = start_gateway_run()
    try:
        sim = subprocess.run(
            [sys.executable, "-m", "gateway", "sim", "--webhook-url", f"http://127.0.0.1:{port}/webhook", "--meetings", "2", "--seconds", "3"],
            cwd=ROOT,
            env={**native_env(), **CLI_CREDS},
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert sim.returncode == 0, sim.stdout + sim.stderr
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as resp:
            metrics = resp.read().decode()
        frames = re.search(r'^rtms_media_frames_total\{kind="audio"\} (\S+)', metrics, re.M)
        assert frames and float(frames.group(1)) > 0, metrics
        assert 'rtms_sessions_started_total 2.0' in metrics
        assert 'rtms_webhook_requests_total{result="accepted"}' in metrics
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=30)
        assert proc.returncode == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_sigterm_with_live_streams_closes_them_and_exits_zero(tmp_path: Path) -> None:
    from gateway import client

    shm_env = {"GATEWAY_PUBLISH_SHM": "true", "GATEWAY_PUBLISH_SHM_DIR": str(tmp_path), "GATEWAY_PUBLISH_SHM_PREFIX": "cli-run"}
    proc, port, startup = start_gateway_run(shm_env)
    assert "publish: shared memory" in startup
    sim = subprocess.Popen(
        [sys.executable, "-m", "gateway", "sim", "--webhook-url", f"http://127.0.0.1:{port}/webhook", "--meetings", "2", "--seconds", "60"],
        cwd=ROOT,
        env={**native_env(), **CLI_CREDS},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        active = 0.0
        for _ in range(300):  # bounded poll (up to ~30 s) until both streams carry audio
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/streams", timeout=10) as resp:
                doc = orjson.loads(resp.read())
            active = sum(1 for s in doc["streams"] if s["stats"].get("frames", {}).get("audio", 0) > 0)
            if active == 2:
                break
            time.sleep(0.1)
        assert active == 2
        assert len(client.list_streams("cli-run", str(tmp_path))) == 2  # published for consumers
        proc.send_signal(signal.SIGTERM)
        err = proc.communicate(timeout=60)[1]
        assert proc.returncode == 0, err
        assert "closing 2 stream(s)" in err and "stopped cleanly" in err
        assert list(tmp_path.iterdir()) == []  # every segment and the directory removed
    finally:
        for p in (proc, sim):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()


def test_json_logging_is_one_object_per_line(capsys: pytest.CaptureFixture[str]) -> None:
    import logging

    from gateway.log import setup_logging

    root = logging.getLogger()
    saved = (root.level, list(root.handlers))
    try:
        setup_logging("INFO", json=True)
        setup_logging("INFO", json=True)  # idempotent: still one gateway handler
        logging.getLogger("gateway.test").info("hello %s", "world")
        lines = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
        assert len(lines) == 1
        doc = orjson.loads(lines[0])
        assert doc["message"] == "hello world" and doc["level"] == "INFO" and doc["logger"] == "gateway.test"
    finally:
        for handler in list(root.handlers):
            if handler not in saved[1]:
                root.removeHandler(handler)
        root.setLevel(saved[0])


def test_bench_runs_a_named_benchmark_with_its_arguments(monkeypatch: pytest.MonkeyPatch) -> None:
    import types

    seen: list[list[str]] = []
    fake = types.ModuleType("fake_bench_module")
    fake.main = lambda: seen.append(list(sys.argv)) or 0  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "fake_bench_module", fake)
    real_load = cli._load
    monkeypatch.setattr(cli, "_load", lambda name: None if name == "benchmarks.run" else real_load(name))
    monkeypatch.setattr(cli, "_individual_benchmarks", lambda: {"fake": "fake_bench_module"})
    assert cli.main(["bench", "fake", "--json", "--seconds", "1"]) == 0
    assert seen == [["gateway bench fake", "--json", "--seconds", "1"]]


async def test_gateway_tap_sees_the_streams_a_gateway_publishes(sim_factory, monkeypatch: pytest.MonkeyPatch) -> None:
    import asyncio
    import dataclasses

    from gateway.app import Gateway
    from gateway.config import PublishConfig, SessionsConfig
    from tests.gateway.test_app_fakes import CLIENT_SECRET, WEBHOOK_SECRET, make_config

    prefix = f"tap-test-{os.getpid()}"
    config = make_config(sessions=SessionsConfig(media_kinds=("audio", "transcript")))
    config = dataclasses.replace(config, publish=PublishConfig(shm=True, shm_prefix=prefix))
    env = native_env()
    if env.get("GATEWAY_PURE"):
        import gateway.listener

        monkeypatch.setattr(gateway.listener, "IMPLEMENTATION", "pure")
    async with Gateway(config) as gw:
        sim = await sim_factory(client_id="client-id-1", client_secret=CLIENT_SECRET, webhook_secret=WEBHOOK_SECRET, webhook_url=gw.webhook_url)
        stream = sim.create_stream()
        from tests.gateway.conftest import wait_for

        await wait_for(lambda: stream.stream_id in gw.streams and gw.streams[stream.stream_id].stats().get("frames", {}).get("audio", 0) > 5, timeout_s=20)
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "gateway", "tap", "--prefix", prefix, "--once", cwd=ROOT, env=env,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(proc.communicate(), 60)
        assert proc.returncode == 0, err.decode()
        assert stream.stream_id[:8] in out.decode()
        stream.terminate()
        await wait_for(lambda: not gw.streams, timeout_s=15)
