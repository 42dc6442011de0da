"""``gateway tap``: table of live streams, WAV and JSONL output from a followed stream."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
import wave

from gateway import _native, tap
from gateway.protocol import AudioParams, DataOption, VideoParams
from tests.shm.conftest import pcm

T0 = 1_738_392_033_000
SPP = 320
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    tap.add_arguments(parser)
    return parser.parse_args(list(argv))


def test_table_lists_live_streams(make_pub, prefix, capsys) -> None:
    a = make_pub("meeting-a", audio=AudioParams(data_opt=DataOption.AUDIO_MULTI_STREAMS), video=VideoParams())
    b = make_pub("meeting-b")
    for i in range(50):
        for uid in (1, 2):
            _native._test_write_audio(a, uid, T0 + 20 * i, pcm(i * SPP, SPP))
    a.on_video(1, None, T0, memoryview(b"jpeg"))
    a.publish_event({"type": "participant", "user_id": 1})
    assert tap.run(parse("--prefix", prefix, "--once")) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split() == list(tap._COLUMNS)
    rows = {line.split()[0]: line.split() for line in out[1:]}
    assert rows["meeting-a"][2:] == ["2", "1.0", "0.0", "0", "1", "-", "1", "0", "live"]
    assert rows["meeting-b"][2] == "0"
    a.close()
    b.close()
    assert tap.run(parse("--prefix", prefix, "--once")) == 0
    assert "(no live streams)" in capsys.readouterr().out


def _run_tap_until_stream_ends(argv: list[str], pub, wait_for: str) -> int:
    result: list[int] = []
    t = threading.Thread(target=lambda: result.append(tap.run(parse(*argv))))
    t.start()
    for _ in range(2000):  # the tap creates its outputs once attached
        if os.path.exists(wait_for):
            break
        time.sleep(0.005)
    pub.close()
    t.join(timeout=60)
    assert not t.is_alive()
    return result[0]


def test_wav_of_mixed_and_per_participant(make_pub, prefix, tmp_path) -> None:
    pub = make_pub(audio=AudioParams(data_opt=DataOption.AUDIO_MULTI_STREAMS))
    for i in range(100):
        if i != 30:  # one missing packet for user 7: written as silence in the WAV
            _native._test_write_audio(pub, 7, T0 + 20 * i, pcm(i * SPP, SPP))
        _native._test_write_audio(pub, 9, T0 + 20 * i, pcm(5 + i * SPP, SPP))
    base = str(tmp_path / "out.wav")
    assert _run_tap_until_stream_ends(["--prefix", prefix, "--stream", "stream-1", "--wav", base, "--user", "all"],
                                      pub, str(tmp_path / "out-9.wav")) == 0
    with wave.open(str(tmp_path / "out-7.wav")) as w:
        assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (16000, 1, 2)
        data = w.readframes(w.getnframes())
    expected = b"".join(bytes(2 * SPP) if i == 30 else pcm(i * SPP, SPP) for i in range(100))
    assert data == expected
    with wave.open(str(tmp_path / "out-9.wav")) as w:
        assert w.readframes(w.getnframes()) == b"".join(pcm(5 + i * SPP, SPP) for i in range(100))
    with wave.open(str(tmp_path / "out-0.wav")) as w:  # the mixed ring exists but is empty here
        assert w.getnframes() == 0


def test_jsonl_events(make_pub, prefix, tmp_path) -> None:
    pub = make_pub()
    for i in range(5):
        pub.publish_event({"type": "participant", "n": i, "name": "Zoë"})
    out = tmp_path / "events.jsonl"
    assert _run_tap_until_stream_ends(["--prefix", prefix, "--stream", "stream-1", "--jsonl", str(out)], pub, str(out)) == 0
    lines = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [e["n"] for e in lines] == list(range(5)) and lines[0]["name"] == "Zoë"


def test_unknown_stream_fails_cleanly(prefix, directory, capsys) -> None:
    assert tap.run(parse("--prefix", prefix, "--stream", "nope", "--wav", "/nonexistent/x.wav")) == 1
    assert "no live stream" in capsys.readouterr().err


def test_gateway_tap_command(make_pub, prefix) -> None:
    pub = make_pub("cli-stream")
    proc = subprocess.run([sys.executable, "-m", "gateway", "tap", "--prefix", prefix, "--once"], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "cli-stream" in proc.stdout
    pub.close()
