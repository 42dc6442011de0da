"""Consumer formats: soxr resampling (chunked == one-shot), down-mix, sample formats, registry,
level and frequency kept (SNR against a float64 ideal tone)."""

from __future__ import annotations

import numpy as np
import pytest
import soxr

from gateway.audio import MIXED, AudioEngine, AudioFormat, FormatConverter
from gateway.protocol import AudioParams, DataOption, SampleRate
from gateway.sim.content import MeetingContent
from tests.audio.helpers import Stream, feed, meeting_packets


def convert(x: np.ndarray, in_rate: int, fmt: AudioFormat, chunk: int, in_channels: int = 1) -> Stream:
    sink = Stream()
    conv = FormatConverter(in_rate, in_channels, fmt)
    conv.sinks.append(sink)
    for k in range(0, len(x), chunk):
        conv.push(k, x[k : k + chunk], False)
    conv.flush()
    return sink


def noise(n: int, channels: int = 1, seed: int = 0) -> np.ndarray:
    x = (np.random.default_rng(seed).standard_normal(n * channels) * 4000).clip(-32768, 32767).astype(np.int16)
    return x if channels == 1 else x.reshape(n, channels)


@pytest.mark.parametrize("in_rate,out_rate", [(16000, 8000), (48000, 16000), (16000, 44100), (8000, 48000), (32000, 22050), (16000, 24000)])
@pytest.mark.parametrize("chunk", [17, 50, 101, 509])
def test_chunked_equals_one_shot_float32(in_rate: int, out_rate: int, chunk: int) -> None:
    x = noise(12345)
    out = convert(x, in_rate, AudioFormat(out_rate, "float32", 1), chunk)
    ref = soxr.resample(x.astype(np.float32) / 32768, in_rate, out_rate)
    assert out.start == 0 and not out.gaps.any()
    np.testing.assert_array_equal(out.pcm, ref)


@pytest.mark.parametrize("chunk", [17, 101, 509])
def test_chunked_equals_one_shot_int16(chunk: int) -> None:
    x = noise(9001, seed=1)
    out = convert(x, 48000, AudioFormat(16000, "int16", 1), chunk)
    ref = soxr.resample(x, 48000, 16000)
    assert len(out.pcm) == len(ref)
    assert np.abs(out.pcm.astype(np.int32) - ref).max() <= 2


@pytest.mark.parametrize("chunk", [17, 509])
def test_stereo_down_mix_then_resample(chunk: int) -> None:
    x = noise(7000, channels=2, seed=2)
    out = convert(x, 48000, AudioFormat(16000, "float32", 1), chunk, in_channels=2)
    mono = (x[:, 0].astype(np.float32) + x[:, 1]) / 65536
    np.testing.assert_array_equal(out.pcm, soxr.resample(mono, 48000, 16000))
    stereo = convert(x, 48000, AudioFormat(16000, "float32", 2), chunk, in_channels=2)
    assert stereo.pcm.shape == (len(out.pcm), 2)
    np.testing.assert_array_equal(stereo.pcm, soxr.resample(x.astype(np.float32) / 32768, 48000, 16000))


def test_same_rate_conversions_are_exact() -> None:
    x = noise(1000)
    f = convert(x, 16000, AudioFormat(16000, "float32", 1), 77)
    np.testing.assert_array_equal(f.pcm, x / np.float32(32768))
    up = convert(x, 16000, AudioFormat(16000, "int16", 2), 77)
    np.testing.assert_array_equal(up.pcm, np.stack([x, x], axis=1))
    same = convert(x, 16000, AudioFormat(16000, "int16", 1), 77)
    np.testing.assert_array_equal(same.pcm, x)


def snr_db(y: np.ndarray, ideal: np.ndarray) -> float:
    return float(10 * np.log10(np.sum(ideal**2) / np.sum((y - ideal) ** 2)))


# (in_rate, out_rate) -> SNR reached (dB) against the float64 ideal tone; int16 input bounds it near 86 dB
SNR_FLOOR_DB = 80.0


@pytest.mark.parametrize("in_rate,out_rate", [(48000, 16000), (16000, 48000), (8000, 16000), (32000, 8000), (48000, 44100), (16000, 22050)])
def test_resampled_tone_keeps_frequency_and_level(in_rate: int, out_rate: int) -> None:
    freq, amp, n = 997.0, 0.25, 2 * in_rate
    t_in = np.arange(n) / in_rate
    x = np.round(amp * np.sin(2 * np.pi * freq * t_in) * 32767).astype(np.int16)
    out = convert(x, in_rate, AudioFormat(out_rate, "float32", 1), 320)
    y = out.pcm.astype(np.float64)
    t_out = np.arange(len(y)) / out_rate
    ideal = amp * 32767 / 32768 * np.sin(2 * np.pi * freq * t_out)
    edge = out_rate // 20  # the filter's start/end transients
    snr = snr_db(y[edge:-edge], ideal[edge:-edge])
    assert snr >= SNR_FLOOR_DB, f"{in_rate}->{out_rate}: SNR {snr:.1f} dB"
    rms = np.sqrt(np.mean(y[edge:-edge] ** 2))
    assert abs(20 * np.log10(rms / (amp / np.sqrt(2)))) < 0.01  # level within 0.01 dB
    spec = np.abs(np.fft.rfft(y[edge:-edge] * np.hanning(len(y) - 2 * edge)))
    assert abs(np.argmax(spec) * out_rate / (len(y) - 2 * edge) - freq) < 1.0


