"""Synthetic meeting content for the RTMS simulator: audio, video, share, transcripts, chat and events.

Everything here is a deterministic function of ``seed`` and media time (milliseconds since stream
start), so a test can recompute what the simulator sent and check what the gateway delivered.

The meeting is scripted as a *period* of talk turns (``period_ms`` long, built once from the seed)
that repeats forever; joins and leaves are one-off times on top of it:

* each participant speaks a pure tone at its own integer frequency (``ParticipantSpec.tone_hz``,
  300, 500, 700, ... Hz at ``amplitude`` of full scale). Integer frequencies make one second of any
  tone exactly periodic at every sample rate, so audio is sliced from one-second tables indexed by
  the absolute sample number: phase is continuous across packets by construction;
* turns are 20 ms aligned. At most 3 participants speak in any 20 ms tick (PROTOCOL.md 8), some
  ticks have 2 or 3 overlapping speakers, some have nobody (the mixed stream then sends nothing);
* with 3 or more participants the last one joins late (and speaks 1 s after joining) and the second
  one leaves after its last turn of the first period;
* the active speaker is whoever started the latest *main* turn (backchannels do not take the floor);
  video shows the active speaker's camera; participant 0 shares its screen for half of each period.
"""

from __future__ import annotations

import bisect
import random
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from gateway.protocol import (
    AudioParams,
    Codec,
    DataOption,
    DeskshareParams,
    EventType,
    Product,
    TranscriptLanguage,
    VideoParams,
    ZccEventType,
)

__all__ = [
    "MAX_SPEAKERS",
    "TICK_MS",
    "AudioBank",
    "MeetingContent",
    "ParticipantSpec",
    "Segment",
    "participant_tone_hz",
    "read_frame_counter",
]

#: Scheduling granularity: audio turns, joins and leaves all fall on 20 ms boundaries.
TICK_MS = 20
#: PROTOCOL.md 8: up to 3 speakers per 20 ms interval in multi-stream audio.
MAX_SPEAKERS = 3
#: First user id and the step between participants (Zoom ids look like 16778240, 16779264, ...).
USER_ID_BASE = 16778240
USER_ID_STEP = 1024

_NAMES = (
    "Alice Zhang",
    "Bob Okafor",
    "Zoë Müller",
    "José Núñez",
    "Priya Raman",
    "Łukasz Kowalski",
    "Chloé Dubois",
    "Kenji Satō",
    "Søren Ødegaard",
    "Amara Nwosu",
    "李雷",
    "Fatima Al-Sayed",
)

_PHRASES: dict[int, tuple[str, ...]] = {
    TranscriptLanguage.ENGLISH: (
        "Let's go over the agenda for today.",
        "I think the latency numbers look good.",
        "Can everyone see my screen?",
        "We should ship the gateway next week.",
        "That sounds great to me.",
        "Could you repeat the last point?",
        "The audio resampler passed every test.",
        "Let's take the remaining items offline.",
    ),
    TranscriptLanguage.GERMAN: (
        "Guten Morgen zusammen, schön euch zu sehen.",
        "Die Größe der Pakete ist korrekt.",
        "Können wir das später besprechen?",
        "Ich übernehme die Prüfung der Ergebnisse.",
    ),
    TranscriptLanguage.SPANISH: (
        "¿Podemos revisar el presupuesto mañana?",
        "Sí, la señal llega sin pérdidas.",
        "Estoy de acuerdo con la propuesta.",
        "Gracias a todos por la participación.",
    ),
}
_BACKCHANNEL: dict[int, str] = {
    TranscriptLanguage.ENGLISH: "Mm-hm, right.",
    TranscriptLanguage.GERMAN: "Ja, genau.",
    TranscriptLanguage.SPANISH: "Sí, claro.",
}
_CHAT_TEXTS = (
    "Here are the slides: https://example.invalid/deck ✅",
    "Can you share the notes afterwards?",
    "Kurze Frage: läuft der Test schon? 🙂",
    "+1, agreed",
    "Latency p99 is 4.2 ms — nice!",
    "Brb in 2 minutes",
)


def participant_tone_hz(index: int) -> float:
    """Distinct integer tone per participant, well inside the 4 kHz Nyquist of 8 kHz audio.

    300, 500, ... 3900 Hz (200 Hz apart: separable by an FFT over 20 ms), then 400 ... 3800 Hz, then
    odd hundreds (which may repeat beyond 73 participants).
    """
    if index < 19:
        return 300.0 + 200.0 * index
    if index < 37:
        return 400.0 + 200.0 * (index - 19)
    return 350.0 + 100.0 * ((index - 37) % 36)


def _colour(index: int) -> tuple[int, int, int]:
    """A saturated, mid-bright RGB colour per participant (golden-ratio hue steps)."""
    import colorsys

    r, g, b = colorsys.hsv_to_rgb((index * 0.618033988749895) % 1.0, 0.75, 0.8)
    return (round(r * 255), round(g * 255), round(b * 255))


