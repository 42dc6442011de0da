"""Test doubles for the audio engine: a recording output that checks every stream stays contiguous."""

from __future__ import annotations

from typing import Any

import numpy as np

from gateway.protocol import AudioParams
from gateway.sim.content import MeetingContent

T0 = 1_738_392_033_000  # an epoch-ms stream start, as RTMS sends


class Stream:
    """One published stream: contiguous writes only (a repeated or skipped index fails the test)."""

    def __init__(self) -> None:
        self.start: int | None = None
        self.end = 0
        self.chunks: list[np.ndarray] = []
        self.gap_chunks: list[np.ndarray] = []

    def write(self, sample_index: int, pcm: np.ndarray, gap: bool) -> None:
        if self.start is None:
            self.start = self.end = sample_index
        assert sample_index == self.end, f"write at {sample_index}, expected {self.end}"
        assert len(pcm) > 0
        if gap:
            assert not np.any(pcm)
        self.chunks.append(np.array(pcm, copy=True))
        self.gap_chunks.append(np.full(len(pcm), gap))
        self.end += len(pcm)

    @property
    def pcm(self) -> np.ndarray:
        return np.concatenate(self.chunks)

    @property
    def gaps(self) -> np.ndarray:
        return np.concatenate(self.gap_chunks)

    def window(self, a: int, b: int) -> tuple[np.ndarray, np.ndarray]:
        """(pcm, gaps) for absolute indices [a, b), which must be covered."""
        assert self.start is not None and self.start <= a and b <= self.end, (a, b, self.start, self.end)
        return self.pcm[a - self.start : b - self.start], self.gaps[a - self.start : b - self.start]


class Recorder:
    """An AudioOutput that records everything."""

    def __init__(self) -> None:
        self.participants: dict[int, Stream] = {}
        self.mixed = Stream()

    def write_participant(self, user_id: int, sample_index: int, pcm: np.ndarray, gap: bool) -> None:
        self.participants.setdefault(user_id, Stream()).write(sample_index, pcm, gap)

    def write_mixed(self, sample_index: int, pcm: np.ndarray, gap: bool) -> None:
        self.mixed.write(sample_index, pcm, gap)


def meeting_packets(content: MeetingContent, params: AudioParams, t0_ms: int, t1_ms: int) -> list[tuple[int, str, int, bytes]]:
    """Every packet the simulator sends over [t0, t1) as (user_id, name, timestamp, payload), in order."""
    out = []
    for t in range(t0_ms, t1_ms, params.send_rate):
        for uid, name, payload in content.audio_packets(params, t):
            out.append((uid, name, T0 + t, payload))
    return out


def feed(engine: Any, packets: list[tuple[int, str, int, bytes]], *, final: bool = True) -> None:
    for uid, name, ts, payload in packets:
        engine.on_audio(uid, name, ts, memoryview(payload))
    engine.flush(final=final)


def expected_int16(content: MeetingContent, user_id: int, rate: int, t0_ms: int, t1_ms: int) -> np.ndarray:
    return np.round(content.expected_pcm(user_id, rate, t0_ms, t1_ms) * 32768).astype(np.int16)
