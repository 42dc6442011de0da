"""Gateway restart (issue 6): live streams survive a crash through ``[server] state_file`` (gateway.state).

The end-to-end test kills a real ``gateway run`` process with SIGKILL while it serves a simulated
stream (no STREAM_CLOSE, no WebSocket close: the simulator sees an abrupt signaling loss), then a new
gateway on another port with the same state file receives the simulator's ``rtms_interrupted`` and
reattaches to the stored server URL inside the signaling window; media flows again.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import stat
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp import ClientSession

from gateway import client
from gateway.app import Gateway
from gateway.config import PublishConfig, SessionsConfig
from gateway.protocol import WebhookKind
from gateway.sim.server import Simulator
from gateway.state import SavedStream, StreamStateStore
from gateway.stats_sink import StatsSink
from tests.gateway.conftest import started_event, wait_for
from tests.gateway.test_app_fakes import CLIENT_SECRET, WEBHOOK_SECRET, make_config

pytestmark = pytest.mark.timeout(120, method="thread")

ROOT = Path(__file__).resolve().parents[2]
CLIENT_ID = "client-id-1"
SHM_PREFIX = "rtms-restart"
SESSIONS = {"media_kinds": ("audio", "transcript"), "media_params": {"audio": {"data_opt": 2}}}


def saved(stream_id: str = "s1", urls: str = "ws://127.0.0.1:1/signaling") -> SavedStream:
    return SavedStream("meeting", "inst==", "meeting_uuid", stream_id, urls, 1_700_000_000.5)


def file_streams(path: Path) -> dict[str, Any]:
    return dict(orjson.loads(path.read_bytes())["streams"])


# ---------------------------------------------------------------------- the store


def test_store_round_trip_is_atomic_and_private(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "streams.json"
    store = StreamStateStore(path)
    store.put(saved("a"))
    store.put(saved("b", "ws://127.0.0.1:2/x"))
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert sorted(file_streams(path)) == ["a", "b"]
    store.remove("a")
    assert sorted(file_streams(path)) == ["b"]
    assert [p.name for p in path.parent.iterdir()] == ["streams.json"]  # no temporary left behind
    again = StreamStateStore(path)
    assert again.load() == {"b": saved("b", "ws://127.0.0.1:2/x")}
    assert again.load()["b"].to_event().kind is WebhookKind.STARTED


def test_store_is_bounded_dropping_the_oldest(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    store = StreamStateStore(tmp_path / "s.json", max_entries=2)
    for sid in ("a", "b", "c"):
        store.put(saved(sid))
    assert sorted(file_streams(tmp_path / "s.json")) == ["b", "c"]
    assert "a will not survive a restart" in caplog.text


async def test_write_behind_coalesces_and_ends_with_the_newest_state(tmp_path: Path) -> None:
    path = tmp_path / "s.json"
    store = StreamStateStore(path)
    for i in range(50):  # a burst of starts and stops on the loop: written off the loop, newest wins
        store.put(saved(f"s{i}"))
        if i % 2:
            store.remove(f"s{i - 1}")
        if i % 10 == 0:
            await asyncio.sleep(0)
    await store.aclose()
    assert sorted(file_streams(path)) == sorted(store.entries()) == sorted(f"s{i}" for i in range(1, 50, 2))
    assert 1 <= store.writes < 50 and store.write_errors == 0


@pytest.mark.parametrize(
    "content",
    [b"\x00\xffnot json", b"[1, 2]", b'{"version": 99, "streams": {}}', b'{"version": 1, "streams": []}', b""],
)
def test_corrupt_state_file_is_logged_and_ignored(tmp_path: Path, caplog: pytest.LogCaptureFixture, content: bytes) -> None:
    path = tmp_path / "s.json"
    path.write_bytes(content)
    assert StreamStateStore(path).load() == {}
    assert "ignored" in caplog.text


def test_bad_entries_are_skipped_good_ones_kept(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    good = {"product": "meeting", "instance_id": "i", "instance_key": "meeting_uuid", "stream_id": "ok", "server_urls": "ws://h/x", "started_at": 1}
    doc = {
        "version": 1,
        "streams": {
            "ok": good,
            "bad_product": {**good, "stream_id": "bad_product", "product": "fax"},
            "no_urls": {**good, "stream_id": "no_urls", "server_urls": ""},
            "mismatch": {**good, "stream_id": "other"},
            "not_obj": 5,
        },
    }
    path = tmp_path / "s.json"
    path.write_bytes(orjson.dumps(doc))
    assert list(StreamStateStore(path).load()) == ["ok"]
    assert caplog.text.count("' skipped: ") == 4


# ---------------------------------------------------------------------- the gateway


async def test_gateway_starts_with_a_corrupt_state_file(tmp_path: Path) -> None:
    path = tmp_path / "s.json"
    path.write_bytes(b"{truncated")
    gw = Gateway(make_config(state_file=str(path)))
    await gw.start()
    try:
        assert gw.detached == {} and gw.status()["detached"] == []
    finally:
        await gw.close()


async def test_restored_streams_without_an_interruption_are_dropped(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "s.json"
    store = StreamStateStore(path)
    store.put(saved("gone"))  # inside a running loop: written on the next iteration, or now by flush()
    assert store.flush()
    gw = Gateway(make_config(state_file=str(path), state_window_s=0.2))
    await gw.start()
    try:
        assert list(gw.detached) == ["gone"]
        await wait_for(lambda: not gw.detached, timeout_s=10)
        await wait_for(lambda: file_streams(path) == {}, timeout_s=5)
        assert "no rtms_interrupted" in caplog.text
    finally:
        await gw.close()


async def test_started_and_stopped_streams_are_written_and_removed(sim_factory: Any, tmp_path: Path) -> None:
    path = tmp_path / "s.json"
    sinks: dict[str, StatsSink] = {}
    config = make_config(sessions=SessionsConfig(**SESSIONS), state_file=str(path))
    gw = Gateway(config, sink_factory=lambda ev: sinks.setdefault(ev.stream_id, StatsSink()))
    await gw.start()
    try:
        sim = await sim_factory(client_id=CLIENT_ID, client_secret=CLIENT_SECRET, webhook_secret=WEBHOOK_SECRET, webhook_url=gw.webhook_url)
        stream = sim.create_stream()
        await wait_for(lambda: stream.stream_id in gw.streams and path.exists() and stream.stream_id in file_streams(path), timeout_s=15)
        entry = file_streams(path)[stream.stream_id]
        event = started_event(stream)
        assert (entry["server_urls"], entry["instance_id"], entry["product"]) == (event.server_urls, event.instance_id, "meeting")
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        text = path.read_text()
        assert CLIENT_SECRET not in text and WEBHOOK_SECRET not in text  # targets only, never credentials
        stream.terminate()
        await wait_for(lambda: not gw.streams, timeout_s=15)
        await wait_for(lambda: file_streams(path) == {}, timeout_s=5)
    finally:
        await gw.close()


@pytest.mark.parametrize("kind", [WebhookKind.STARTED, WebhookKind.STOPPED])
async def test_started_or_stopped_for_a_restored_stream(sim_factory: Any, tmp_path: Path, kind: WebhookKind) -> None:
    """A fresh rtms_started for a restored stream starts it normally; rtms_stopped forgets it."""
    path = tmp_path / "s.json"
    sim = await sim_factory(client_id=CLIENT_ID, client_secret=CLIENT_SECRET, webhook_secret=WEBHOOK_SECRET)
    stream = sim.create_stream(webhook=False)
    store = StreamStateStore(path)
    store.put(SavedStream.from_webhook(started_event(stream)))
    assert store.flush()
    sinks: dict[str, StatsSink] = {}
    gw = Gateway(make_config(sessions=SessionsConfig(**SESSIONS), state_file=str(path)), sink_factory=lambda ev: sinks.setdefault(ev.stream_id, StatsSink()))
    await gw.start()
    try:
        assert list(gw.detached) == [stream.stream_id]
        sim.webhooks.url = gw.webhook_url
        (delivery,) = await sim.webhooks.post(stream.webhook_body(kind, stop_reason=None if kind is WebhookKind.STARTED else 6))
        assert delivery.status == 200 and gw.detached == {}
        action = "started" if kind is WebhookKind.STARTED else "stopped"
        assert gw.metrics.registry.get_sample_value("rtms_webhook_events_total", {"kind": kind.value, "action": action}) == 1
        if kind is WebhookKind.STARTED:
            await wait_for(lambda: stream.stream_id in sinks and sinks[stream.stream_id].frames["audio"] >= 3, timeout_s=20)
            assert gw.streams[stream.stream_id].interruptions == 0
            assert list(file_streams(path)) == [stream.stream_id]
        else:
            assert gw.streams == {}
            await wait_for(lambda: file_streams(path) == {}, timeout_s=5)
    finally:
        await gw.close()


# ---------------------------------------------------------------------- a real crash


def _gateway_process(tmp_path: Path, state_file: Path, shm_dir: Path | None) -> tuple[subprocess.Popen[bytes], Path]:
    """``gateway run`` with a state file (and shared memory in ``shm_dir``), in its own process; returns it and its log file."""
    toml = tmp_path / "a.toml"
    publish = f'[publish]\nshm = true\nshm_dir = "{shm_dir}"\nshm_prefix = "{SHM_PREFIX}"\n' if shm_dir else ""
    toml.write_text(
        f'[server]\nhost = "127.0.0.1"\nport = 0\nstate_file = "{state_file}"\n'
        '[sessions]\nmedia_kinds = ["audio", "transcript"]\n[sessions.media_params.audio]\ndata_opt = 2\n' + publish
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ZM_RTMS_", "GATEWAY_"))}
    env.update({"ZM_RTMS_CLIENT": CLIENT_ID, "ZM_RTMS_SECRET": CLIENT_SECRET, "ZM_RTMS_WEBHOOK_SECRET": WEBHOOK_SECRET})
    try:
        from gateway._native import MediaListener  # type: ignore[attr-defined]  # noqa: F401
    except ImportError:
        env["GATEWAY_PURE"] = "1"
    log_path = tmp_path / "a.log"
    with log_path.open("wb") as log_file:
        proc = subprocess.Popen([sys.executable, "-m", "gateway", "run", "--config", str(toml)], cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=log_file)
    return proc, log_path


async def _port_from_log(proc: subprocess.Popen[bytes], log_path: Path) -> int:
    found: list[int] = []

    def listening() -> bool:
        assert proc.poll() is None, log_path.read_text()
        m = re.search(r"listening on http://127\.0\.0\.1:(\d+)", log_path.read_text())
        if m:
            found.append(int(m.group(1)))
        return bool(found)

    await wait_for(listening, timeout_s=60, step_s=0.05)
    return found[0]


async def _frames(http: ClientSession, port: int, stream_id: str) -> int:
    async with http.get(f"http://127.0.0.1:{port}/streams") as resp:
        doc = await resp.json()
    for s in doc["streams"]:
        if s["stream_id"] == stream_id:
            return int(s["stats"].get("frames", {}).get("audio", 0))
    return 0


async def _wait_frames(http: ClientSession, port: int, stream_id: str, n: int) -> None:
    async with asyncio.timeout(30):
        while await _frames(http, port, stream_id) < n:  # noqa: ASYNC110 - polls another process
            await asyncio.sleep(0.05)


def _participant_rings(stream_id: str, shm_dir: Path) -> int:
    """Participant audio rings the stream's shared-memory segment has filled in (0: not listed)."""
    for info in client.list_streams(SHM_PREFIX, str(shm_dir)):
        if info.stream_id == stream_id:
            reader = client.attach(info, SHM_PREFIX, str(shm_dir))
            try:
                return len([r for r in reader.participants() if r.user_id])
            finally:
                reader.close()
    return 0


