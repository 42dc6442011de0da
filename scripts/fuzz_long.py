"""Long fuzz runs of the parsers (the CI runs are the bounded ones in tests/fuzz/).

Two engines:

* ``atheris`` (coverage-guided libFuzzer for Python; ``pip install atheris`` into the venv): the
  Python code of ``gateway`` is instrumented, the native listener is driven through ``feed``.
* ``hypothesis`` (always available): the tests/fuzz properties with many more examples.

Targets and properties (the same as tests/fuzz):

* ``listener``: ``gateway._native.MediaListener.feed`` never raises and gives each message
  exactly one outcome (sink call, counted drop, control call or counted unknown type);
* ``protocol``: ``decode``, every ``parse_*``, ``parse_webhook`` and ``negotiate_media_params``
  raise nothing but :class:`gateway.errors.ProtocolError`;
* ``webhook``: ``WebhookReceiver.process`` answers every request with a counted 2xx/4xx (never
  500) for random headers, signatures and bodies.

Usage::

    .venv/bin/python scripts/fuzz_long.py --engine atheris --target listener --seconds 300
    .venv/bin/python scripts/fuzz_long.py --engine hypothesis --target all --examples 20000

A failing input is printed (and atheris writes ``crash-*`` files); make it a regression test.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

TARGETS = ("listener", "protocol", "webhook")
NOW = 1_760_000_000.0
SECRET = "fuzz-webhook-secret"


def _listener_target() -> Any:
    from gateway._native import MediaListener
    from tests.native.helpers import FakeTransport, RecordingControl, RecordingSink

    sink, control, transport = RecordingSink(), RecordingControl(), FakeTransport()
    listener = MediaListener(sink, control, max_frame_bytes=4096)
    listener.transport = transport

    def one(data: bytes) -> None:
        before = len(sink.calls) + len(control.calls) + listener.unknown_types
        listener.feed(data, len(data) % 2 == 1)
        after = len(sink.calls) + len(control.calls) + listener.unknown_types
        if after - before != 1:
            raise AssertionError(f"{after - before} outcomes for one message {data!r}")
        if len(sink.calls) + len(control.calls) + len(transport.calls) > 10_000:  # bounded over millions of inputs
            sink.calls.clear()
            control.calls.clear()
            transport.calls.clear()  # keep-alive answers pile up here otherwise (RSS grew ~13 B per input)

    return one


def _protocol_target() -> Any:
    from gateway import protocol
    from gateway.errors import ProtocolError

    parsers = [protocol.parse_signaling_handshake, protocol.parse_data_handshake, protocol.parse_signaling_handshake_response,
               protocol.parse_data_handshake_response, protocol.parse_event, protocol.parse_state_update, protocol.parse_media,
               protocol.parse_webhook, protocol.media_params_from_wire]
    kinds = ["audio", "video", "deskshare", "transcript", "chat"]

    def one(data: bytes) -> None:
        try:
            doc = protocol.decode_json(data)
        except ProtocolError:
            doc = None
        for call in (lambda: protocol.decode(data), lambda: protocol.parse_webhook(data)):
            try:
                call()
            except ProtocolError:
                pass
        if doc is None:
            return
        for parser in parsers:
            try:
                parser(doc)
            except ProtocolError:
                pass
        try:
            protocol.negotiate_media_params(doc.get("media_params", doc), kinds[: 1 + len(data) % 5])
        except protocol.ParamsRejected:
            pass

    return one


def _webhook_target() -> Any:
    from gateway import protocol
    from gateway.webhook import SIGNATURE_HEADER, TIMESTAMP_HEADER, WebhookReceiver

    receiver = WebhookReceiver(SECRET, lambda event: "fuzzed", clock=lambda: NOW)

    def one(data: bytes) -> None:
        # layout: 1 control byte, then header text and body split at the first NUL
        flags = data[0] if data else 0
        head, _, body = data[1:].partition(b"\x00")
        text = head.decode("utf-8", "surrogateescape")
        ts = str(int(NOW)) if flags & 1 else text[:16]
        headers = {TIMESTAMP_HEADER: ts} if flags & 2 else {}
        if flags & 4:
            headers[SIGNATURE_HEADER] = protocol.webhook_signature(SECRET, ts, body) if ts.isascii() and flags & 8 else text
        if flags & 16:
            headers["x-zm-request-id"] = text[:32]
        status, answer = receiver.process(headers, body)
        if status not in (200, 400, 401, 409, 413):
            raise AssertionError(f"status {status} {answer} for {data!r}")
        if len(receiver.replays) > 50_000:
            receiver.replays = type(receiver.replays)(receiver.tolerance_s)

    return one


MAKERS = {"listener": _listener_target, "protocol": _protocol_target, "webhook": _webhook_target}


def seed_corpus(directory: Path) -> None:
    """Valid messages of every kind as starting points (random bytes alone rarely parse as JSON)."""
    from gateway import protocol
    from gateway.protocol import Product, WebhookKind
    from tests.fuzz.test_fuzz_listener import SEEDS
    from tests.fuzz.test_fuzz_protocol import VALID

    directory.mkdir(parents=True, exist_ok=True)
    seeds = [*SEEDS, *(protocol.encode(doc) for doc in VALID)]
    body = protocol.encode(protocol.build_webhook(Product.MEETING, WebhookKind.STARTED, instance_id="m", stream_id="s",
                                                  event_ts=1, server_urls="wss://h/x"))
    seeds.append(bytes([0x1F]) + b"v0=00\x00" + body)
    for i, seed in enumerate(seeds):
        (directory / f"seed-{i:03d}").write_bytes(seed)


def run_atheris(targets: list[str], seconds: int, extra: list[str], corpus: Path) -> int:
    import atheris

    with atheris.instrument_imports(include=["gateway"]):
        fns = [MAKERS[t]() for t in targets]
    if not corpus.exists() or not any(corpus.iterdir()):
        seed_corpus(corpus)

    def test_one_input(data: bytes) -> None:
        for fn in fns:
            fn(data)

    atheris.Setup([sys.argv[0], f"-max_total_time={seconds}", "-max_len=4096", *extra, str(corpus)], test_one_input)
    atheris.Fuzz()
    return 0


def run_hypothesis(targets: list[str], examples: int, seconds: int) -> int:
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    from tests.fuzz.test_fuzz_listener import MESSAGES

    fns = [MAKERS[t]() for t in targets]
    count = 0
    deadline = time.monotonic() + seconds

    @settings(max_examples=examples, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(st.one_of(MESSAGES, st.binary(max_size=600)))
    def check(data: bytes) -> None:
        nonlocal count
        if time.monotonic() > deadline:
            return
        count += 1
        for fn in fns:
            fn(data)

    check()
    print(f"hypothesis: {count} inputs through {', '.join(targets)}: no failure")
    return 0


def main() -> int:
    p = argparse.ArgumentParser(description="Long fuzz runs of the gateway's parsers")
    p.add_argument("--engine", choices=("atheris", "hypothesis"), default="atheris")
    p.add_argument("--target", choices=(*TARGETS, "all"), default="all")
    p.add_argument("--seconds", type=int, default=300)
    p.add_argument("--examples", type=int, default=20_000, help="hypothesis only")
    p.add_argument("--corpus", type=Path, default=Path("/tmp/rtms-fuzz-corpus"), help="atheris corpus (seeded when empty)")
    args, extra = p.parse_known_args()
    targets = list(TARGETS) if args.target == "all" else [args.target]
    if args.engine == "atheris":
        return run_atheris(targets, args.seconds, extra, args.corpus)
    return run_hypothesis(targets, args.examples, args.seconds)


if __name__ == "__main__":
    sys.exit(main())