@dataclass(frozen=True)
class ParticipantSpec:
    """One synthetic participant: identity, its known audio signal, and its roster times."""

    user_id: int
    user_name: str
    tone_hz: float
    index: int = 0
    language: int = TranscriptLanguage.ENGLISH
    colour: tuple[int, int, int] = (128, 128, 128)
    join_ms: int = 0
    leave_ms: int | None = None
    #: ZCC only: the SIP channel of this party, and its role ("caller" or "agent").
    channel_id: str | None = None
    role: str = "participant"

    def in_meeting(self, t_ms: int) -> bool:
        return self.join_ms <= t_ms and (self.leave_ms is None or t_ms < self.leave_ms)


@dataclass(frozen=True)
class Segment:
    """One utterance in the repeating period: ``[start_ms, end_ms)`` relative to the period start."""

    index: int  # participant index
    start_ms: int
    end_ms: int
    main: bool  # a main turn takes the floor (active speaker); a backchannel does not
    number: int  # position in the period, used for distinct transcript texts


@dataclass
class _ByteLoop:
    """One second of an encoded signal as a byte stream, doubled so any slice is contiguous."""

    data: bytes
    bytes_per_tick: int
    ticks: int  # ticks per loop (50 for one second)

    def chunk(self, tick: int, n_ticks: int = 1) -> bytes:
        off = (tick % self.ticks) * self.bytes_per_tick
        return self.data[off : off + n_ticks * self.bytes_per_tick]


@dataclass
class _PacketLoop:
    """One second of an encoded signal as one packet per 20 ms tick (Opus)."""

    packets: list[bytes]

    def chunk(self, tick: int, n_ticks: int = 1) -> bytes:
        if n_ticks != 1:
            raise ValueError("packet codecs (Opus) support send_rate 20 only")
        return self.packets[tick % len(self.packets)]


@dataclass
class _Schedule:
    period_ms: int
    segments: list[Segment]
    tick_speakers: list[tuple[int, ...]]
    main_starts: list[int] = field(default_factory=list)
    main_segments: list[Segment] = field(default_factory=list)
    segment_starts: list[int] = field(default_factory=list)


def _build_schedule(n: int, rng: random.Random, late_index: int | None) -> _Schedule:
    """Talk turns for one period: two rounds of main turns plus backchannels, capped at 3 speakers.

    The transition into the third turn is forced to be a gap (nobody speaks) and the one after it
    (into the second turn with fewer than 3 participants) to overlap, with a backchannel by a third
    participant on top (3 speakers at once), so every period shows both; the rest is random. The late
    joiner's first turn is the third, so both it and the leaver are present for the 3-way overlap.
    """
    rounds = 2
    order: list[int] = []
    for _ in range(rounds):
        rnd = list(range(n))
        rng.shuffle(rnd)
        if late_index is not None and not order:
            # the late joiner's first turn comes third: right after the forced gap, before the forced overlap
            rnd.remove(late_index)
            rnd.insert(min(2, len(rnd)), late_index)
        if order and n > 1 and rnd[0] == order[-1]:
            rnd[0], rnd[-1] = rnd[-1], rnd[0]
        order.extend(rnd)
    turns: list[tuple[int, int, int]] = []  # (index, start, end)
    forced_overlap = 3 if n >= 3 else 1
    t = 0
    for k, who in enumerate(order):
        dur = rng.randrange(900, 2001, TICK_MS)
        if k == 0 or n == 1:
            start = t
        else:
            kind = "overlap" if k == forced_overlap else "gap" if k == 2 else rng.choice(("overlap", "gap", "handoff"))
            if kind == "overlap":
                start = t - rng.randrange(200, 401, TICK_MS)
            elif kind == "gap":
                start = t + rng.randrange(200, 601, TICK_MS)
            else:
                start = t
        turns.append((who, start, start + dur))
        t = start + dur
        if n == 1:
            t += rng.randrange(200, 601, TICK_MS)
    period = t + 400  # trailing gap so the wrap-around is silent for a moment
    nticks = period // TICK_MS
    occupancy = np.zeros(nticks, dtype=np.int8)
    speaking = np.zeros((n, nticks), dtype=bool)
    segments: list[Segment] = []

    def try_add(who: int, start: int, end: int, main: bool) -> bool:
        a, b = start // TICK_MS, end // TICK_MS
        if speaking[who, a:b].any() or (occupancy[a:b] >= MAX_SPEAKERS).any():
            return False
        occupancy[a:b] += 1
        speaking[who, a:b] = True
        segments.append(Segment(who, start, end, main, 0))
        return True

    for who, start, end in turns:
        try_add(who, start, end, True)
    if n >= 3:
        # backchannels: a forced one over the forced overlap (3 speakers), then random ones
        before, after = turns[forced_overlap - 1], turns[forced_overlap]
        others = [i for i in range(n) if i not in (before[0], after[0])]
        try_add(others[0], after[1] - 100, before[2] + 100, False)
        for who, start, end in turns:
            if rng.random() < 0.5 and end - start >= 900:
                third = rng.choice([i for i in range(n) if i != who])
                mid = rng.randrange(start + 200, end - 500, TICK_MS)
                try_add(third, mid, mid + rng.randrange(200, 401, TICK_MS), False)
    segments.sort(key=lambda s: (s.start_ms, s.index))
    segments = [Segment(s.index, s.start_ms, s.end_ms, s.main, k) for k, s in enumerate(segments)]
    tick_speakers = [tuple(int(i) for i in np.flatnonzero(speaking[:, k])) for k in range(nticks)]
    mains = [s for s in segments if s.main]
    return _Schedule(period, segments, tick_speakers, [s.start_ms for s in mains], mains, [s.start_ms for s in segments])