@pytest.mark.parametrize("shm", [False, True], ids=["counting-sink", "shared-memory"])
async def test_killed_gateway_is_replaced_and_the_stream_reattaches(sim_factory: Any, tmp_path: Path, shm: bool) -> None:
    state_file = tmp_path / "streams.json"
    shm_dir = tmp_path / "shm" if shm else None
    if shm_dir is not None:
        shm_dir.mkdir()
    proc, log_path = _gateway_process(tmp_path, state_file, shm_dir)
    gw_b: Gateway | None = None
    try:
        port_a = await _port_from_log(proc, log_path)
        # a long signaling window (scaled: 30 s) so a loaded machine never races it
        sim: Simulator = await sim_factory(
            client_id=CLIENT_ID, client_secret=CLIENT_SECRET, webhook_secret=WEBHOOK_SECRET, webhook_url=f"http://127.0.0.1:{port_a}/webhook", signaling_window_s=600.0
        )
        stream = sim.create_stream()
        async with ClientSession() as http:
            await _wait_frames(http, port_a, stream.stream_id, 5)  # gateway A receives media
        assert stream.stream_id in file_streams(state_file)
        assert stream.client.signaling_accepted == 1
        if shm_dir is not None:  # a consumer sees the stream's audio from gateway A
            await wait_for(lambda: _participant_rings(stream.stream_id, shm_dir) >= 1, timeout_s=20)
            (segment_a,) = [i.segment for i in client.list_streams(SHM_PREFIX, str(shm_dir))]

        # gateway B: same state file, new port; it restores the stream as detached (no sockets)
        sinks: dict[str, StatsSink] = {}
        config_b = make_config(sessions=SessionsConfig(**SESSIONS), state_file=str(state_file))
        if shm_dir is not None:  # same directory and prefix as A: B takes over A's stale directory
            gw_b = Gateway(replace(config_b, publish=PublishConfig(shm=True, shm_dir=str(shm_dir), shm_prefix=SHM_PREFIX)))
        else:
            gw_b = Gateway(config_b, sink_factory=lambda ev: sinks.setdefault(ev.stream_id, StatsSink()))
        await gw_b.start()
        assert list(gw_b.detached) == [stream.stream_id] and gw_b.streams == {}
        sim.webhooks.url = gw_b.webhook_url  # Zoom's webhook endpoint now reaches B

        proc.send_signal(signal.SIGKILL)  # a crash: no STREAM_CLOSE_REQ, no WebSocket close frame
        proc.wait(timeout=30)
        await wait_for(lambda: stream.stream_id in gw_b.streams, timeout_s=30)
        entry = gw_b.streams[stream.stream_id]
        assert entry.interruptions == 1 and gw_b.detached == {}
        assert entry.server_urls == started_event(stream).server_urls  # the stored URL, not the payload's
        await wait_for(lambda: int(entry.stats().get("frames", {}).get("audio", 0)) >= 5, timeout_s=30)
        if shm_dir is None:
            assert sinks[stream.stream_id].frames["audio"] >= 5
        else:  # the consumer finds the same stream id again, its audio now written by gateway B
            await wait_for(lambda: _participant_rings(stream.stream_id, shm_dir) >= 1, timeout_s=20)
            ((sid, segment_b),) = [(i.stream_id, i.segment) for i in client.list_streams(SHM_PREFIX, str(shm_dir))]
            assert sid == stream.stream_id and segment_b != segment_a and f".{proc.pid}." in segment_a  # B's segment; A's stale one is gone
            assert not (shm_dir / segment_a).exists()
        assert stream.client.signaling_accepted == 2 and not stream.terminated
        assert gw_b.metrics.registry.get_sample_value("rtms_webhook_events_total", {"kind": "interrupted", "action": "reattached"}) == 1
        assert stream.stream_id in file_streams(state_file)
        # and the reattached stream ends normally, leaving nothing behind
        stream.terminate()
        await wait_for(lambda: not gw_b.streams, timeout_s=15)
        await wait_for(lambda: file_streams(state_file) == {}, timeout_s=5)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)
        if gw_b is not None:
            await gw_b.close()
