"""Audio engine: one media clock, exact per-participant and mixed audio, gaps at exact positions."""

from __future__ import annotations

import random

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.audio import MIXED, AudioConfig, AudioEngine
from gateway.protocol import AudioParams, Codec, DataOption, SampleRate
from gateway.sim.content import MeetingContent
from tests.audio.helpers import T0, Recorder, expected_int16, feed, meeting_packets

MULTI = AudioParams(data_opt=DataOption.AUDIO_MULTI_STREAMS)
RATE = 16000
SPP = 320  # samples per 20 ms packet at 16 kHz
PRE = 60 * RATE // 1000  # origin = first timestamp - reorder window (60 ms)


def coverage(packets: list[tuple[int, str, int, bytes]], uid: int | None, n: int, spp: int = SPP, send_rate: int = 20) -> np.ndarray:
    """Content-sample mask of what packets of ``uid`` (None = anyone) covered."""
    mask = np.zeros(n, dtype=bool)
    for u, _name, ts, _payload in packets:
        if uid is None or u == uid:
            k = (ts - T0) // send_rate * spp
            mask[k : k + spp * (send_rate // 20)] = True
    return mask


def run(packets: list, params: AudioParams = MULTI, config: AudioConfig | None = None) -> tuple[AudioEngine, Recorder]:
    rec = Recorder()
    eng = AudioEngine(rec, params, config)
    feed(eng, packets)
    return eng, rec


@pytest.fixture(scope="module")
def meeting() -> tuple[MeetingContent, list]:
    content = MeetingContent(3, seed=7)
    return content, meeting_packets(content, MULTI, 0, 12000)


def check_stream_exact(stream, expected: np.ndarray, covered: np.ndarray, pre: int = PRE) -> None:
    """Stream (engine indices) == expected (content indices, offset ``pre``) where covered, gap elsewhere."""
    a = max(stream.start, pre)
    b = stream.end
    pcm, gaps = stream.window(a, b)
    np.testing.assert_array_equal(pcm, expected[a - pre : b - pre])
    np.testing.assert_array_equal(~gaps, covered[a - pre : b - pre])
    if stream.start < pre:
        assert stream.window(stream.start, pre)[1].all()  # the pre-roll is a gap


def test_each_participant_holds_exactly_its_signal(meeting) -> None:
    content, packets = meeting
    eng, rec = run(packets)
    n = 12000 * RATE // 1000
    assert set(rec.participants) == {p.user_id for p in content.participants}
    ends = {s.end for s in rec.participants.values()} | {rec.mixed.end}
    assert len(ends) == 1  # every ring is published up to the same sample index
    for p in content.participants:
        s = rec.participants[p.user_id]
        check_stream_exact(s, expected_int16(content, p.user_id, RATE, 0, 12000), coverage(packets, p.user_id, n))
        # FFT: where it speaks, the dominant frequency is its own tone
        pcm, gaps = s.window(max(PRE, s.start), s.end)
        voiced = pcm[~gaps][: RATE].astype(np.float64)
        spec = np.abs(np.fft.rfft(voiced * np.hanning(len(voiced))))
        assert abs(np.argmax(spec) * RATE / len(voiced) - p.tone_hz) <= RATE / len(voiced)
    assert eng.stats.gap_frames > 0 and eng.stats.duplicates == eng.stats.reorders == eng.stats.late_packets == 0


def test_mixed_is_the_saturating_sum_and_speech_lines_up(meeting) -> None:
    content, packets = meeting
    _eng, rec = run(packets)
    n = 12000 * RATE // 1000
    check_stream_exact(rec.mixed, expected_int16(content, 0, RATE, 0, 12000), coverage(packets, None, n))
    # the mixed ring equals the int32 sum of the participant rings, clipped, sample for sample
    a, b = PRE, rec.mixed.end
    acc = np.zeros(b - a, dtype=np.int32)
    for s in rec.participants.values():
        lo = max(a, s.start)
        acc[lo - a :] += s.window(lo, b)[0]
    np.testing.assert_array_equal(rec.mixed.window(a, b)[0], np.clip(acc, -32768, 32767))
    # simultaneous speech: over a stretch where two or more speak, each participant's output
    # correlates with its own reference tone at lag 0 exactly
    both = [t for t in range(0, 12000, 20) if len(content.speakers(t)) >= 2]
    assert both, "the script always has overlapping speech"
    t = both[0]
    for i in content.speakers(t):
        p = content.participants[i]
        seg = rec.participants[p.user_id].window((t + 60) * 16, (t + 80) * 16)[0].astype(np.float64)
        ref = expected_int16(content, p.user_id, RATE, t - 20, t + 40).astype(np.float64)
        lags = [float(np.dot(seg, ref[320 + lag : 640 + lag])) for lag in range(-8, 9)]
        assert int(np.argmax(lags)) - 8 == 0


def test_late_joiner_lines_up_on_the_meeting_clock(meeting) -> None:
    content, packets = meeting
    eng, rec = run(packets)
    late = content.participants[2]
    assert late.join_ms > 0
    first_ts = min(ts for uid, _n, ts, _p in packets if uid == late.user_id)
    s = rec.participants[late.user_id]
    assert s.start > 0  # its ring began when it first appeared, not at the meeting start
    first_data = s.start + int(np.argmax(~s.gaps))
    assert first_data == eng.clock.index_of(first_ts) == (first_ts - T0 + 60) * RATE // 1000


def test_dropped_reordered_and_duplicated_packets_land_as_marked_gaps(meeting) -> None:
    content, packets = meeting
    pkts = list(packets)
    uid = content.participants[0].user_id
    def run_of_three(after: int) -> list[int]:
        """List positions of three packets of ``uid`` consecutive in time (20 ms apart), from the ``after``-th on."""
        mine = [k for k, p in enumerate(pkts) if p[0] == uid]
        for m in range(after, len(mine) - 2):
            if pkts[mine[m + 2]][2] - pkts[mine[m]][2] == 40:
                return mine[m : m + 3]
        raise AssertionError("no run of three packets")

    k0 = run_of_three(40)[1]
    dropped = pkts.pop(k0)
    i, j, _ = run_of_three(60)  # swap two consecutive packets of the same speaker
    pkts[i], pkts[j] = pkts[j], pkts[i]
    i, _, _ = run_of_three(80)
    pkts.insert(i + 1, pkts[i])  # an immediate duplicate
    i, j, k = run_of_three(100)
    pkts.insert(k + 1, pkts[j])  # a duplicate arriving after the next packet (inside the window)
    eng, rec = run(pkts)
    st = eng.stats
    assert (st.duplicates, st.reorders, st.late_packets) == (2, 1, 0)
    n = 12000 * RATE // 1000
    cov = coverage(packets, uid, n)
    k = (dropped[2] - T0) // 20 * SPP
    cov[k : k + SPP] = False
    expected = expected_int16(content, uid, RATE, 0, 12000)
    expected[k : k + SPP] = 0
    check_stream_exact(rec.participants[uid], expected, cov)
    # the hole is exactly the dropped packet's samples, marked
    s = rec.participants[uid]
    assert s.window(k + PRE, k + PRE + SPP)[1].all()
    assert not s.window(k + PRE - 1, k + PRE)[1].any() or not cov[k - 1]


def test_packets_later_than_the_window_are_counted_and_left_as_gaps(meeting) -> None:
    content, packets = meeting
    pkts = list(packets)
    uid = content.participants[0].user_id
    mine = [k for k, p in enumerate(pkts) if p[0] == uid]
    late = pkts.pop(mine[30])
    pkts.insert(mine[45], late)  # ~300 ms late, beyond the 60 ms window
    eng, rec = run(pkts)
    assert eng.stats.late_packets == 1 and eng.stats.late_frames == SPP
    k = (late[2] - T0) // 20 * SPP + PRE
    pcm, gaps = rec.participants[uid].window(k, k + SPP)
    assert gaps.all() and not pcm.any()


def test_a_wider_window_absorbs_the_same_late_packet(meeting) -> None:
    content, packets = meeting
    pkts = list(packets)
    uid = content.participants[0].user_id
    mine = [k for k, p in enumerate(pkts) if p[0] == uid]
    late = pkts.pop(mine[30])
    pkts.insert(mine[45], late)
    eng, rec = run(pkts, config=AudioConfig(reorder_ms=500))
    assert eng.stats.late_packets == 0 and eng.stats.reorders == 1
    pre = 500 * RATE // 1000
    n = 12000 * RATE // 1000
    check_stream_exact(rec.participants[uid], expected_int16(content, uid, RATE, 0, 12000), coverage(packets, uid, n), pre)


def test_pause_resume_and_reconnect_replay(meeting) -> None:
    content, packets = meeting
    uid = content.participants[0].user_id
    first = [p for p in packets if p[2] - T0 < 4000]
    replay = [p for p in packets if 3000 <= p[2] - T0 < 4000]  # replayed after a reconnection
    pause_ms = 3000
    after = [(u, nm, ts + pause_ms, pl) for u, nm, ts, pl in packets if 4000 <= ts - T0 < 8000]
    eng, rec = run(first + replay + after)
    assert eng.stats.late_packets + eng.stats.duplicates == len(replay)
    s = rec.participants[uid]
    exp = expected_int16(content, uid, RATE, 0, 8000)
    a = (4000 + 60) * 16
    np.testing.assert_array_equal(s.window(PRE, a)[0], exp[: a - PRE])
    gap_pcm, gap_marks = s.window(a, a + pause_ms * 16)
    assert gap_marks.all() and not gap_pcm.any()  # the pause is one marked gap, exactly as long
    b = a + pause_ms * 16
    np.testing.assert_array_equal(s.window(b, s.end)[0], exp[4000 * 16 : 4000 * 16 + s.end - b])


def test_millisecond_jitter_is_snapped(meeting) -> None:
    _content, packets = meeting
    rng = random.Random(1)
    last_end: dict[int, int] = {}
    jittered = []
    for uid, nm, ts, pl in packets:
        continuing = last_end.get(uid) == ts
        last_end[uid] = ts + 20
        jittered.append((uid, nm, ts + (rng.choice((-1, 1)) if continuing else 0), pl))
    eng, rec = run(jittered)
    _eng2, clean = run(packets)
    assert eng.stats.snapped > 100
    for uid, s in clean.participants.items():
        np.testing.assert_array_equal(rec.participants[uid].pcm, s.pcm)
        np.testing.assert_array_equal(rec.participants[uid].gaps, s.gaps)


def test_zoom_mixed_stream_is_passed_through() -> None:
    content = MeetingContent(3, seed=3)
    params = AudioParams()  # raw protocol default: mixed stream, user 0
    packets = meeting_packets(content, params, 0, 6000)
    assert {p[0] for p in packets} == {0}
    eng, rec = run(packets, params)
    assert rec.participants == {}
    n = 6000 * RATE // 1000
    check_stream_exact(rec.mixed, expected_int16(content, 0, RATE, 0, 6000), coverage(packets, 0, n))
    assert eng.participants == []


def test_excluded_and_muted_participants_leave_the_mix(meeting) -> None:
    content, packets = meeting
    a, b, c = (p.user_id for p in content.participants)
    _eng, rec = run(packets, config=AudioConfig(mix_exclude=frozenset({b})))
    n = 12000 * RATE // 1000
    acc = expected_int16(content, a, RATE, 0, 12000).astype(np.int32) + expected_int16(content, c, RATE, 0, 12000)
    cov = coverage(packets, a, n) | coverage(packets, c, n)
    check_stream_exact(rec.mixed, np.clip(acc, -32768, 32767).astype(np.int16), cov)
    assert b in rec.participants  # excluded from the mix, still published on its own
    # muting at run time
    rec2 = Recorder()
    eng2 = AudioEngine(rec2, MULTI)
    eng2.set_muted(a)
    eng2.set_muted(c)
    feed(eng2, packets)
    check_stream_exact(rec2.mixed, expected_int16(content, b, RATE, 0, 12000), coverage(packets, b, n))


@pytest.mark.parametrize("rate", list(SampleRate))
@pytest.mark.parametrize("channels", [1, 2])
def test_l16_every_rate_mono_and_stereo(rate: SampleRate, channels: int) -> None:
    params = AudioParams(sample_rate=rate, channel=channels, data_opt=DataOption.AUDIO_MULTI_STREAMS, codec=Codec.L16)
    content = MeetingContent(2, seed=5)
    packets = meeting_packets(content, params, 0, 3000)
    eng, rec = run(packets, params)
    hz = rate.hz
    spp, pre, n = hz // 50, 60 * hz // 1000, 3 * hz
    for p in content.participants:
        exp = expected_int16(content, p.user_id, hz, 0, 3000)
        s = rec.participants[p.user_id]
        a = max(pre, s.start)
        pcm, gaps = s.window(a, s.end)
        if channels == 2:
            assert pcm.shape[1] == 2
            np.testing.assert_array_equal(pcm[:, 0], pcm[:, 1])
            pcm = pcm[:, 0]
        np.testing.assert_array_equal(pcm, exp[a - pre : s.end - pre])
        np.testing.assert_array_equal(~gaps, coverage(packets, p.user_id, n, spp)[a - pre : s.end - pre])
    assert eng.clock is not None and eng.clock.rate_hz == hz


def test_long_send_rate_packets() -> None:
    params = AudioParams(data_opt=DataOption.AUDIO_MULTI_STREAMS, send_rate=200)
    content = MeetingContent(3, seed=9)
    packets = meeting_packets(content, params, 0, 6000)
    _eng, rec = run(packets, params)
    for p in content.participants:
        s = rec.participants[p.user_id]
        exp = expected_int16(content, p.user_id, RATE, 0, 6000)
        a = max(PRE, s.start)
        np.testing.assert_array_equal(s.window(a, s.end)[0], exp[a - PRE : s.end - PRE])


def test_origin_can_be_fixed_and_idle_advance_publishes_gaps() -> None:
    content = MeetingContent(2, seed=2)
    packets = meeting_packets(content, MULTI, 0, 1000)
    rec = Recorder()
    eng = AudioEngine(rec, MULTI, AudioConfig(origin_ms=T0 - 1000))
    feed(eng, packets, final=False)
    end = rec.mixed.end
    eng.advance(T0 + 5000)  # nobody spoke for 4 s: the clock still moves, as marked gaps
    assert rec.mixed.end == (5000 - 60 + 1000) * 16 > end
    assert rec.mixed.window(end, rec.mixed.end)[1].all()
    assert eng.clock.index_of(T0) == 1000 * 16


def test_wrong_mode_packets_and_empty_payloads_are_counted() -> None:
    rec = Recorder()
    eng = AudioEngine(rec, MULTI)
    eng.on_audio(0, "", T0, memoryview(b"\x00\x00" * 320))
    eng.on_audio(5, "x", T0, memoryview(b""))
    assert eng.stats.ignored == 2
    assert MIXED not in rec.participants
    eng.on_audio(5, "x", T0 + 20, memoryview(bytes(2 * 60 * RATE)))  # a minute in one packet: refused, counted
    assert eng.stats.ignored == 3 and eng.closed_index == 0 and eng.stats.frames == 0


def test_media_params_configure_the_engine_and_a_change_starts_a_new_clock() -> None:
    content = MeetingContent(2, seed=6)
    p48 = AudioParams(sample_rate=SampleRate.SR_48K, data_opt=DataOption.AUDIO_MULTI_STREAMS)
    rec = Recorder()
    eng = AudioEngine(rec)
    eng.on_media_params("video", object())  # other kinds are not the engine's business
    eng.on_media_params("audio", p48)
    feed(eng, meeting_packets(content, p48, 0, 2000), final=False)
    assert eng.clock is not None and eng.clock.rate_hz == 48000
    first = eng.stats
    assert first.frames > 0
    # a new negotiation (e.g. after a reconnection) with other parameters: published, then a new epoch
    rec2 = Recorder()
    eng.output = rec2
    eng.on_media_params("audio", MULTI)
    assert eng.clock is None and eng.stats.reconfigures == 1 and eng.stats.frames == first.frames
    feed(eng, meeting_packets(content, MULTI, 2000, 3000))
    assert eng.clock.rate_hz == RATE and eng.clock.origin_ms == T0 + 2000 - 60
    assert eng.stats.frames > first.frames
    eng.on_media_params("audio", MULTI)  # the same parameters again: nothing happens
    assert eng.stats.reconfigures == 1


def test_remove_participant_and_snapshot(meeting) -> None:
    content, packets = meeting
    rec = Recorder()
    eng = AudioEngine(rec, MULTI)
    half = [p for p in packets if p[2] - T0 < 3000]
    feed(eng, half, final=False)
    uid = content.participants[1].user_id
    freed = eng._tracks[uid].slot
    eng.remove_participant(uid)
    end = rec.participants[uid].end
    feed(eng, [p for p in packets if 3000 <= p[2] - T0 < 6000 and p[0] != uid])
    assert rec.participants[uid].end == end  # no longer published
    assert uid not in eng.participants and len(eng.participants) == 2
    snap = eng.snapshot()
    assert snap["closed_index"] == eng.closed_index == rec.mixed.end
    assert snap["packets"] == eng.stats.packets > 0 and uid not in snap["gap_frames_by_user"]
    # a newcomer reuses the free slot and starts clean on the same clock
    newcomer = 999
    ts = T0 + 6000
    pcm = np.full(SPP, 1234, np.int16)
    eng.on_audio(newcomer, "new", ts, memoryview(pcm.tobytes()))
    feed(eng, [p for p in packets if 6000 <= p[2] - T0 < 7000 and p[0] != uid])
    slots = sorted(t.slot for t in eng._tracks.values())
    assert freed in slots and slots == list(range(len(slots))) and eng._slots == len(slots)  # reused, not grown
    s = rec.participants[newcomer]
    first = s.start + int(np.argmax(~s.gaps))
    assert first == eng.clock.index_of(ts)
    np.testing.assert_array_equal(s.window(first, first + SPP)[0], pcm)
    assert not s.window(first + SPP, s.end)[0].any()


def test_per_participant_format_for_a_late_joiner(meeting) -> None:
    from gateway.audio import AudioFormat
    from tests.audio.helpers import Stream

    content, packets = meeting
    late = content.participants[2]
    eng = AudioEngine(Recorder(), MULTI)
    sink = Stream()
    eng.add_format(AudioFormat(16000, "int16", 1), sink, source=late.user_id)  # before it ever spoke
    feed(eng, packets)
    rec = eng.output
    assert isinstance(rec, Recorder)
    s = rec.participants[late.user_id]
    np.testing.assert_array_equal(sink.pcm, s.pcm)  # same rate and format: the very same frames
    assert sink.start == s.start


def test_mix_gain_scales_before_saturating(meeting) -> None:
    content, packets = meeting
    _eng, rec = run(packets, config=AudioConfig(mix_gain=1 / 3))
    n = 12000 * RATE // 1000
    acc = sum(expected_int16(content, p.user_id, RATE, 0, 12000).astype(np.int64) for p in content.participants)
    g = round(32768 / 3)
    ref = np.clip((acc * g + 16384) >> 15, -32768, 32767).astype(np.int16)
    check_stream_exact(rec.mixed, ref, coverage(packets, None, n))
    with pytest.raises(ValueError):
        AudioEngine(None, MULTI, AudioConfig(mix_gain=2.0))


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 2**32 - 1), st.floats(0.0, 0.2), st.floats(0.0, 0.2), st.floats(0.0, 0.3))
def test_random_loss_duplication_and_reordering_inside_the_window(seed: int, p_drop: float, p_dup: float, p_swap: float) -> None:
    content = MeetingContent(3, seed=seed % 1000)
    packets = meeting_packets(content, MULTI, 0, 3000)
    rng = random.Random(seed)
    kept, dropped, dups = [], [], 0
    for pk in packets:
        r = rng.random()
        if r < p_drop:
            dropped.append(pk)
            continue
        kept.append(pk)
        if r < p_drop + p_dup:
            kept.append(pk)  # an exact duplicate (re-sent right away or, after a swap, a bit later)
            dups += 1
    k = 0
    while k < len(kept) - 1:  # disjoint swaps of packets at most 20 ms apart (well inside the 60 ms window)
        if rng.random() < p_swap and kept[k + 1][2] - kept[k][2] <= 20:
            kept[k], kept[k + 1] = kept[k + 1], kept[k]
            k += 1
        k += 1
    eng, rec = run(kept)
    assert eng.stats.duplicates == dups and eng.stats.late_packets == 0
    n = 3000 * RATE // 1000
    pre = (T0 - eng.clock.origin_ms) * RATE // 1000  # the first packet to arrive may not be the first sent
    for p in content.participants:
        if p.user_id not in rec.participants:
            assert not any(pk[0] == p.user_id for pk in kept)
            continue
        cov = coverage(kept, p.user_id, n)
        exp = np.where(cov, expected_int16(content, p.user_id, RATE, 0, 3000), 0).astype(np.int16)
        check_stream_exact(rec.participants[p.user_id], exp, cov, pre)
    cov = coverage(kept, None, n)
    mixed = sum(np.where(coverage(kept, p.user_id, n), expected_int16(content, p.user_id, RATE, 0, 3000), 0).astype(np.int32) for p in content.participants)
    check_stream_exact(rec.mixed, np.clip(mixed, -32768, 32767).astype(np.int16), cov, pre)
