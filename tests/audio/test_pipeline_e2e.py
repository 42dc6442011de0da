"""Acceptance, end to end: simulator -> real Gateway (publish.shm + audio engine) -> consumer process.

Three speakers send multi-stream L16 16 kHz (data_opt 2) with a 3 s startup burst and then live
audio; the simulator drops, duplicates and reorders chosen packets. A consumer in another process
(``tests.audio.ring_dump_proc``, gateway.client only) follows every ring until the stream ends and
saves what it read. Then, against the simulator's known content and its record of every fault:

* each participant's ring holds exactly its signal, at the sample positions its timestamps give
  on the one media clock (so simultaneous speech lines up with zero offset);
* every sample no delivered packet covered -- silent turns and each dropped packet -- is a marked
  gap, at exactly that packet's samples; duplicates add no sample; reordered packets land in place;
* the mixed ring is the saturating sum of the participants, gap where nobody had audio;
* the 16 kHz float32 format rings are the mix and each participant scaled to +-1.0; the 48 kHz float32 ring keeps each
  tone's frequency and level (SNR against the analytic 48 kHz signal asserted > 60 dB; 84.6 dB measured);
* G.711 end to end: each ring holds exactly the A-law decode of the simulator's encoding;
* Opus 48 kHz stereo end to end: gaps exactly per packet, each speaker's tone at >= 30 dB SNR.
"""

from __future__ import annotations

import asyncio
import os
import sys
from dataclasses import replace
from typing import Any

import numpy as np

from gateway.app import Gateway
from gateway.config import AudioSettings, PublishConfig, SessionsConfig
from gateway.protocol import AudioParams, Codec, DataOption, SampleRate
from gateway.sim.codecs import alaw_decode, alaw_encode
from gateway.sim.content import MeetingContent
from tests.audio.helpers import expected_int16
from tests.audio.test_codecs import CODEC_LAG, CODEC_SNR_DB, steady_snr_db
from tests.gateway.conftest import sim_factory, wait_for  # noqa: F401 - fixture used by name
from tests.gateway.test_app_fakes import CLIENT_SECRET, WEBHOOK_SECRET, make_config

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MEDIA_MS = 4600  # media time the test waits for (3 s burst + ~1.6 s live)


