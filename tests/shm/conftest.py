"""Fixtures for shared-memory tests: a unique prefix per test, a directory, publisher factory.

Every test gets its own name prefix (iceoryx2's habit: isolated names), and teardown asserts
that nothing with that prefix is left in /dev/shm.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from gateway.protocol import AudioParams, VideoParams
from gateway.shm import ShmConfig, ShmDirectory, ShmPublisher

SHM_DIR = "/dev/shm"


def leftovers(prefix: str) -> list[str]:
    return sorted(n for n in os.listdir(SHM_DIR) if n.startswith(prefix + "."))


@pytest.fixture
def prefix() -> Iterator[str]:
    p = f"rtms-test-{uuid.uuid4().hex[:10]}"
    yield p
    left = leftovers(p)
    for name in left:
        os.unlink(os.path.join(SHM_DIR, name))
    assert left == [], f"segments left behind: {left}"


@pytest.fixture
def config(prefix: str) -> ShmConfig:
    return ShmConfig(prefix=prefix)


@pytest.fixture
def directory(config: ShmConfig) -> Iterator[ShmDirectory]:
    d = ShmDirectory(config)
    yield d
    d.close()


@pytest.fixture
def make_pub(directory: ShmDirectory) -> Callable[..., ShmPublisher]:
    """Publisher factory: ``make_pub(stream_id, **overrides)`` (config fields or params)."""

    def make(stream_id: str = "stream-1", *, audio: AudioParams | None = None, video: VideoParams | None = None,
             **kw: Any) -> ShmPublisher:
        cfg_fields = {k: kw.pop(k) for k in list(kw) if k in ShmConfig.__dataclass_fields__}
        cfg = ShmConfig(**{**{f: getattr(directory.config, f) for f in ShmConfig.__dataclass_fields__}, **cfg_fields})
        return ShmPublisher(stream_id, directory, config=cfg, audio=audio or AudioParams(), video=video, **kw)

    return make


def pcm(start: int, frames: int, channels: int = 1) -> bytes:
    """Deterministic int16 PCM whose sample values encode their frame index (mod 2**15)."""
    import numpy as np

    idx = np.arange(start, start + frames, dtype=np.int64)
    data = np.repeat(((idx * 7 + 3) % 32749).astype(np.int16)[:, None], channels, axis=1)
    data[:, 1:] = -data[:, 1:]
    return data.tobytes()
