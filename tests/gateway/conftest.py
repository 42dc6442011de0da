"""Shared fixtures for gateway tests: uvloop, a running simulator, a recording sink, resource counts.

Kept generic on purpose (session, webhook and app tests all use them):

* ``pytest_asyncio_loop_factories``: every async test in this folder runs on uvloop, like the gateway.
* ``sim`` / ``sim_factory``: simulators on loopback port 0 with fast timers (``FAST_SIM``).
* :class:`RecordingSink`: a :class:`gateway.sink.MediaSink` that keeps copies of everything.
* :func:`open_fds` / :func:`other_tasks`: resource counts for leak assertions.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
import uvloop

from gateway import protocol
from gateway.protocol import MediaMessage, WebhookKind
from gateway.sim.server import SimConfig, SimStream, Simulator

#: Simulator settings that make keep-alives and reconnection windows fast (x0.05: keep-alive
#: every 0.5 s, signaling window 3 s, media window 3.25 s). Media itself stays real-time.
FAST_SIM: dict[str, Any] = {"time_scale": 0.05, "participants": 3}


def pytest_asyncio_loop_factories(config: pytest.Config, item: pytest.Item) -> dict[str, Callable[[], asyncio.AbstractEventLoop]]:
    """Every async test in this folder runs on uvloop, like the gateway."""
    return {"uvloop": uvloop.new_event_loop}


class RecordingSink:
    """Keeps a copy of every payload, per kind and user, for exact comparisons with the simulator."""

    def __init__(self) -> None:
        self.audio: dict[int, bytearray] = {}
        self.audio_packets: dict[int, list[tuple[int, bytes]]] = {}
        self.video: dict[int, list[tuple[int, bytes]]] = {}
        self.share: dict[int, list[tuple[int, bytes]]] = {}
        self.transcripts: list[MediaMessage] = []
        self.chats: list[MediaMessage] = []
        self.drops: list[tuple[str, str]] = []
        self.media_params: dict[str, Any] = {}
        self.frames = 0
        self.first_frame = asyncio.Event()

    def on_audio(self, user_id: int, user_name: str | None, timestamp: int, data: memoryview) -> None:
        payload = bytes(data)
        self.audio.setdefault(user_id, bytearray()).extend(payload)
        self.audio_packets.setdefault(user_id, []).append((timestamp, payload))
        self._count()

    def on_video(self, user_id: int, user_name: str | None, timestamp: int, data: memoryview) -> None:
        self.video.setdefault(user_id, []).append((timestamp, bytes(data)))
        self._count()

    def on_share(self, user_id: int, user_name: str | None, timestamp: int, data: memoryview) -> None:
        self.share.setdefault(user_id, []).append((timestamp, bytes(data)))
        self._count()

    def on_transcript(self, msg: MediaMessage) -> None:
        self.transcripts.append(msg)
        self._count()

    def on_chat(self, msg: MediaMessage) -> None:
        self.chats.append(msg)
        self._count()

    def on_drop(self, kind: str, reason: str) -> None:
        self.drops.append((kind, reason))

    def on_media_params(self, kind: str, params: Any) -> None:
        self.media_params[kind] = params

    def _count(self) -> None:
        self.frames += 1
        if not self.first_frame.is_set():
            self.first_frame.set()

    def audio_bytes(self) -> bytes:
        return b"".join(bytes(self.audio[u]) for u in sorted(self.audio))

    def transcript_texts(self) -> list[str]:
        return [str(m.data) for m in self.transcripts]


@pytest.fixture
def recording_sink() -> RecordingSink:
    return RecordingSink()


SimFactory = Callable[..., Awaitable[Simulator]]


@pytest.fixture
async def sim_factory() -> AsyncIterator[SimFactory]:
    """``await sim_factory(**SimConfig overrides)``: started simulators, all closed at teardown."""
    started: list[Simulator] = []

    async def make(**overrides: Any) -> Simulator:
        sim = Simulator(SimConfig(**{**FAST_SIM, **overrides}))
        await sim.start()
        started.append(sim)
        return sim

    yield make
    for sim in started:
        await sim.close()


@pytest.fixture
async def sim(sim_factory: SimFactory) -> Simulator:
    """One running simulator with fast timers (see ``FAST_SIM``)."""
    return await sim_factory()


def started_event(stream: SimStream) -> protocol.WebhookEvent:
    """The ``rtms_started`` webhook the simulator would POST for ``stream``, decoded."""
    return protocol.parse_webhook(stream.webhook_body(WebhookKind.STARTED))


def open_fds() -> int:
    """Open file descriptors of this process (sockets included)."""
    return len(os.listdir("/proc/self/fd"))


def _is_simulator_task(task: asyncio.Task[Any]) -> bool:
    code = getattr(task.get_coro(), "cr_code", None)
    return code is not None and "/gateway/sim/" in code.co_filename


def other_tasks(*, include_simulator: bool = False) -> set[asyncio.Task[Any]]:
    """Tasks on the running loop except the current one (and, by default, the simulator's own:
    its per-stream media pumps live as long as the simulated stream, not the client session)."""
    current = asyncio.current_task()
    return {
        t for t in asyncio.all_tasks() if t is not current and not t.done() and (include_simulator or not _is_simulator_task(t))
    }


async def wait_for(predicate: Callable[[], bool], *, timeout_s: float = 10.0, step_s: float = 0.01) -> None:
    """Poll ``predicate`` until true (bounded); raises ``TimeoutError`` with no wall-clock assertion."""
    async with asyncio.timeout(timeout_s):
        while not predicate():  # noqa: ASYNC110 - polls state owned by other objects
            await asyncio.sleep(step_s)


def pick_media_listener() -> Any:
    """The native media listener when the extension has it, else its pure-Python twin."""
    try:
        from gateway._native import MediaListener  # type: ignore[attr-defined]
    except ImportError:
        from gateway._native_py import MediaListener
    return MediaListener


@pytest.fixture
def media_listener() -> Any:
    return pick_media_listener()
