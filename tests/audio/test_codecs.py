"""Every RTMS audio codec through the engine, against the same known signal the simulator encodes."""

from __future__ import annotations

import av
import numpy as np
import pytest

from gateway.audio import AudioEngine
from gateway.codecs import ALAW_TABLE, ULAW_TABLE, AVDecoder, TableDecoder, make_decoder
from gateway.protocol import AudioParams, Codec, DataOption, SampleRate
from gateway.sim.codecs import alaw_decode, alaw_encode
from gateway.sim.content import MeetingContent
from tests.audio.helpers import T0, Recorder, expected_int16, feed, meeting_packets

MULTI = DataOption.AUDIO_MULTI_STREAMS
#: Decoder delay in samples (G.722 QMF filter bank; Opus look-ahead of 6.5 ms, no pre-skip on raw packets).
CODEC_LAG = {Codec.G711: 0, Codec.G722: 22, Codec.OPUS: 312}
CODEC_SNR_DB = {Codec.G711: 35.0, Codec.G722: 25.0, Codec.OPUS: 30.0}


def pyav_decode_all_codes(name: str) -> np.ndarray:
    ctx = av.CodecContext.create(name, "r")
    ctx.sample_rate = 8000
    ctx.layout = "mono"
    frames = ctx.decode(av.Packet(bytes(range(256))))
    return np.concatenate([f.to_ndarray().reshape(-1) for f in frames])


def test_g711_tables_match_ffmpeg_and_the_simulator() -> None:
    np.testing.assert_array_equal(ALAW_TABLE, pyav_decode_all_codes("pcm_alaw"))
    np.testing.assert_array_equal(ULAW_TABLE, pyav_decode_all_codes("pcm_mulaw"))
    np.testing.assert_array_equal(ALAW_TABLE, alaw_decode(bytes(range(256))))


def steady_snr_db(y: np.ndarray, ref: np.ndarray, voiced: np.ndarray, margin: int) -> float:
    """SNR over samples whose whole +-margin neighbourhood is voiced (decoder transients excluded)."""
    c = np.concatenate([[0], np.cumsum(voiced, dtype=np.int64)])
    idx = np.arange(len(voiced))
    lo, hi = np.clip(idx - margin, 0, len(voiced)), np.clip(idx + margin + 1, 0, len(voiced))
    ok = (c[hi] - c[lo] == 2 * margin + 1) & (idx >= margin)
    assert ok.sum() > 1000
    return float(10 * np.log10(np.sum(ref[ok] ** 2) / np.sum((y[ok] - ref[ok]) ** 2)))