class AudioBank:
    """Encoded one-second audio loops keyed by their content (tones, amplitude, codec, rate, channels).

    Loops depend on the participants' tones, never on the seed, so meetings can share one bank: a
    thousand simulated meetings then encode each Opus/G.722 loop once, not once per meeting. A pure
    cache of immutable bytes; the default bank is process-wide (pass ``bank=AudioBank()`` to isolate).
    """

    def __init__(self) -> None:
        self._tables: dict[tuple[float, float, int], np.ndarray] = {}
        self._loops: dict[tuple[Any, ...], _ByteLoop | _PacketLoop] = {}

    def tone_int16(self, tone_hz: float, amplitude: float, rate_hz: int) -> np.ndarray:
        """Two seconds of a tone (mono int16), periodic in one second (integer frequency)."""
        key = (tone_hz, amplitude, rate_hz)
        table = self._tables.get(key)
        if table is None:
            n = np.arange(2 * rate_hz, dtype=np.float64)
            x = amplitude * np.sin(2.0 * np.pi * tone_hz * (n % rate_hz) / rate_hz)
            table = np.round(x * 32767.0).astype(np.int16)
            table.flags.writeable = False
            self._tables[key] = table
        return table

    def mix_int16(self, tones: tuple[float, ...], amplitude: float, rate_hz: int) -> np.ndarray:
        """Saturating int16 sum of tones (what a mixed stream carries); () is silence."""
        if len(tones) == 1:
            return self.tone_int16(tones[0], amplitude, rate_hz)
        acc = np.zeros(2 * rate_hz, dtype=np.int32)
        for f in tones:
            acc += self.tone_int16(f, amplitude, rate_hz)
        return np.clip(acc, -32768, 32767).astype(np.int16)

    def loop(self, tones: tuple[float, ...], amplitude: float, codec: int, rate_hz: int, channels: int) -> _ByteLoop | _PacketLoop:
        """The encoded loop of a tone mix in one codec (L16 interleaved, A-law, G.722 or Opus)."""
        key = (tones, amplitude, codec, rate_hz, channels)
        loop = self._loops.get(key)
        if loop is not None:
            return loop
        pcm = self.mix_int16(tones, amplitude, rate_hz)
        ticks = 1000 // TICK_MS
        spt = rate_hz * TICK_MS // 1000  # samples per tick
        if codec == Codec.L16:
            inter = np.repeat(pcm, channels) if channels > 1 else pcm
            loop = _ByteLoop(inter.astype("<i2").tobytes(), spt * channels * 2, ticks)
        elif codec == Codec.G711:
            _require(rate_hz == 8000 and channels == 1, "G.711 is 8 kHz mono")
            from gateway.sim.codecs import alaw_encode

            loop = _ByteLoop(alaw_encode(pcm), spt, ticks)
        elif codec == Codec.G722:
            _require(rate_hz == 16000 and channels == 1, "G.722 is 16 kHz mono")
            from gateway.sim.codecs import g722_loop

            loop = _ByteLoop(g722_loop(pcm[:rate_hz]), spt // 2, ticks)
        elif codec == Codec.OPUS:
            _require(rate_hz == 48000, "Opus is 48 kHz")
            from gateway.sim.codecs import opus_loop

            loop = _PacketLoop(opus_loop(pcm[:rate_hz], channels))
        else:
            raise ValueError(f"unsupported audio codec {codec}")
        self._loops[key] = loop
        return loop


_SHARED_BANK = AudioBank()


class MeetingContent:
    """A scripted meeting: who is there, who speaks when, and the media each produces.

    Audio for Opus and G.722 is pre-encoded as a one-second loop per speaker (encoded twice and the
    second pass kept, so the loop starts from a warmed-up encoder); every method is therefore a pure
    function of ``(seed, params, time)`` and may be called in any order. H.264 video keeps encoder
    state per stream: call ``video_frame``/``share_frame`` with consecutive frame indices (a jump
    restarts the encoder, which then opens with a key frame).
    """

    def __init__(
        self,
        participants: int = 3,
        *,
        seed: int = 0,
        product: Product = Product.MEETING,
        amplitude: float = 0.25,
        late_join_ms: int | None = -1,
        leave_ms: int | None = -1,
        keyframe_interval: int | None = None,
        video_scale: int = 1,
        bank: AudioBank | None = None,
    ) -> None:
        """``late_join_ms``/``leave_ms``: -1 picks automatic times (see the module doc), None disables.

        ``keyframe_interval``: H.264 key frame every N frames (default fps*2). ``video_scale``: divide
        the encoded picture size by this factor (1 = the full negotiated resolution). ``bank``: where
        encoded audio loops are cached (default: shared by every meeting in the process).
        """
        if participants < 1:
            raise ValueError("a meeting needs at least one participant")
        self.product = Product(product)
        self.seed = seed
        self.amplitude = float(amplitude)
        self.keyframe_interval = keyframe_interval
        self.video_scale = int(video_scale)
        zcc = self.product is Product.CONTACT_CENTER
        if zcc:
            participants = 2
            late_join_ms = leave_ms = None
        rng = random.Random(seed)
        late_index = participants - 1 if participants >= 3 and late_join_ms is not None else None
        leaver = 1 if participants >= 3 and leave_ms is not None else None
        self._schedule = _build_schedule(participants, rng, late_index)
        sched = self._schedule
        if late_index is not None and late_join_ms == -1:
            first = min(s.start_ms for s in sched.segments if s.index == late_index and s.main)
            late_join_ms = max(TICK_MS, first - 1000)
        if leaver is not None and leave_ms == -1:
            last = max(s.end_ms for s in sched.segments if s.index == leaver)
            leave_ms = last + 500
        specs: list[ParticipantSpec] = []
        for i in range(participants):
            name = _NAMES[i % len(_NAMES)] + ("" if i < len(_NAMES) else f" {i // len(_NAMES) + 1}")
            language = {2: TranscriptLanguage.GERMAN, 3: TranscriptLanguage.SPANISH}.get(i % 5, TranscriptLanguage.ENGLISH)
            channel_id = role = None
            if zcc:
                role = ("caller", "agent")[i]
                name = ("Jane Doe", "Agent Smith")[i]
                channel_id = f"{role}-{seed & 0xFFFF:04x}{i:02x}"
                language = TranscriptLanguage.ENGLISH
            specs.append(
                ParticipantSpec(
                    user_id=USER_ID_BASE + i * USER_ID_STEP,
                    user_name=name,
                    tone_hz=participant_tone_hz(i),
                    index=i,
                    language=int(language),
                    colour=_colour(i),
                    join_ms=_align(late_join_ms) if i == late_index and late_join_ms is not None else 0,
                    leave_ms=_align(leave_ms) if i == leaver and leave_ms is not None else None,
                    channel_id=channel_id,
                    role=role or "participant",
                )
            )
        self.participants: list[ParticipantSpec] = specs
        self._by_id = {p.user_id: p for p in specs}
        self._join = [p.join_ms for p in specs]
        self._leave = [p.leave_ms if p.leave_ms is not None else 1 << 62 for p in specs]
        self._nticks = len(sched.tick_speakers)
        self._max_segment_ms = max(s.end_ms - s.start_ms for s in sched.segments)
        # caches: per (index-or-speaker-set, codec, rate, channels) one-second loops
        self.bank = bank if bank is not None else _SHARED_BANK
        self._loops: dict[tuple[Any, ...], Any] = {}  # (speakers, codec, rate, channels) -> bank loop
        self._video_encoders: dict[tuple[Any, ...], Any] = {}
        self._event_cache: dict[int, tuple[list[int], list[tuple[int, dict[str, Any]]]]] = {}

    # ------------------------------------------------------------------ timeline

    @property
    def period_ms(self) -> int:
        """Length of the repeating talk-turn script."""
        return self._schedule.period_ms

    @property
    def segments(self) -> list[Segment]:
        """The utterances of one period (relative times; see :meth:`utterances` for absolute ones)."""
        return list(self._schedule.segments)

    def participant(self, user_id: int) -> ParticipantSpec:
        return self._by_id[user_id]

    def channel_id(self, user_id: int) -> str:
        """ZCC: the SIP channel id of a party (``user_id`` may also be the party's index)."""
        spec = self._by_id.get(user_id) or self.participants[user_id]
        if spec.channel_id is None:
            raise ValueError("channel ids exist only for Contact Center content")
        return spec.channel_id

    def participant_by_colour(self, rgb: tuple[int, int, int]) -> ParticipantSpec:
        """The participant whose camera colour is nearest to ``rgb`` (see ``drawing.read_user_colour``)."""
        return min(self.participants, key=lambda p: sum((a - b) ** 2 for a, b in zip(p.colour, rgb, strict=True)))

    def roster(self, t_ms: int) -> list[ParticipantSpec]:
        """Participants in the meeting at ``t_ms``."""
        return [p for p in self.participants if p.in_meeting(t_ms)]

    def speakers(self, t_ms: int) -> list[int]:
        """Indices of participants speaking in the 20 ms tick containing ``t_ms``."""
        if t_ms < 0:
            return []
        tick = (t_ms // TICK_MS) % self._nticks
        join, leave = self._join, self._leave
        return [i for i in self._schedule.tick_speakers[tick] if join[i] <= t_ms < leave[i]]

    def is_speaking(self, user_id: int, t_ms: int) -> bool:
        """Talk/silence turns: whether ``user_id`` sends audio in the 20 ms tick containing ``t_ms``."""
        spec = self._by_id.get(user_id)
        return spec is not None and spec.index in self.speakers(t_ms)

    def active_speaker(self, t_ms: int) -> ParticipantSpec | None:
        """Who holds the floor at ``t_ms``: the speaker of the latest main turn started by then."""
        sched = self._schedule
        if t_ms < 0 or not sched.main_starts:
            return None
        k, rel = divmod(t_ms, sched.period_ms)
        j = bisect.bisect_right(sched.main_starts, rel) - 1
        for _ in range(4 * len(sched.main_starts) + 2):  # bounded walk back over earlier turns
            if j < 0:
                k -= 1
                j = len(sched.main_starts) - 1
                if k < 0:
                    return None
            seg = sched.main_segments[j]
            start = k * sched.period_ms + seg.start_ms
            spec = self.participants[seg.index]
            if spec.in_meeting(start):
                return spec
            j -= 1
        return None

    def utterances(self, t0_ms: int, t1_ms: int) -> list[tuple[int, int, Segment, int]]:
        """Segments overlapping ``[t0, t1)`` as (abs_start, abs_end, segment, global_number),
        clipped to the speaker's time in the meeting (dropped if it was never there)."""
        sched = self._schedule
        period = sched.period_ms
        out = []
        nseg = len(sched.segments)
        for k in range(max(0, t0_ms // period), max(0, (t1_ms - 1) // period) + 1):  # a period's segments lie inside it
            base = k * period
            lo = bisect.bisect_left(sched.segment_starts, t0_ms - base - self._max_segment_ms)
            hi = bisect.bisect_left(sched.segment_starts, t1_ms - base)
            for seg in sched.segments[lo:hi]:
                start, end = base + seg.start_ms, base + seg.end_ms
                start = max(start, self._join[seg.index])
                end = min(end, self._leave[seg.index])
                if start >= end or end <= t0_ms or start >= t1_ms:
                    continue
                out.append((start, end, seg, k * nseg + seg.number))
        out.sort(key=lambda u: (u[0], u[2].index))
        return out

    # ------------------------------------------------------------------ audio

    def _tone_int16(self, index: int, rate_hz: int) -> np.ndarray:
        """Two seconds of participant ``index``'s tone (mono int16), periodic in one second."""
        return self.bank.tone_int16(self.participants[index].tone_hz, self.amplitude, rate_hz)

    def _loop(self, speakers: tuple[int, ...], codec: int, rate_hz: int, channels: int) -> Any:
        """Encoded one-second loop for one speaker (1-tuple) or a mix (several); () is silence."""
        key = (speakers, codec, rate_hz, channels)
        loop = self._loops.get(key)
        if loop is None:
            tones = tuple(sorted(self.participants[i].tone_hz for i in speakers))
            loop = self._loops[key] = self.bank.loop(tones, self.amplitude, codec, rate_hz, channels)
        return loop

    def audio_packets(self, params: AudioParams, t_ms: int) -> list[tuple[int, str, bytes]]:
        """Packets ``(user_id, user_name, payload)`` for the ``send_rate`` interval starting at ``t_ms``.

        Mixed (data_opt 1): at most one packet, user 0 and name "", the saturating sum of the active
        speakers, none while nobody speaks. Multi-stream (data_opt 2): one packet per participant that
        speaks in the interval (at most 3 per tick). With ``send_rate`` > 20 a packet covers several
        ticks and the ticks where its speaker is silent carry silence. ``t_ms`` is a multiple of 20.
        """
        codec, rate, channels = params.codec, params.rate_hz, params.channel
        n_ticks = params.send_rate // TICK_MS
        tick0 = t_ms // TICK_MS
        mixed = params.data_opt != DataOption.AUDIO_MULTI_STREAMS
        if n_ticks == 1:
            active = self.speakers(t_ms)
            if not active:
                return []
            if mixed:
                return [(0, "", self._loop(tuple(active), codec, rate, channels).chunk(tick0))]
            specs = self.participants
            return [(specs[i].user_id, specs[i].user_name, self._loop((i,), codec, rate, channels).chunk(tick0)) for i in active]
        per_tick = [tuple(self.speakers(t_ms + k * TICK_MS)) for k in range(n_ticks)]
        if mixed:
            if not any(per_tick):
                return []
            return [(0, "", self._assemble(per_tick, None, codec, rate, channels, tick0))]
        everyone = sorted({i for s in per_tick for i in s})
        return [
            (self.participants[i].user_id, self.participants[i].user_name, self._assemble(per_tick, i, codec, rate, channels, tick0))
            for i in everyone
        ]

    def _assemble(self, per_tick: list[tuple[int, ...]], who: int | None, codec: int, rate: int, channels: int, tick0: int) -> bytes:
        """Concatenate runs of ticks with the same sound (one slice per run, not per tick)."""
        parts = []
        k = 0
        n = len(per_tick)
        while k < n:
            key = per_tick[k] if who is None else ((who,) if who in per_tick[k] else ())
            j = k + 1
            while j < n and (per_tick[j] if who is None else ((who,) if who in per_tick[j] else ())) == key:
                j += 1
            parts.append(self._loop(key, codec, rate, channels).chunk(tick0 + k, j - k))
            k = j
        return b"".join(parts)

    def expected_pcm(self, user_id: int, rate_hz: int, t0_ms: int, t1_ms: int) -> np.ndarray:
        """Clean mono reference of one participant (``user_id`` 0 = the mix) over ``[t0, t1)``.

        float64 in [-1, 1): exactly the L16 sample values divided by 32768 (silence where the
        participant does not speak), so ``np.round(x * 32768)`` equals the int16 that L16 carries.
        """
        n0 = rate_hz * t0_ms // 1000
        n1 = rate_hz * t1_ms // 1000
        n = np.arange(n0, n1, dtype=np.int64)
        tick_of = (n * 1000 // rate_hz) // TICK_MS
        first = int(tick_of[0]) if len(n) else 0
        last = int(tick_of[-1]) if len(n) else -1
        sets = [tuple(self.speakers(t * TICK_MS)) for t in range(first, last + 1)]
        idx = tick_of - first
        phase = n % rate_hz
        if user_id == 0:
            acc = np.zeros(len(n), dtype=np.int32)
            for p in self.participants:
                mask = np.array([p.index in s for s in sets], dtype=bool)[idx] if sets else np.zeros(0, bool)
                acc += np.where(mask, self._tone_int16(p.index, rate_hz)[phase], 0)
            out = np.clip(acc, -32768, 32767)
        else:
            p = self._by_id[user_id]
            mask = np.array([p.index in s for s in sets], dtype=bool)[idx] if sets else np.zeros(0, bool)
            out = np.where(mask, self._tone_int16(p.index, rate_hz)[phase], 0)
        return out.astype(np.float64) / 32768.0

    # ------------------------------------------------------------------ text

    def transcripts(self, t0_ms: int, t1_ms: int) -> list[dict[str, Any]]:
        """Utterances *ending* in ``[t0, t1)``, one per talk segment (main turns and backchannels)."""
        out = []
        for start, end, seg, number in self.utterances(t0_ms - self._max_segment_ms, t1_ms):
            if not t0_ms <= end < t1_ms:
                continue
            spec = self.participants[seg.index]
            out.append(
                {
                    "user_id": spec.user_id,
                    "user_name": spec.user_name,
                    "start_ms": start,
                    "end_ms": end,
                    "language": spec.language,
                    "text": self._utterance_text(spec, seg, number),
                    **({"channel_id": spec.channel_id} if spec.channel_id is not None else {}),
                }
            )
        out.sort(key=lambda d: (d["end_ms"], d["user_id"]))
        return out

    def _utterance_text(self, spec: ParticipantSpec, seg: Segment, number: int) -> str:
        if not seg.main:
            return f"{_BACKCHANNEL[spec.language]} ({number})"
        phrases = _PHRASES[spec.language]
        return f"{phrases[(number * 7 + spec.index) % len(phrases)]} ({number})"

    def chats(self, t0_ms: int, t1_ms: int) -> list[dict[str, Any]]:
        """Chat messages sent in ``[t0, t1)``: three per period, every other one in structured form.

        Keys: ``t_ms``, ``user_id``, ``user_name``, ``text`` and ``structured`` (None, or the July-2026
        object of PROTOCOL.md 4.5: chat_session, operation_type, message_id, sender, receiver, text).
        """
        period = self.period_ms
        offsets = (period // 10, period * 45 // 100, period * 8 // 10)
        out: list[dict[str, Any]] = []
        for k in range(max(0, t0_ms // period), max(0, (t1_ms - 1) // period) + 1):
            for j, off in enumerate(offsets):
                t = k * period + off
                if not t0_ms <= t < t1_ms:
                    continue
                m = k * len(offsets) + j
                present = self.roster(t)
                if not present:
                    continue
                spec = present[m % len(present)]
                text = f"{_CHAT_TEXTS[m % len(_CHAT_TEXTS)]} [{m}]"
                structured = None
                if m % 2 == 1:
                    structured = {
                        "chat_session": 1,
                        "operation_type": 1,
                        "message_id": f"msg-{self.seed:x}-{m:06d}",
                        "sender": {"user_id": spec.user_id, "user_name": spec.user_name},
                        "receiver": {"user_id": 0, "user_name": "Everyone"},
                        "text": text,
                    }
                out.append({"t_ms": t, "user_id": spec.user_id, "user_name": spec.user_name, "text": text, "structured": structured})
        return out

    # ------------------------------------------------------------------ video on/off and sharing

    def video_on(self, user_id: int, t_ms: int) -> bool:
        """Camera state: on from joining (the late joiner 500 ms after), except participant 2 which
        turns it off for the last fifth of every period."""
        p = self._by_id[user_id]
        return any(a <= t_ms < b for a, b in self._video_intervals(p, t_ms, t_ms + 1))

    def _video_intervals(self, p: ParticipantSpec, t0_ms: int, t1_ms: int) -> list[tuple[int, int]]:
        if self.product in (Product.CONTACT_CENTER, Product.SESSION):  # audio and transcript only
            return []
        start = p.join_ms + (500 if p.join_ms > 0 else 0)
        end = self._leave[p.index]
        if p.index != 2:
            return [(start, end)] if start < end else []
        period = self.period_ms
        off0 = _align(period * 4 // 5)
        out = []
        for k in range(max(0, t0_ms // period - 1), max(0, t1_ms // period) + 2):
            a, b = max(start, k * period), min(end, k * period + off0)
            if a < b:
                out.append((a, b))
        return out

    def sharer(self, t_ms: int) -> ParticipantSpec | None:
        """Participant 0 shares its screen from 25 % to 75 % of every period."""
        if self.product in (Product.CONTACT_CENTER, Product.SESSION) or t_ms < 0:
            return None
        a, b = self._share_window()
        return self.participants[0] if a <= t_ms % self.period_ms < b else None

    def _share_window(self) -> tuple[int, int]:
        return _align(self.period_ms // 4), _align(self.period_ms * 3 // 4)

    # ------------------------------------------------------------------ events

    def events(self, t0_ms: int, t1_ms: int) -> list[tuple[int, dict[str, Any]]]:
        """Timeline events in ``[t0, t1)`` as ``(event_type, fields)`` (without event_type/timestamp).

        Each entry's ``fields`` also holds ``"t_ms"``, the media time of the event (pop it before
        sending). Meetings: JOIN (t=0 for the initial roster, later for the late joiner), LEAVE,
        ACTIVE_SPEAKER_CHANGE, SHARING_START/STOP, PARTICIPANT_VIDEO_ON/OFF. Contact Center: the
        ZCC voice events with ``participant_info``.
        """
        if self.product is Product.CONTACT_CENTER:
            return self._zcc_events(t0_ms, t1_ms)
        period = self.period_ms
        out: list[tuple[int, dict[str, Any]]] = []
        for k in range(max(0, t0_ms // period), max(0, (t1_ms - 1) // period) + 1):
            times, evs = self._period_events(k)
            lo = bisect.bisect_left(times, t0_ms)
            hi = bisect.bisect_left(times, t1_ms)
            out.extend((etype, dict(fields_)) for etype, fields_ in evs[lo:hi])
        return out

    def _period_events(self, k: int) -> tuple[list[int], list[tuple[int, dict[str, Any]]]]:
        """All events of period ``k``, computed once (the server asks every 20 ms)."""
        cached = self._event_cache.get(k)
        if cached is None:
            evs = self._compute_events(k * self.period_ms, (k + 1) * self.period_ms)
            cached = ([f["t_ms"] for _, f in evs], evs)
            if len(self._event_cache) >= 4:
                self._event_cache.pop(next(iter(self._event_cache)))
            self._event_cache[k] = cached
        return cached

    def _compute_events(self, t0_ms: int, t1_ms: int) -> list[tuple[int, dict[str, Any]]]:
        ev: list[tuple[int, int, int, dict[str, Any]]] = []  # (t, order, type, fields)

        def add(t: int, order: int, etype: int, fields_: dict[str, Any]) -> None:
            if t0_ms <= t < t1_ms:
                ev.append((t, order, int(etype), {"t_ms": t, **fields_}))

        joins: dict[int, list[ParticipantSpec]] = {}
        for p in self.participants:
            joins.setdefault(p.join_ms, []).append(p)
        for t, group in joins.items():
            add(t, 0, EventType.PARTICIPANT_JOIN, {"participants": [{"user_id": p.user_id, "user_name": p.user_name} for p in group]})
        for p in self.participants:
            if p.leave_ms is not None:
                add(p.leave_ms, 9, EventType.PARTICIPANT_LEAVE, {"participants": [{"user_id": p.user_id}]})
            for a, b in self._video_intervals(p, t0_ms, t1_ms):
                add(a, 1, EventType.PARTICIPANT_VIDEO_ON, {"participants": [{"user_id": p.user_id}]})
                if b < (1 << 62):
                    add(b, 8, EventType.PARTICIPANT_VIDEO_OFF, {"participants": [{"user_id": p.user_id}]})
        period = self.period_ms
        kmin, kmax = max(0, t0_ms // period), max(0, (t1_ms - 1) // period) + 1
        sched = self._schedule
        for k in range(kmin, kmax):
            for seg in sched.main_segments:
                t = k * period + seg.start_ms
                if not t0_ms <= t < t1_ms:
                    continue
                spec = self.participants[seg.index]
                if not spec.in_meeting(t):
                    continue
                prev = self.active_speaker(t - 1)
                if prev is None or prev.index != spec.index:
                    add(t, 3, EventType.ACTIVE_SPEAKER_CHANGE, {"user_id": spec.user_id, "user_name": spec.user_name})
            if self.sharer(k * period + self._share_window()[0]) is not None:
                a, b = self._share_window()
                sh = self.participants[0]
                add(k * period + a, 4, EventType.SHARING_START, {"user_id": sh.user_id, "user_name": sh.user_name})
                add(k * period + b, 5, EventType.SHARING_STOP, {})
        ev.sort(key=lambda e: (e[0], e[1]))
        return [(etype, fields_) for _, _, etype, fields_ in ev]

    def _zcc_events(self, t0_ms: int, t1_ms: int) -> list[tuple[int, dict[str, Any]]]:
        caller, agent = self.participants
        script = [
            (0, ZccEventType.CONSUMER_ANSWERED, caller),
            (0, ZccEventType.USER_ANSWERED, agent),
            (_align(self.period_ms // 2), ZccEventType.USER_HOLD, agent),
            (_align(self.period_ms // 2) + 2000, ZccEventType.USER_UNHOLD, agent),
        ]
        return [(int(etype), {"t_ms": t, "participant_info": self.participant_info(p)}) for t, etype, p in script if t0_ms <= t < t1_ms]

    def participant_info(self, p: ParticipantSpec) -> dict[str, Any]:
        """ZCC ``participant_info`` object of a party (PROTOCOL.md 9.3)."""
        return {
            "channel_id": p.channel_id,
            "participant_mode": "caller" if p.role == "caller" else "callee",
            "queue_id": "xqJE_cgERLyAJHYYL5LLeg",
            "queue_name": "Synthetic Queue",
            "account_id": "sim-account",
            "division_id": "sim-division",
            "phone_number": "+18005550101" if p.role == "caller" else "+18005550199",
            "user_id": f"contact-{p.user_id}",
            "display_name": p.user_name,
        }

    # ------------------------------------------------------------------ video and share

    def video_frame(self, params: VideoParams, frame_index: int, t_ms: int, *, user_id: int | None = None) -> tuple[int, str, bytes] | None:
        """The camera frame at ``t_ms``: the active speaker's (or, if that camera is off, the first
        participant with video on), or ``user_id``'s for individual subscriptions (data_opt 4).

        JPEG/PNG: one complete image; H.264: one Annex-B access unit. None while no camera is on.
        """
        if user_id is not None or params.data_opt == DataOption.VIDEO_SINGLE_INDIVIDUAL_STREAM:
            if user_id is None or user_id not in self._by_id or not self.video_on(user_id, t_ms):
                return None
            spec = self._by_id[user_id]
        else:
            spec = self.active_speaker(t_ms)
            if spec is None or not self.video_on(spec.user_id, t_ms):
                spec = next((p for p in self.participants if self.video_on(p.user_id, t_ms)), None)
            if spec is None:
                return None
        from gateway.sim.codecs import encode_picture

        payload = encode_picture(self, "video", params.codec, params.resolution, params.fps, frame_index, spec, user_id)
        return spec.user_id, spec.user_name, payload

    def warm_up(self, video: VideoParams | None = None, share: DeskshareParams | None = None) -> None:
        """Draw every participant's background for these params now (up to tens of ms each at FHD/QHD),
        so the first frames of a live stream do not stall the caller's event loop."""
        from gateway.sim import drawing
        from gateway.sim.codecs import picture_size

        for kind, params in (("video", video), ("share", share)):
            if params is None:
                continue
            fmt = {Codec.JPG: "yuvj420p", Codec.PNG: "rgb24"}.get(params.codec, "yuv420p")
            width, height = picture_size(self, params.resolution)
            for spec in self.participants if kind == "video" else self.participants[:1]:
                drawing.canvas(self._video_encoders, kind, spec, width, height, fmt)

    def share_frame(self, params: DeskshareParams, frame_index: int, t_ms: int) -> tuple[int, str, bytes] | None:
        """The sharer's screen (a slide with the frame counter) while someone shares, else None."""
        spec = self.sharer(t_ms)
        if spec is None:
            return None
        from gateway.sim.codecs import encode_picture

        payload = encode_picture(self, "share", params.codec, params.resolution, params.fps, frame_index, spec, None)
        return spec.user_id, spec.user_name, payload


def _align(t_ms: int) -> int:
    return (t_ms // TICK_MS) * TICK_MS


def _require(ok: bool, what: str) -> None:
    if not ok:
        raise ValueError(what)


def read_frame_counter(rgb: np.ndarray) -> int:
    """Read the frame index drawn into a decoded video or share picture (H x W x 3 uint8)."""
    from gateway.sim.drawing import read_counter

    return read_counter(rgb)