class Ring:
    """One ring as the consumer read it: frames ``[first, end)``, gap mask, frames lost."""

    def __init__(self, npz: Any, key: str) -> None:
        self.first = int(npz[f"{key}.first"])
        self.data = npz[f"{key}.data"]
        self.end = self.first + len(self.data)
        self.lost = int(npz[f"{key}.lost"])
        self.gap = np.zeros(len(self.data), bool)
        for start, length in npz[f"{key}.gaps"]:
            self.gap[start - self.first : start - self.first + length] = True

    def window(self, a: int, b: int, fill_gap: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """(data, gap) over absolute ``[a, b)``; outside the ring: zeros and gap."""
        shape = (b - a, *self.data.shape[1:])
        data, gap = np.zeros(shape, self.data.dtype), np.full(b - a, fill_gap)
        lo, hi = max(a, self.first), min(b, self.end)
        if lo < hi:
            data[lo - a : hi - a] = self.data[lo - self.first : hi - self.first]
            gap[lo - a : hi - a] = self.gap[lo - self.first : hi - self.first]
        return data, gap


async def run_meeting(sim_factory: Any, tmp_path: Any, content: MeetingContent, audio: dict[str, Any], settings: AudioSettings,  # noqa: F811
                      faults: Any = None) -> tuple[Any, Any, dict[str, Any]]:
    """One stream through the gateway; returns (sim stream, the consumer's npz, the engine's counters)."""
    shm_dir, prefix = str(tmp_path), f"rtms-pipe-{os.getpid()}"
    config = make_config(sessions=SessionsConfig(media_kinds=("audio",), media_params={"audio": audio}))
    config = replace(config, publish=PublishConfig(shm=True, shm_dir=shm_dir, shm_prefix=prefix), audio=settings)
    gw = Gateway(config)
    ended: list[dict[str, Any]] = []
    gw.event_listeners.append(lambda sid, doc: ended.append(doc) if doc.get("type") == "stream_ended" else None)
    await gw.start()
    sim = await sim_factory(client_id="client-id-1", client_secret=CLIENT_SECRET, webhook_secret=WEBHOOK_SECRET, webhook_url=gw.webhook_url)
    proc = None
    out_path = os.path.join(str(tmp_path), "rings.npz")
    try:
        stream = sim.create_stream(content=content, backlog_ms=3000)
        if faults is not None:
            faults(stream)  # before any audio is produced (the client has not even connected yet)
        from gateway import client

        await wait_for(lambda: len(client.list_streams(prefix, shm_dir)) == 1, timeout_s=20)
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "tests.audio.ring_dump_proc", prefix, stream.stream_id, out_path, cwd=ROOT,
            stdout=asyncio.subprocess.PIPE, env={**os.environ, "RTMS_SHM_DIR": shm_dir})
        assert proc.stdout is not None
        assert (await asyncio.wait_for(proc.stdout.readline(), 60)).strip() == b"ready"
        last = lambda: max((ts for packets in stream.sent.audio.values() for ts, _ in packets), default=0)  # noqa: E731
        await wait_for(lambda: last() - stream.started_ms >= MEDIA_MS, timeout_s=30)
        stream.pause()  # nothing more is produced; let the gateway take in what was sent
        sent = stream.sent.media_counts.get("audio", 0)
        await wait_for(lambda: gw.streams[stream.stream_id].stats().get("frames", {}).get("audio", 0) >= sent, timeout_s=20)
        stream.terminate()
        await wait_for(lambda: not gw.streams, timeout_s=20)
        out, _ = await asyncio.wait_for(proc.communicate(), 60)
        assert proc.returncode == 0 and out.strip().endswith(b"done"), out
    finally:
        if proc is not None and proc.returncode is None:
            proc.kill()
            await proc.wait()
        await gw.close()
    assert os.listdir(shm_dir) == ["rings.npz"]  # segments and directory removed
    assert len(ended) == 1 and ended[0]["outcome"] == "closed"
    return stream, np.load(out_path), ended[0]["stats"]["audio_engine"]


def pick_faults(content: MeetingContent, params: AudioParams) -> dict[str, list[tuple[int, int]]]:
    """Media times (user, t_ms) to drop / duplicate / swap / delay by 2, all inside a speaker's turn."""
    talk: dict[int, set[int]] = {}
    for t in range(0, MEDIA_MS - 400, 20):
        for uid, _, _ in content.audio_packets(params, t):
            talk.setdefault(uid, set()).add(t)
    users = sorted(talk)
    chosen: dict[str, list[tuple[int, int]]] = {"drop": [], "duplicate": [], "swap": [], "delay2": []}
    used: set[int] = set()
    order = [("drop", 1), ("drop", 1), ("duplicate", 1), ("swap", 2), ("delay2", 3), ("drop", 1), ("duplicate", 1), ("swap", 2)]
    for k, (kind, need) in enumerate(order):
        candidates = [
            (t, uid) for uid in users[k % len(users) :] + users[: k % len(users)] for t in sorted(talk[uid])
            if t >= 300 + 200 * k and all(t + 20 * j in talk[uid] for j in range(need + 1)) and not used & set(range(t - 100, t + 20 * need + 100, 20))
        ]
        if candidates:
            t, uid = candidates[0]
            chosen[kind].append((uid, t))
            used.update(range(t - 100, t + 20 * need + 100, 20))
    assert sum(len(v) for v in chosen.values()) == len(order), chosen
    chosen["drop"].append((users[0], max(talk[users[0]])))  # ... and the last packet of a turn
    return chosen