def test_gaps_flush_the_resampler_and_keep_the_clock() -> None:
    x = noise(3000, seed=3)
    sink = Stream()
    conv = FormatConverter(16000, 1, AudioFormat(8000, "float32", 1))
    conv.sinks.append(sink)
    conv.push(1600, x[:1000], False)
    conv.push(2600, np.zeros(600, np.int16), True)
    conv.push(3200, x[1600:], False)
    conv.flush()
    assert sink.start == 800 and sink.end == 2300  # 500 data + 300 gap + 700 data at 8 kHz
    first = soxr.resample(x[:1000].astype(np.float32) / 32768, 16000, 8000)
    second = soxr.resample(x[1600:].astype(np.float32) / 32768, 16000, 8000)
    pcm, gaps = sink.window(800, 1300)
    np.testing.assert_array_equal(pcm, first)
    assert not gaps.any()
    assert sink.window(1300, 1600)[1].all()
    np.testing.assert_array_equal(sink.window(1600, 2300)[0], second)


def test_one_converter_per_source_and_format() -> None:
    content = MeetingContent(3, seed=4)
    params = AudioParams(sample_rate=SampleRate.SR_48K, channel=2, data_opt=DataOption.AUDIO_MULTI_STREAMS)
    packets = meeting_packets(content, params, 0, 3000)
    eng = AudioEngine(None, params)
    fmt = AudioFormat(16000, "float32", 1)
    a, b, c = Stream(), Stream(), Stream()
    conv1 = eng.add_format(fmt, a)
    conv2 = eng.add_format(fmt, b)
    assert conv1 is conv2 and len(eng.formats) == 1
    uid = content.participants[0].user_id
    eng.add_format(AudioFormat(8000, "int16", 1), c, source=uid)
    assert len(eng.formats) == 2
    seen: list[int] = []
    orig = conv1._resampler.resample_chunk  # count resampler calls: once per chunk, not per reader
    conv1._resampler.resample_chunk = lambda x, last=False: (seen.append(len(x)), orig(x, last))[1]
    feed(eng, packets)
    np.testing.assert_array_equal(a.pcm, b.pcm)
    # the mixed format is the one-shot resample of the mixed stream, run by run
    eng2 = AudioEngine(None, params)
    rec = _MixedOnly()
    eng2.output = rec
    feed(eng2, packets)
    run_data = _runs(rec.stream)
    for start, data in run_data:
        mono = (data[:, 0].astype(np.float32) + data[:, 1]) / 65536
        y = soxr.resample(mono, 48000, 16000)
        o = start * 16000 // 48000
        np.testing.assert_array_equal(a.window(o, o + len(y))[0][: len(y)], y)
    # the resampler ran once per emitted data chunk of the mixed stream, whatever the number of readers
    assert sum(1 for n in seen if n) == sum(1 for g in rec.stream.gap_chunks if not g[0])
    assert c.start is not None and c.pcm.dtype == np.int16
    eng.remove_format(fmt, a)
    assert len(eng.formats) == 2
    eng.remove_format(fmt, b)
    assert len(eng.formats) == 1 and MIXED not in {s for s, _f in eng.formats}


class _MixedOnly:
    def __init__(self) -> None:
        self.stream = Stream()

    def write_participant(self, *args: object) -> None:
        pass

    def write_mixed(self, sample_index: int, pcm: np.ndarray, gap: bool) -> None:
        self.stream.write(sample_index, pcm, gap)


def _runs(s: Stream) -> list[tuple[int, np.ndarray]]:
    """Gap-free runs of a recorded stream as (start index, frames)."""
    out, pcm, gaps = [], s.pcm, s.gaps
    k = 0
    while k < len(gaps):
        j = k
        while j < len(gaps) and gaps[j] == gaps[k]:
            j += 1
        if not gaps[k]:
            out.append((s.start + k, pcm[k:j]))
        k = j
    return out


@pytest.mark.parametrize("chunk", [17, 320, 509])
def test_batched_resampling_is_still_one_shot_per_run(chunk: int) -> None:
    x = noise(20000, seed=7)
    sink = Stream()
    conv = FormatConverter(48000, 1, AudioFormat(16000, "float32", 1), batch_frames=4800)
    conv.sinks.append(sink)
    calls: list[int] = []
    orig = conv._resampler.resample_chunk
    conv._resampler.resample_chunk = lambda a, last=False: (calls.append(len(a)), orig(a, last))[1]
    for k in range(0, 12000, chunk):
        conv.push(k, x[k : min(k + chunk, 12000)], False)
    conv.push(12000, np.zeros(3000, np.int16), True)
    for k in range(15000, 20000, chunk):
        conv.push(k, x[k : min(k + chunk, 20000)], False)
    conv.flush()
    sizes = [n for n in calls if n]
    assert sum(1 for n in sizes if n < 4800) <= 2  # only a run's remainder goes in short
    assert len(sizes) <= 6  # instead of one soxr call per pushed chunk
    first = soxr.resample(x[:12000].astype(np.float32) / 32768, 48000, 16000)
    second = soxr.resample(x[15000:].astype(np.float32) / 32768, 48000, 16000)
    np.testing.assert_array_equal(sink.window(0, 4000)[0], first)
    assert sink.window(4000, 5000)[1].all()
    np.testing.assert_array_equal(sink.window(5000, sink.end)[0], second)
