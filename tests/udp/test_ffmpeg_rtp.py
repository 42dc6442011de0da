"""ffmpeg as the RTP receiver: it reads the gateway's SDP and records a simulated meeting.

simulator -> gateway (shared memory + media follower) -> RTP/UDP on loopback -> ffmpeg -> WAV + H.264
file. The recorded audio must be the simulator's mixed signal sample for sample (L16 is lossless;
silent ticks are zeros on the media clock) with each speaker's tone in its spectrum, and the video
must decode into consecutive frames whose drawn counters are the simulator's frame numbers.

ffmpeg is required: ``.ci/run`` installs it (Debian package); this test fails without it.
"""

from __future__ import annotations

import asyncio
import shutil
import socket
import wave
from dataclasses import replace
from typing import Any

import av
import numpy as np

from gateway.app import Gateway
from gateway.config import PublishConfig, SessionsConfig
from gateway.sim.content import participant_tone_hz, read_frame_counter
from gateway.udp import UdpConfig, sdp_path
from tests.gateway.conftest import wait_for
from tests.gateway.test_app_fakes import CLIENT_SECRET, WEBHOOK_SECRET, make_config

FPS = 10
RATE = 16000
RECORD_S = 4


def _free_even_ports(count: int) -> int:
    """An even port with ``count`` consecutive free UDP ports (RTP/RTCP pairs) on loopback."""
    for _ in range(200):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(("127.0.0.1", 0))
        base = s.getsockname()[1] & ~1
        s.close()
        if base + count > 65535:
            continue
        socks = []
        try:
            for p in range(base, base + count):
                t = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                socks.append(t)
                t.bind(("127.0.0.1", p))
            return base
        except OSError:
            continue
        finally:
            for t in socks:
                t.close()
    raise RuntimeError("no free UDP ports")


def _read(path: str) -> str | None:
    try:
        with open(path, encoding="ascii") as fh:
            return fh.read()
    except FileNotFoundError:
        return None


async def test_ffmpeg_records_the_meeting_from_the_gateways_rtp(sim_factory: Any, tmp_path: Any, prefix: str) -> None:
    ffmpeg = shutil.which("ffmpeg")
    assert ffmpeg is not None, "ffmpeg is required (apt-get install ffmpeg; .ci/run installs it)"
    base = _free_even_ports(4)
    sessions = SessionsConfig(media_kinds=("audio", "video"),
                              media_params={"audio": {"data_opt": 1}, "video": {"codec": 7, "fps": FPS, "resolution": 1}})
    config = replace(make_config(sessions=sessions), publish=PublishConfig(shm=True, shm_dir=str(tmp_path), shm_prefix=prefix),
                     udp=UdpConfig(enabled=True, base_port=base, kinds=("audio", "video"), sdp_dir=str(tmp_path)))
    wav_path, video_path = str(tmp_path / "out.wav"), str(tmp_path / "out.h264")
    gw = Gateway(config)
    await gw.start()
    sim = await sim_factory(client_id="client-id-1", client_secret=CLIENT_SECRET, webhook_secret=WEBHOOK_SECRET, webhook_url=gw.webhook_url)
    proc = None
    try:
        stream = sim.create_stream()
        sdp = sdp_path(str(tmp_path), stream.stream_id)
        await wait_for(lambda: _read(sdp) is not None, timeout_s=20)
        text = _read(sdp) or ""
        assert f"m=audio {base} RTP/AVP 96" in text and f"m=video {base + 2} RTP/AVP 97" in text
        proc = await asyncio.create_subprocess_exec(
            ffmpeg, "-hide_banner", "-loglevel", "warning", "-nostdin", "-y", "-protocol_whitelist", "file,udp,rtp",
            "-t", str(RECORD_S), "-i", sdp, "-map", "0:a", "-c:a", "pcm_s16le", wav_path, "-map", "0:v", "-c:v", "copy", video_path,
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
        try:
            _, err = await asyncio.wait_for(proc.communicate(), 60)
        except TimeoutError:
            proc.kill()
            _, err = await proc.communicate()
            raise AssertionError(f"ffmpeg did not finish: {err.decode(errors='replace')[-2000:]}") from None
        assert proc.returncode == 0, err.decode(errors="replace")
        stream.terminate()
        await wait_for(lambda: not gw.streams, timeout_s=20)
    finally:
        if proc is not None and proc.returncode is None:
            proc.kill()
            await proc.wait()
        await gw.close()
    await wait_for(lambda: _read(sdp) is None, timeout_s=10)  # removed with the stream (by its follower)

    # audio: exactly the simulator's mixed signal on the media clock (zeros where nobody spoke)
    with wave.open(wav_path, "rb") as w:
        assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (RATE, 1, 2)
        recorded = np.frombuffer(w.readframes(w.getnframes()), "<i2")
    assert len(recorded) >= RATE * (RECORD_S - 1)
    packets = sorted(stream.sent.audio[0])
    t0 = packets[0][0]
    timeline = np.zeros((packets[-1][0] - t0) * RATE // 1000 + RATE, "<i2")
    for ts, payload in packets:
        pcm = np.frombuffer(payload, "<i2")
        start = (ts - t0) * RATE // 1000
        timeline[start : start + len(pcm)] = pcm
    # a pure tone repeats: try every position where the first sounding 20 ms match, keep the best
    first = int(np.argmax(recorded != 0))
    probe = recorded[first : first + 320].tobytes()
    flat = timeline.tobytes()
    best = (0, 0, 0)
    hit = flat.find(probe)
    while hit >= 0:
        offset = hit // 2 - first
        if hit % 2 == 0 and offset >= 0:
            n = min(len(recorded), len(timeline) - offset)
            best = max(best, (int(np.count_nonzero(recorded[:n] == timeline[offset : offset + n])), n, offset))
        hit = flat.find(probe, hit + 1)
    equal, n, offset = best
    bad = np.nonzero(recorded[:n] != timeline[offset : offset + n])[0]
    assert n >= RATE * (RECORD_S - 1), "recorded audio is not the simulator's signal"
    # loopback UDP may lose a packet on a loaded machine (UDP semantics); anything else is a real mismatch
    assert equal / n > 0.97, f"only {equal}/{n} samples match; first/last differing {bad[:3]} {bad[-3:]}"
    power = np.abs(np.fft.rfft(recorded.astype(np.float64))) ** 2
    freqs = np.fft.rfftfreq(len(recorded), 1 / RATE)
    tones = [participant_tone_hz(i) for i in range(3)]
    near = np.zeros(len(freqs), bool)
    for tone in tones:
        near |= np.abs(freqs - tone) <= 10
    assert power[near].sum() / power.sum() > 0.9  # the speakers' tones and nothing else
    assert min(abs(freqs[int(np.argmax(power))] - t) for t in tones) <= 1

    # video: every recorded picture decodes, and the counters run on without a hole
    container = av.open(video_path)
    counters = [read_frame_counter(f.to_ndarray(format="rgb24")) for f in container.decode(video=0)]
    container.close()
    assert len(counters) >= (RECORD_S - 2) * FPS  # ffmpeg starts at a key frame (every 2 s)
    assert counters == list(range(counters[0], counters[0] + len(counters)))
    sent = {(ts - stream.started_ms) * FPS // 1000 for packets in stream.sent.video.values() for ts, _ in packets}
    assert set(counters) <= sent