async def test_three_speakers_faults_mix_and_formats_reach_a_consumer_exactly(sim_factory: Any, tmp_path: Any) -> None:  # noqa: F811
    rate, spp = 16000, 320
    params = AudioParams(data_opt=DataOption.AUDIO_MULTI_STREAMS)
    content = MeetingContent(3, seed=23, late_join_ms=None, leave_ms=None)
    chosen = pick_faults(content, params)

    def faults(stream: Any) -> None:
        t0, f = stream.started_ms, stream.faults.audio
        f.drop = {(u, t0 + t) for u, t in chosen["drop"]}
        f.duplicate = {(u, t0 + t) for u, t in chosen["duplicate"]}
        f.swap = {(u, t0 + t) for u, t in chosen["swap"]}
        f.delay = {(u, t0 + t): 2 for u, t in chosen["delay2"]}

    settings = AudioSettings(formats=("16000:float32:1", "48000:float32:1", "each:16000:float32:1"))
    stream, npz, stats = await run_meeting(sim_factory, tmp_path, content, {"data_opt": 2}, settings, faults)
    sent = stream.sent
    assert len(sent.audio_dropped) == 4 and len(sent.audio_duplicated) == 2 and len(sent.audio_reordered) == 3
    # the engine saw every fault: duplicates dropped, reordered packets taken in, nothing arrived too late
    assert stats["duplicates"] == 2 and stats["reorders"] == 3 and stats["late_packets"] == 0 and stats["decode_errors"] == 0
    origin = int(npz["origin_ms"])
    off = (origin - stream.started_ms) * rate // 1000  # content sample of ring index 0
    assert off < 0  # the clock starts one reorder window before the first packet
    users = sorted(sent.audio)
    assert len(users) == 3
    rings = {uid: Ring(npz, f"user_{uid}") for uid in users}
    mixed = Ring(npz, "user_0")
    a, b = mixed.first, mixed.end
    assert b - a > 4 * rate and all(r.lost == 0 for r in (*rings.values(), mixed))
    refs, received = {}, {}
    for uid, ring in rings.items():
        ref = expected_int16(content, uid, rate, 0, (b + off) * 1000 // rate + 20)
        covered = np.zeros(b - a, bool)
        for ts, _ in sent.audio[uid]:  # what went on the wire, duplicates and late ones included
            i = (ts - origin) * rate // 1000 - a
            covered[i : i + spp] = True
        expect = np.zeros(b - a, np.int16)
        expect[covered] = ref[np.arange(a, b)[covered] + off]
        data, gap = ring.window(a, b)
        np.testing.assert_array_equal(gap, ~covered, err_msg=f"user {uid}: gap marks")
        np.testing.assert_array_equal(data, expect, err_msg=f"user {uid}: samples")
        refs[uid], received[uid] = ref, (data.astype(np.int32), gap)
    for uid, t in sent.audio_dropped:  # each dropped packet: a marked hole exactly over its samples
        i = (t - origin) * rate // 1000
        data, gap = rings[uid].window(i - 1, i + spp + 1)
        assert gap[1:-1].all() and not data[1:-1].any() and np.abs(refs[uid][i + off : i + off + spp]).max() > 1000
        delivered = {ts for ts, _ in sent.audio[uid]}
        assert gap[0] == (t - 20 not in delivered) and gap[-1] == (t + 20 not in delivered)  # ends exactly there
    # simultaneous speech: every speaker of a multi-speaker tick has data at the same indices
    overlaps = [t for t in range(0, (b + off) * 1000 // rate - 20, 20) if len(content.speakers(t)) >= 2]
    assert len(overlaps) > 10
    for t in overlaps:
        i = t * rate // 1000 - off - a
        speakers = [content.participants[k].user_id for k in content.speakers(t)]
        for uid in speakers:
            seg, gap = received[uid][0][i : i + spp], received[uid][1][i : i + spp]
            if gap.any():
                continue  # a dropped packet
            lags = [int(np.dot(seg, refs[uid][i + off + d : i + off + d + spp].astype(np.int32))) for d in range(-8, 9)]
            assert int(np.argmax(lags)) == 8, f"user {uid} at {t} ms: best lag {int(np.argmax(lags)) - 8}"
    # the mix: saturating sum of what each participant delivered; gap only where nobody had audio
    total = np.clip(sum(d for d, _ in received.values()), -32768, 32767)
    np.testing.assert_array_equal(mixed.data, total.astype(np.int16))
    np.testing.assert_array_equal(mixed.gap, np.logical_and.reduce([g for _, g in received.values()]))
    assert not mixed.gap.all() and mixed.gap.any()
    # 16 kHz float32: the same mix scaled to +-1.0, gaps identical
    f16 = Ring(npz, "fmt_0_16000_float32_1")
    assert f16.data.dtype == np.float32 and f16.lost == 0
    d16, g16 = f16.window(a, b)
    mix_data, mix_gap = mixed.window(a, b)
    np.testing.assert_array_equal(d16, mix_data.astype(np.float32) / 32768.0)
    np.testing.assert_array_equal(g16, mix_gap)
    for uid, ring in rings.items():  # every participant as 16 kHz float32 too, from its own first frame
        fr = Ring(npz, f"fmt_{uid}_16000_float32_1")
        assert fr.first == ring.first and fr.end == ring.end and fr.lost == 0
        np.testing.assert_array_equal(fr.data, ring.data.astype(np.float32) / 32768.0)
        np.testing.assert_array_equal(fr.gap, ring.gap)
    # 48 kHz float32: frequencies and levels kept (against the analytic 48 kHz mix)
    f48 = Ring(npz, "fmt_0_48000_float32_1")
    assert f48.data.dtype == np.float32 and f48.lost == 0 and f48.first == 3 * a
    ref48 = content.expected_pcm(0, 48000, 0, (b + off) * 1000 // rate)
    steady = np.zeros(3 * (b - a), bool)  # 48 kHz samples 10 ms away from any change of speakers, drop or gap
    ticks = [tuple(content.speakers(t)) for t in range(0, (b + off) * 1000 // rate, 20)]
    dropped_at = {t - stream.started_ms for _, t in sent.audio_dropped}
    for k in range(1, len(ticks) - 1):
        if ticks[k] and ticks[k - 1] == ticks[k] == ticks[k + 1] and not dropped_at & {20 * (k - 1), 20 * k, 20 * (k + 1)}:
            j = (20 * k * 48 - 3 * off) - 3 * a
            if 0 <= j and j + 960 <= len(steady):
                steady[j : j + 960] = True
    assert steady.sum() > 48000
    y, _ = f48.window(3 * a, 3 * b)
    ref_y = ref48[np.arange(3 * a, 3 * b) + 3 * off]
    snr = 10 * np.log10(np.sum(ref_y[steady] ** 2) / np.sum((y[steady] - ref_y[steady]) ** 2))
    assert snr > 60.0, f"48 kHz float32 SNR {snr:.1f} dB"
    solo = [k for k in range(1, len(ticks) - 5) if len(ticks[k]) == 1 and all(ticks[k + j] == ticks[k] for j in range(-1, 6))]
    k = solo[len(solo) // 2]  # 100 ms of one speaker: its tone, at its level
    j = (20 * k * 48 - 3 * off) - 3 * a
    seg, seg_ref = y[j : j + 4800], ref_y[j : j + 4800]
    peak_hz = np.argmax(np.abs(np.fft.rfft(seg * np.hanning(4800)))) * 48000 / 4800
    assert peak_hz == content.participants[ticks[k][0]].tone_hz
    assert abs(20 * np.log10(np.sqrt(np.mean(seg**2)) / np.sqrt(np.mean(seg_ref**2)))) < 0.05


async def test_g711_meeting_decoded_into_pcm_rings(sim_factory: Any, tmp_path: Any) -> None:  # noqa: F811
    rate, spp = 8000, 160
    content = MeetingContent(3, seed=5, late_join_ms=None, leave_ms=None)
    audio = {"codec": int(Codec.G711), "sample_rate": int(SampleRate.SR_8K), "data_opt": 2}
    stream, npz, stats = await run_meeting(sim_factory, tmp_path, content, audio, AudioSettings())
    assert stats["decode_errors"] == 0 and stats["duplicates"] == 0 and stats["late_packets"] == 0
    origin = int(npz["origin_ms"])
    off = (origin - stream.started_ms) * rate // 1000
    mixed = Ring(npz, "user_0")
    a, b = mixed.first, mixed.end
    total = np.zeros(b - a, np.int32)
    for uid, packets in stream.sent.audio.items():
        ring = Ring(npz, f"user_{uid}")
        ref = expected_int16(content, uid, rate, 0, (b + off) * 1000 // rate + 20)
        expect = np.zeros(b - a, np.int16)
        covered = np.zeros(b - a, bool)
        for ts, payload in packets:
            i = (ts - origin) * rate // 1000 - a
            np.testing.assert_array_equal(alaw_decode(payload), alaw_decode(alaw_encode(ref[i + a + off : i + a + off + spp])))
            expect[i : i + spp] = alaw_decode(payload)
            covered[i : i + spp] = True
        data, gap = ring.window(a, b)
        np.testing.assert_array_equal(data, expect, err_msg=f"user {uid}")
        np.testing.assert_array_equal(gap, ~covered)
        total += data
    np.testing.assert_array_equal(mixed.data, np.clip(total, -32768, 32767).astype(np.int16))


async def test_opus_stereo_meeting_decoded_into_pcm_rings(sim_factory: Any, tmp_path: Any) -> None:  # noqa: F811
    """The official SDK's default codec (Opus 48 kHz stereo), per speaker, through the gateway."""
    rate, spp = 48000, 960
    content = MeetingContent(3, seed=9, late_join_ms=None, leave_ms=None)
    audio = {"codec": int(Codec.OPUS), "sample_rate": int(SampleRate.SR_48K), "channel": 2, "data_opt": 2}
    stream, npz, stats = await run_meeting(sim_factory, tmp_path, content, audio, AudioSettings())
    assert stats["decode_errors"] == 0 and stats["late_packets"] == 0
    origin = int(npz["origin_ms"])
    off = (origin - stream.started_ms) * rate // 1000
    mixed = Ring(npz, "user_0")
    a, b = mixed.first, mixed.end
    assert mixed.data.shape[1:] == (2,)
    for uid, packets in stream.sent.audio.items():
        data, gap = Ring(npz, f"user_{uid}").window(a, b)
        covered = np.zeros(b - a, bool)
        for ts, _ in packets:
            i = (ts - origin) * rate // 1000 - a
            covered[i : i + spp] = True
        np.testing.assert_array_equal(gap, ~covered, err_msg=f"user {uid}: gap marks")  # one packet = its 20 ms, exactly
        np.testing.assert_array_equal(data[:, 0], data[:, 1])  # a mono voice in both channels
        ref = np.zeros(b - a)  # content samples of ring indices [a, b) (none before media time 0)
        lo = max(a + off, 0)
        ref[lo - a - off :] = expected_int16(content, uid, rate, 0, (b + off) * 1000 // rate + 20)[lo : b + off]
        lag = CODEC_LAG[Codec.OPUS]
        snr = steady_snr_db(data[lag:, 0].astype(np.float64), ref[: len(ref) - lag], covered[: len(ref) - lag], 100 * rate // 1000)
        assert snr >= CODEC_SNR_DB[Codec.OPUS], f"user {uid}: SNR {snr:.1f} dB"