@pytest.mark.parametrize(
    "codec,rate,channels",
    [(Codec.G711, SampleRate.SR_8K, 1), (Codec.G722, SampleRate.SR_16K, 1), (Codec.OPUS, SampleRate.SR_48K, 2), (Codec.OPUS, SampleRate.SR_48K, 1)],
)
def test_codec_carries_each_participants_signal(codec: Codec, rate: SampleRate, channels: int) -> None:
    params = AudioParams(codec=codec, sample_rate=rate, channel=channels, data_opt=MULTI)
    content = MeetingContent(3, seed=11)
    packets = meeting_packets(content, params, 0, 6000)
    rec = Recorder()
    eng = AudioEngine(rec, params)
    feed(eng, packets)
    assert eng.stats.decode_errors == 0
    hz = rate.hz
    pre, lag = 60 * hz // 1000, CODEC_LAG[codec]
    for p in content.participants:
        s = rec.participants[p.user_id]
        ref = expected_int16(content, p.user_id, hz, 0, 6000)
        pcm = s.pcm if s.pcm.ndim == 1 else s.pcm[:, 0]
        if channels == 2:
            np.testing.assert_array_equal(s.pcm[:, 0], s.pcm[:, 1])
        full = np.zeros(len(ref), np.int16)
        a = max(s.start, pre)
        full[a - pre : s.end - pre] = pcm[a - s.start :]
        voiced = np.repeat([content.is_speaking(p.user_id, t) for t in range(0, 6000, 20)], hz // 50)
        # the engine marks exactly the packets' samples as data, whatever the codec
        np.testing.assert_array_equal(~s.gaps[a - s.start :], voiced[a - pre : s.end - pre])
        if codec == Codec.G711:  # lossless with respect to the A-law the simulator sent
            np.testing.assert_array_equal(full, np.where(voiced, alaw_decode(alaw_encode(ref)), 0))
        y = full[lag:].astype(np.float64)
        snr = steady_snr_db(y, ref[: len(y)].astype(np.float64), voiced[: len(y)], 100 * hz // 1000)
        assert snr >= CODEC_SNR_DB[codec], f"{codec.name} {p.tone_hz} Hz: SNR {snr:.1f} dB"
        voiced_pcm = full[voiced][: hz // 2].astype(np.float64)
        spec = np.abs(np.fft.rfft(voiced_pcm * np.hanning(len(voiced_pcm))))
        assert abs(np.argmax(spec) * hz / len(voiced_pcm) - p.tone_hz) <= 2 * hz / len(voiced_pcm)


def test_g711_mixed_stream_pass_through() -> None:
    params = AudioParams(codec=Codec.G711, sample_rate=SampleRate.SR_8K)
    content = MeetingContent(3, seed=12)
    packets = meeting_packets(content, params, 0, 4000)
    rec = Recorder()
    feed(AudioEngine(rec, params), packets)
    ref = expected_int16(content, 0, 8000, 0, 4000)
    s = rec.mixed
    pre = 480
    pcm, gaps = s.window(pre, s.end)
    np.testing.assert_array_equal(pcm, np.where(gaps, 0, alaw_decode(alaw_encode(ref[: s.end - pre]))))


def test_decode_errors_are_counted_and_never_stop_the_stream() -> None:
    params = AudioParams(codec=Codec.OPUS, sample_rate=SampleRate.SR_48K, channel=2, data_opt=MULTI)
    content = MeetingContent(1, seed=13)
    packets = meeting_packets(content, params, 0, 3000)
    bad_at = len(packets) // 2
    uid, name, ts, _payload = packets[bad_at]
    packets[bad_at] = (uid, name, ts, b"\xff\xff\xff\x00 not opus")
    packets.insert(bad_at + 5, (uid, name, ts + 5000, b""))  # an empty payload, far ahead: also an error
    rec = Recorder()
    eng = AudioEngine(rec, params)
    feed(eng, packets)
    assert eng.stats.decode_errors == 2
    s = rec.participants[uid]
    k = (ts - T0 + 60) * 48
    pcm, gaps = s.window(k, k + 960)
    assert gaps.all() and not pcm.any()  # the undecodable packet is a marked gap at its exact place
    assert not s.window(k + 960, k + 1920)[1].any()  # and the next packet decoded normally
    assert s.end >= (packets[-1][2] - T0 + 60) * 48


def test_decoder_objects() -> None:
    assert make_decoder(AudioParams()) is None  # L16 is copied as is
    g711 = make_decoder(AudioParams(codec=Codec.G711, sample_rate=SampleRate.SR_8K))
    assert isinstance(g711, TableDecoder)
    np.testing.assert_array_equal(g711.decode(b"\xd5\x55"), ALAW_TABLE[[0xD5, 0x55]])
    ulaw = make_decoder(AudioParams(codec=Codec.G711, sample_rate=SampleRate.SR_8K), ulaw=True)
    np.testing.assert_array_equal(ulaw.decode(memoryview(b"\xff\x00")), [0, -32124])
    assert g711.decode(b"") is None and g711.errors == 1
    opus = make_decoder(AudioParams(codec=Codec.OPUS, sample_rate=SampleRate.SR_48K, channel=2))
    assert isinstance(opus, AVDecoder) and opus.channels == 2
    assert opus.decode(b"\xff\xff\xff\x00 not opus") is None and opus.errors == 1
    assert isinstance(make_decoder(AudioParams(codec=Codec.G722)), AVDecoder)
