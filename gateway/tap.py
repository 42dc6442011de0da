"""``gateway tap``: look at a running gateway through its shared memory, like any consumer would.

Without ``--stream`` it shows a refreshing table of live streams (participants, audio frames,
gaps, video/share frames, events, drops). With ``--stream ID`` it follows one stream and writes
its audio as WAV (``--wav``; mixed by default, ``--user UID`` or ``--user all``) and/or its events
as JSON lines (``--jsonl``, ``-`` for stdout) until the stream ends, ``--seconds`` pass, or Ctrl-C.
Uses only :mod:`gateway.client` (stdlib + numpy).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import wave
from typing import IO, Any

from . import client
from . import events as events_mod

EXIT_OK, EXIT_FAILED, EXIT_INTERRUPTED = 0, 1, 130


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--prefix", default=client.DEFAULT_PREFIX, help="shared-memory name prefix of the gateway (default %(default)s)")
    parser.add_argument("--shm-dir", default=client.DEFAULT_SHM_DIR, help=argparse.SUPPRESS)
    parser.add_argument("--stream", metavar="ID", help="stream id to follow (see the table)")
    parser.add_argument("--wav", metavar="PATH", help="write audio as WAV (with --user all: PATH-<user_id>.wav per participant)")
    parser.add_argument("--user", default="0", help="audio to write: a user id (0 = mixed, the default) or 'all'")
    parser.add_argument("--jsonl", metavar="PATH", help="write events (transcripts, chat, participants...) as JSON lines; '-' = stdout")
    parser.add_argument("--seconds", type=float, help="stop after this long")
    parser.add_argument("--interval", type=float, default=1.0, help="table refresh interval (s)")
    parser.add_argument("--once", action="store_true", help="print the table once and exit")


def run(args: argparse.Namespace) -> int:
    try:
        if args.stream is None:
            return _table(args)
        return _follow(args)
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED


# --------------------------------------------------------------------------- table

_COLUMNS = ("STREAM", "AGE", "PARTS", "AUDIO_S", "GAPS_S", "DUP", "VIDEO", "SHARE", "EVENTS", "DROPS", "STATE")


def stream_row(info: client.StreamInfo, reader: client.StreamReader) -> dict[str, Any]:
    """One table row: what a consumer can see of a stream right now."""
    parts = [p for p in reader.participants() if p.user_id != 0]
    audio_frames = gap_frames = dups = 0
    rate = reader.audio_rate or 1
    for ring in reader.participants():
        st = client.AudioReader(reader, ring).stats()
        audio_frames = max(audio_frames, st["write_index"])
        gap_frames += st["gap_frames"]
        dups += st["dropped_packets"]
    counts = {}
    for name, get in (("video", reader.video), ("share", reader.share), ("events", reader.events)):
        try:
            counts[name] = get().write_seq
        except KeyError:
            counts[name] = None
    return {
        "stream_id": info.stream_id, "age_s": max(0.0, time.time() - info.started_unix_ns / 1e9),
        "participants": len(parts), "audio_s": audio_frames / rate, "gaps_s": gap_frames / rate,
        "duplicates": dups, "video": counts["video"], "share": counts["share"], "events": counts["events"],
        "drops": sum(reader.drops().values()), "state": "ended" if reader.ended else "live",
    }


def _fmt(row: dict[str, Any]) -> tuple[str, ...]:
    def n(v: Any) -> str:
        return "-" if v is None else str(v)

    return (row["stream_id"][:36], f"{row['age_s']:.0f}s", str(row["participants"]), f"{row['audio_s']:.1f}",
            f"{row['gaps_s']:.1f}", str(row["duplicates"]), n(row["video"]), n(row["share"]), n(row["events"]),
            str(row["drops"]), row["state"])


def render_table(rows: list[dict[str, Any]]) -> str:
    lines = [_COLUMNS, *(_fmt(r) for r in rows)]
    widths = [max(len(line[i]) for line in lines) for i in range(len(_COLUMNS))]
    out = ["  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip() for line in lines]
    if not rows:
        out.append("(no live streams)")
    return "\n".join(out)


def _table(args: argparse.Namespace) -> int:
    readers: dict[tuple[str, int], client.StreamReader] = {}
    deadline = None if args.seconds is None else time.monotonic() + args.seconds
    tty = sys.stdout.isatty() and not args.once
    try:
        while True:
            infos = client.list_streams(args.prefix, args.shm_dir)
            live = {(i.segment, i.generation): i for i in infos}
            for key in [k for k in readers if k not in live]:
                readers.pop(key).close()
            rows = []
            for key, info in live.items():
                try:
                    if key not in readers:
                        readers[key] = client.attach(info)
                    rows.append(stream_row(info, readers[key]))
                except (client.StreamEnded, FileNotFoundError):
                    continue
            text = render_table(rows)
            print(("\x1b[H\x1b[2J" if tty else "") + text, flush=True)
            if args.once or (deadline is not None and time.monotonic() >= deadline):
                return EXIT_OK
            time.sleep(args.interval)
    finally:
        for r in readers.values():
            r.close()


# --------------------------------------------------------------------------- follow one stream

class _WavOut:
    """One WAV file fed from one audio ring; lost frames are written as silence to keep time."""

    def __init__(self, path: str, reader: client.AudioReader) -> None:
        self.reader = reader
        reader.cursor = reader.oldest()
        self.file = wave.open(path, "wb")
        self.file.setnchannels(reader.channels)
        self.file.setsampwidth(2)
        self.file.setframerate(reader.rate)
        self.frames = self.lost = self.gaps = 0

    def pump(self) -> int:
        arr, _, lost, gaps = self.reader.read_since()
        if lost:
            self.file.writeframesraw(bytes(lost * self.reader.frame_bytes))
            self.lost += lost
        if len(arr):
            self.file.writeframesraw(arr.tobytes())
        self.frames += len(arr) + lost
        self.gaps += sum(g.length for g in gaps)
        return len(arr)

    def close(self) -> None:
        self.file.close()


def _follow(args: argparse.Namespace) -> int:
    try:
        stream = client.attach(args.stream, prefix=args.prefix, shm_dir=args.shm_dir)
    except (KeyError, client.StreamEnded) as exc:
        print(f"gateway tap: {exc}", file=sys.stderr)
        return EXIT_FAILED
    wavs: dict[int, _WavOut] = {}
    jsonl: IO[str] | None = None
    events = None
    if args.wav:
        users = [p.user_id for p in stream.participants()] if args.user == "all" else [int(args.user)]
        root, ext = os.path.splitext(args.wav)
        for uid in users:
            try:
                wavs[uid] = _WavOut(f"{root}-{uid}{ext or '.wav'}" if args.user == "all" else args.wav, stream.audio(uid))
            except KeyError as exc:
                print(f"gateway tap: {exc}", file=sys.stderr)
                for w in wavs.values():
                    w.close()
                stream.close()
                return EXIT_FAILED
    if args.jsonl:
        jsonl = sys.stdout if args.jsonl == "-" else open(args.jsonl, "w", encoding="utf-8")
        events = stream.events()
        events.cursor = events.oldest()
    deadline = None if args.seconds is None else time.monotonic() + args.seconds
    try:
        while True:
            ended = stream.ended
            progressed = 0
            for w in wavs.values():
                try:
                    progressed += w.pump()
                except client.StreamEnded:  # the ring went to another participant
                    continue
            if events is not None and jsonl is not None:
                recs, _, lost = events.read_since()
                if lost:
                    jsonl.write(json.dumps({"type": "tap_lost", "events": lost}) + "\n")
                clock = events_mod.clock_of(stream)  # media_ms / sample_index line events up with audio
                for rec in recs:
                    jsonl.write(json.dumps(events_mod.enrich(rec, clock), ensure_ascii=False) + "\n")
                jsonl.flush()
                progressed += len(recs)
            if ended and not progressed:
                break
            if deadline is not None and time.monotonic() >= deadline:
                break
            if not progressed:
                stream.wait(timeout=0.5)
    finally:
        for uid, w in wavs.items():
            w.close()
            print(f"gateway tap: user {uid}: {w.frames} frames ({w.frames / max(1, w.reader.rate):.1f} s), "
                  f"{w.gaps} in gaps, {w.lost} lost to overrun", file=sys.stderr)
        if jsonl is not None and jsonl is not sys.stdout:
            jsonl.close()
        stream.close()
    return EXIT_OK
