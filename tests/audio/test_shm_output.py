"""The engine's AudioOutput wired to the shared-memory publisher, read back by the consumer library:
each participant's ring holds exactly its signal, the mixed ring their sum, gaps where nothing came."""

from __future__ import annotations

import os
import uuid

import numpy as np

from gateway import client
from gateway.audio import AudioEngine
from gateway.protocol import AudioParams, DataOption
from gateway.shm import ShmConfig, ShmDirectory, ShmPublisher
from gateway.sim.content import MeetingContent
from tests.audio.helpers import T0, expected_int16, feed, meeting_packets

RATE = 16000


def test_engine_into_shared_memory_reads_back_exactly() -> None:
    prefix = f"rtms-audio-{uuid.uuid4().hex[:10]}"
    params = AudioParams(data_opt=DataOption.AUDIO_MULTI_STREAMS)
    content = MeetingContent(3, seed=41)
    directory = ShmDirectory(ShmConfig(prefix=prefix))
    pub = ShmPublisher("stream-audio", directory, audio=params)
    try:
        engine = AudioEngine(pub, params)
        packets = meeting_packets(content, params, 0, 6000)
        engine.on_audio(*packets[0][:3], memoryview(packets[0][3]))  # starts the media clock
        assert engine.clock is not None
        pub.set_origin(engine.clock.origin_ms)
        feed(engine, packets[1:])
        offset = (engine.clock.origin_ms - T0) * RATE // 1000  # content sample of ring index 0
        with client.attach("stream-audio", prefix=prefix) as s:
            assert s.origin_ms == engine.clock.origin_ms
            streams = [(0, s.mixed())] + [(p.user_id, s.audio(p.user_id)) for p in content.participants]
            for uid, reader in streams:
                arr, cursor, lost, gaps = reader.read_since(0)
                start = reader.start_index
                ref = expected_int16(content, uid, RATE, 0, 6000)
                assert lost == 0 and cursor == engine.closed_index
                lo = max(start, -offset)
                got = np.asarray(arr).reshape(-1)[lo - start :]
                np.testing.assert_array_equal(got, ref[lo + offset : cursor + offset])
                marked = np.zeros(cursor - start, bool)
                for g in gaps:
                    marked[g.start - start : g.start - start + g.length] = True
                spoke = ref[lo + offset : cursor + offset] != 0
                assert not (marked[lo - start :] & spoke).any()  # no gap where a signal is
                assert marked.any() and (~marked).any()
                del arr
    finally:
        pub.close()
        directory.close()
    assert not [n for n in os.listdir("/dev/shm") if n.startswith(prefix + ".")]
